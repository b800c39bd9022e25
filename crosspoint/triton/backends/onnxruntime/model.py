"""Triton python-based backend standing in for the C++ `onnxruntime` backend (tests, local use).

Serves `<version>/model.onnx` on the CPU execution provider; `max_batch_size`, dynamic batching and
the `intra_op_thread_count` parameter mean the same as for the real backend.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from crosspoint.triton.backends.shim import ShimModel


class TritonPythonModel(ShimModel):
    default_filename = "model.onnx"
    thread_parameter = "intra_op_thread_count"

    def load(self, path: Path, threads: int) -> None:
        options = ort.SessionOptions()
        # Several stubs (one per model instance) share few cores; ORT's default of one thread per
        # core would oversubscribe them.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = list(self.output_types)
        return dict(zip(names, self.session.run(names, inputs), strict=True))
