"""Triton python-based backend standing in for the C++ `pytorch` (libtorch) backend (tests, local use).

Serves the TorchScript `<version>/model.pt` on the CPU, binding tensors the way the real backend
does: inputs by the names of `forward`'s arguments, else `<name>__<index>`, else config order;
outputs by `<name>__<index>`, else config order. `INTRA_OP_THREAD_COUNT` sets torch's threads.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from crosspoint.triton.backends.shim import ShimModel

_INDEXED = re.compile(r"^.+__(\d+)$")


class TritonPythonModel(ShimModel):
    default_filename = "model.pt"
    thread_parameter = "INTRA_OP_THREAD_COUNT"

    def load(self, path: Path, threads: int) -> None:
        torch.set_num_threads(threads)
        self.module = torch.jit.load(str(path), map_location="cpu").eval()
        arguments = [arg.name for arg in self.module.forward.schema.arguments[1:]]  # [0] is self
        self.input_order = _binding_order(self.input_names, arguments)
        self.output_order = _binding_order(list(self.output_types), [])

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            # torch.tensor copies: arrays from Triton can be read-only views of shared memory.
            result = self.module(*[torch.tensor(inputs[name]) for name in self.input_order])
        values = [result] if isinstance(result, torch.Tensor) else list(result)
        if len(values) != len(self.output_order):
            raise ValueError(f"model returned {len(values)} tensors; config lists {len(self.output_order)}")
        return {name: value.numpy() for name, value in zip(self.output_order, values, strict=True)}


def _binding_order(names: list[str], arguments: list[str]) -> list[str]:
    """Config names in the positional order the TorchScript module uses."""
    if arguments and sorted(names) == sorted(arguments):
        return arguments
    indices = [_INDEXED.match(name) for name in names]
    if all(indices):
        return sorted(names, key=lambda name: int(_INDEXED.match(name).group(1)))  # type: ignore[union-attr]
    return names
