"""Python shims for Triton's `onnxruntime` and `pytorch` backends (test and local infrastructure).

Each `<name>/model.py` is loaded by Triton's python backend as a "python-based backend" for every
model whose config says `backend: "<name>"` (or a platform that maps to it); production uses the
official image's C++ backends instead, on the same repository.
"""
