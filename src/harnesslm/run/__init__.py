"""The run directory: its layout (``RunDir``), what made each artifact (``provenance``) and the artifacts a
step reads back (students and their phases, the catalog's cached embeddings).

Only ``pipeline/`` and ``cli/`` import this package: the service, the index, ONNX and encoding never know
where a run keeps its files.
"""
