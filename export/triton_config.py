"""`config.pbtxt`: written from the contract, parsed with Triton's own schema, checked against the graph.

Torch-free (protobuf from tritonclient, ONNX Runtime for the graph side). The form we write:

- `backend: "onnxruntime"` (or "pytorch"), not `platform:`. The official image maps both to its
  C++ backends; the local harness (`crosspoint/triton`) routes the same backend names to python
  shims. `default_model_filename` names the file either way.
- `max_batch_size > 0`, so every dim is listed without the batch axis; the point axis is -1.
- `dynamic_batching` with preferred sizes and a short queue delay; `instance_group` KIND_CPU x1;
  `version_policy: latest 1`. A GPU variant (KIND_GPU) goes to `configs/gpu.pbtxt`, which
  `tritonserver --model-config-name=gpu` picks instead (Triton's custom model configurations).
- `parameters`: the preprocessing settings (num_points, min/max_points, k, up_axis, normalization,
  sampling) so a Triton-only client can prepare points without crosspoint.json.
- classify's `logits` carries `label_filename: "labels.txt"` (class names in logit order).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import text_format
from google.protobuf.message import Message

from export.contract import ModelSpec, TensorSpec, expected_names

# openvino: Triton's OpenVINO backend reads the ONNX file too (configs/openvino.pbtxt, export/precision.py).
BACKEND_FILES = {"onnxruntime": "model.onnx", "pytorch": "model.pt", "openvino": "model.onnx"}
PLATFORM_BACKENDS = {"onnxruntime_onnx": "onnxruntime", "pytorch_libtorch": "pytorch"}
_ONNX_TYPES = {
    "tensor(float)": "TYPE_FP32",
    "tensor(int64)": "TYPE_INT64",
    "tensor(int32)": "TYPE_INT32",
    "tensor(float16)": "TYPE_FP16",
    "tensor(double)": "TYPE_FP64",
    "tensor(bool)": "TYPE_BOOL",
}


class ConfigError(ValueError):
    """A config.pbtxt that Triton would refuse, or one that does not describe its model."""


@dataclass(frozen=True)
class ServingOptions:
    max_batch_size: int = 32
    preferred_batch_sizes: tuple[int, ...] = (4, 8, 16)
    max_queue_delay_microseconds: int = 2000  # tiny next to a ~50 ms inference; lets bursts batch
    instance_count: int = 1
    backend: str = "onnxruntime"
    instance_kind: str = "KIND_CPU"  # KIND_GPU in configs/gpu.pbtxt


@dataclass(frozen=True)
class GraphTensor:
    """One input or output as the ONNX graph declares it; `shape` entries are int or a symbol name."""

    name: str
    data_type: str
    shape: tuple[int | str, ...]


def _model_config_class() -> type[Message]:
    from tritonclient.grpc import model_config_pb2

    cls: type[Message] = model_config_pb2.ModelConfig
    return cls


def build_config(
    spec: ModelSpec,
    options: ServingOptions,
    parameters: Mapping[str, object],
    label_filename: str | None = None,
) -> str:
    """The config.pbtxt text for `spec`, in Triton's usual list style (parsed back before it is returned)."""
    if options.backend not in BACKEND_FILES:
        raise ConfigError(f"backend {options.backend!r}: expected one of {sorted(BACKEND_FILES)}")
    if options.max_batch_size <= 0:
        raise ConfigError("max_batch_size must be > 0: the graphs have a batch axis")
    preferred = [size for size in options.preferred_batch_sizes if size <= options.max_batch_size]

    def tensor(t: TensorSpec) -> str:
        label = f', label_filename: "{label_filename}"' if label_filename and t.name == "logits" else ""
        dims = ", ".join(str(d) for d in t.dims)
        return f'  {{ name: "{t.name}", data_type: {t.data_type}, dims: [ {dims} ]{label} }}'

    params = ",\n".join(
        f'  {{ key: "{key}", value: {{ string_value: "{_escape(str(value))}" }} }}'
        for key, value in sorted(parameters.items())
    )
    lines = [
        f"# Written by `crosspoint export` for the {spec.name!r} model and checked against its graph.",
        (
            "# GPU hosts: configs/gpu.pbtxt (KIND_GPU), chosen by `tritonserver --model-config-name=gpu`."
            if options.instance_kind == "KIND_CPU"
            else "# Chosen by `tritonserver --model-config-name=gpu`."
        ),
        f'name: "{spec.name}"',
        f'backend: "{options.backend}"',
        f'default_model_filename: "{BACKEND_FILES[options.backend]}"',
        f"max_batch_size: {options.max_batch_size}",
        "input [",
        ",\n".join(tensor(t) for t in spec.inputs),
        "]",
        "output [",
        ",\n".join(tensor(t) for t in spec.outputs),
        "]",
        "dynamic_batching {",
        f"  preferred_batch_size: [ {', '.join(str(size) for size in preferred)} ]",
        f"  max_queue_delay_microseconds: {options.max_queue_delay_microseconds}",
        "}",
        f"instance_group [ {{ kind: {options.instance_kind}, count: {options.instance_count} }} ]",
        "version_policy: { latest: { num_versions: 1 } }",
        "parameters [",
        params,
        "]",
    ]
    text = "\n".join(lines) + "\n"
    problems = check_config(parse_config(text, spec.name), spec.name)
    if problems:
        raise ConfigError(f"{spec.name}: the written config is inconsistent: {'; '.join(problems)}")
    return text


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def parse_config(text: str, where: str = "config.pbtxt") -> Any:
    """Parse with Triton's ModelConfig schema; a ConfigError names the line and field on failure."""
    config = _model_config_class()()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ConfigError(f"{where}: not a valid Triton ModelConfig: {exc}") from exc
    return config


