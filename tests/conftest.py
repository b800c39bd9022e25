"""Session-wide test set-up.

onnxruntime is imported before anything imports torch: with onnxruntime 1.32 and torch 2.13 in one
process, importing onnxruntime *after* torch (and the set of extension modules the whole suite loads)
crashed the interpreter with a segmentation fault inside onnxruntime's pybind module during collection.
The served gateway never imports torch, so this order only matters in processes that hold both.
"""

import onnxruntime  # noqa: F401
