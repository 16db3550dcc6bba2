"""The ``harness`` command: a thin typer layer over :mod:`harnesslm.pipeline`."""