def backend_of(config: Any) -> str:
    """The backend a config selects, from `backend` or the older `platform` field."""
    return str(config.backend or PLATFORM_BACKENDS.get(config.platform, config.platform))


def graph_tensors(session: Any) -> tuple[list[GraphTensor], list[GraphTensor]]:
    """Inputs and outputs of an onnxruntime.InferenceSession."""

    def convert(args: Sequence[Any]) -> list[GraphTensor]:
        return [
            GraphTensor(
                a.name,
                _ONNX_TYPES.get(a.type, a.type),
                tuple(d if isinstance(d, int) else str(d) for d in a.shape),
            )
            for a in args
        ]

    return convert(session.get_inputs()), convert(session.get_outputs())


def check_config(config: Any, model: str) -> list[str]:
    """Problems (empty = fine) with a parsed config for the model directory `model`, each naming the field."""
    problems: list[str] = []
    if config.name and config.name != model:
        problems.append(f"name: {config.name!r} differs from the directory name {model!r}")
    backend = backend_of(config)
    if backend not in BACKEND_FILES:
        problems.append(f"backend: {backend or '(none)'!r}; expected one of {sorted(BACKEND_FILES)}")
    if config.max_batch_size <= 0:
        problems.append(
            f"max_batch_size: {config.max_batch_size}; must be > 0 (the graphs have a batch axis)"
        )
    too_big = [size for size in config.dynamic_batching.preferred_batch_size if size > config.max_batch_size]
    if too_big and config.max_batch_size > 0:
        problems.append(
            f"dynamic_batching.preferred_batch_size: {too_big} exceed max_batch_size {config.max_batch_size}"
        )
    names = expected_names(model)
    if names is not None:
        for field, want, have in (("input", names[0], config.input), ("output", names[1], config.output)):
            got = tuple(t.name for t in have)
            if got != want:
                problems.append(f"{field}: names {list(got)}; the contract for {model!r} is {list(want)}")
    return problems


def compare_with_graph(
    config: Any, inputs: Sequence[GraphTensor], outputs: Sequence[GraphTensor]
) -> list[str]:
    """Every mismatch between the config's tensors and the graph's (names, dtypes, dims, batch axis)."""
    return _compare_with_graph("input", config.input, inputs) + _compare_with_graph(
        "output", config.output, outputs
    )


def _compare_with_graph(field: str, declared: Sequence[Any], graph: Sequence[GraphTensor]) -> list[str]:
    problems = []
    by_name = {t.name: t for t in graph}
    for tensor in declared:
        where = f"{field} {tensor.name!r}"
        found = by_name.pop(tensor.name, None)
        if found is None:
            problems.append(f"{where}: not in the graph (graph has {sorted(t.name for t in graph)})")
            continue
        dtype = _data_type_name(tensor.data_type)
        if dtype != found.data_type:
            problems.append(f"{where}: data_type {dtype}, graph has {found.data_type}")
        problems += _compare_dims(where, list(tensor.dims), found.shape)
    problems += [f"{field} {name!r}: in the graph but not in config.pbtxt" for name in sorted(by_name)]
    return problems


def _compare_dims(where: str, dims: list[int], shape: tuple[int | str, ...]) -> list[str]:
    if not shape or isinstance(shape[0], int):
        return [f"{where}: the graph's batch axis is fixed ({list(shape)}); it must be symbolic"]
    rest = shape[1:]
    if len(dims) != len(rest):
        return [
            f"{where}: dims {dims} have {len(dims)} axes; the graph {list(shape)} has {len(rest)} "
            "besides the batch axis (config dims leave out the batch axis)"
        ]
    for axis, (want, have) in enumerate(zip(dims, rest, strict=True), start=1):
        if isinstance(have, int) and want != have:
            return [f"{where}: dims {dims}, graph shape {list(shape)} (axis {axis}: {want} vs {have})"]
        if not isinstance(have, int) and want != -1:
            return [f"{where}: dims {dims} fix axis {axis} to {want}; the graph's axis is variable ({have})"]
    return []


def _data_type_name(value: int) -> str:
    from tritonclient.grpc import model_config_pb2

    return str(model_config_pb2.DataType.Name(value))
