"""A real `tritonserver` for tests and local use (torch-free).

nvidia-pytriton ships the binary with only the python backend; `server.TritonServer` runs it on a
model repository with small python shims standing in for the onnxruntime and pytorch backends that
the official image has. `testing.running_triton` is the context manager tests share.
"""

from crosspoint.triton.server import TritonServer, TritonStartError, find_distribution

__all__ = ["TritonServer", "TritonStartError", "find_distribution"]
