"""Write a served graph as ONNX and as TorchScript, and check the ONNX file's dynamic axes.

The TorchScript-based `torch.onnx.export` (dynamo=False) is used: it needs no onnxscript (not in our
environment) and gives a plain graph ORT optimizes well. Both files are traced at a batch size and
point count that differ from the parity inputs, so parity also proves the axes are really dynamic.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from export.contract import ModelSpec

BATCH_AXIS = "batch"
POINT_AXIS = "num_points"


class ExportError(RuntimeError):
    """The exporter produced something we will not serve (fixed axes, checker failure, ...)."""


def dynamic_axes(spec: ModelSpec) -> dict[str, dict[int, str]]:
    """Batch axis symbolic everywhere; the point axis (dims -1 in the contract) symbolic too."""
    axes: dict[str, dict[int, str]] = {}
    for tensor in (*spec.inputs, *spec.outputs):
        axes[tensor.name] = {0: BATCH_AXIS}
        for i, dim in enumerate(tensor.dims, start=1):
            if dim == -1:
                axes[tensor.name][i] = POINT_AXIS
    return axes


def example_inputs(spec: ModelSpec, k: int, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Tracing inputs: distinct random points (no kNN ties), N an odd size unlike any weight dim."""
    generator = torch.Generator().manual_seed(0)
    n = 2 * k + 7
    inputs = []
    for tensor in spec.inputs:
        if tensor.name == "points":
            inputs.append(torch.rand(batch, n, 3, generator=generator) * 2 - 1)
        else:
            inputs.append(torch.eye(tensor.dims[0])[torch.arange(batch) % tensor.dims[0]])
    return tuple(inputs)


def export_onnx(
    graph: nn.Module, spec: ModelSpec, example: tuple[torch.Tensor, ...], path: Path, opset: int = 17
) -> None:
    """Write `graph` to `path`, run the ONNX checker, and refuse a graph with a fixed batch/point axis."""
    import onnx

    with warnings.catch_warnings(), torch.no_grad():
        # The legacy exporter announces its deprecation and warns about traced shapes; both are
        # expected here, and the symbolic-axis check below is the real guard.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            example,
            str(path),
            input_names=list(spec.input_names),
            output_names=list(spec.output_names),
            dynamic_axes=dynamic_axes(spec),
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise ExportError(f"{path}: the ONNX checker refused the exported graph: {exc}") from exc
    check_dynamic_axes(proto, spec)


def check_dynamic_axes(proto: object, spec: ModelSpec) -> None:
    """Every tensor's batch axis (and point axis) must be a symbol, every other axis the contract's size."""
    graph = proto.graph  # type: ignore[attr-defined]
    declared = {t.name: t for t in (*spec.inputs, *spec.outputs)}
    for value in (*graph.input, *graph.output):
        if value.name not in declared:
            raise ExportError(f"graph tensor {value.name!r} is not in the contract for {spec.name!r}")
        dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
        want = [BATCH_AXIS, *(POINT_AXIS if d == -1 else d for d in declared[value.name].dims)]
        for axis, (have, expected) in enumerate(zip(dims, want, strict=False)):
            symbolic = isinstance(have, str) and have != ""
            if isinstance(expected, str) and not symbolic:
                raise ExportError(
                    f"{spec.name}: {value.name!r} axis {axis} ({expected}) was exported fixed "
                    f"as {have}; it must be symbolic (shape {dims})"
                )
            if isinstance(expected, int) and have != expected:
                raise ExportError(
                    f"{spec.name}: {value.name!r} axis {axis} is {have}, the contract says {expected}"
                )
        if len(dims) != len(want):
            raise ExportError(f"{spec.name}: {value.name!r} has shape {dims}, the contract {want}")


def trace_torchscript(graph: nn.Module, example: tuple[torch.Tensor, ...], path: Path) -> None:
    """Trace and save; parity (at other shapes) is what proves the trace generalises."""
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about shapes are checked by parity instead
        traced = torch.jit.trace(graph, example, check_trace=False)
    torch.jit.save(traced, str(path))
