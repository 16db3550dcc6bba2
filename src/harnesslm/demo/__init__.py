"""The demo: a synthetic home-improvement shop and the small run configuration ``harness demo`` uses.

``shop`` generates the catalog, graded judgments and unlabeled queries from the words in ``vocabulary``
(``vocabulary.json``); ``config.yaml`` holds the demo's recipe settings, read by
:func:`harnesslm.pipeline.recipe.demo_config`.
"""
