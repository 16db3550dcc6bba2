import sys

import pytest

from harnesslm import extras


def test_require_names_the_missing_module_and_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(
        extras.MissingExtraError, match=r"harness export needs onnxruntime: pip install 'harness-lm\[onnx\]'"
    ):
        extras.require("onnx", "harness export", ("onnxruntime",))
    assert not extras.available("onnx", ("onnxruntime",))
    assert issubclass(extras.MissingExtraError, ImportError)  # callers that catch ImportError still work


def test_every_extra_is_declared_in_pyproject() -> None:
    from pathlib import Path

    import tomllib

    declared = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert set(extras.EXTRAS) <= set(declared["optional-dependencies"])
