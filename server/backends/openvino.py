"""The embedded backend's CPU fast path: a version's `model.onnx` in OpenVINO, at the precision its
`precision.json` passed (export/precision.py), behind the same `run(names, inputs)` as an ONNX Runtime
session, so the micro-batcher, padding and chunking stay as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.precision import OpenVinoRunner


@dataclass(frozen=True)
class TensorName:
    name: str


class OpenVinoSession:
    """`ort.InferenceSession`'s calling convention over `export.precision.OpenVinoRunner`."""

    def __init__(self, graph: Path, precision: str, streams: int) -> None:
        self.runner = OpenVinoRunner(graph, precision, streams)

    def get_inputs(self) -> list[TensorName]:
        return [TensorName(name) for name in self.runner.input_names]

    def get_outputs(self) -> list[TensorName]:
        return [TensorName(name) for name in self.runner.output_names]

    def run(self, output_names: list[str], inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        outputs = self.runner.run(inputs)
        return [outputs[name] for name in output_names]
