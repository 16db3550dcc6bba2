"""ONNX query encoders: ``exporter`` writes one from a student, ``runtime`` runs it, ``format`` is what they share.

An optional extra (``pip install 'harness-lm[onnx]'``): ``exporter`` and ``runtime`` import onnx and
onnxruntime, ``format`` does not.
"""
