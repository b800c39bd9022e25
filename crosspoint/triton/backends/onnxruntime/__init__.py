"""Shim for Triton's `onnxruntime` backend; only `model.py` is copied into the backend directory."""
