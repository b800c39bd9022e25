"""What the backend shims share: config parsing, request grouping, one response per request.

Runs inside Triton's python backend stub (numpy only here; `triton_python_backend_utils` exists
only there, so it is imported in `execute`). A shim subclasses `ShimModel` and adds `load` and
`infer`; everything Triton-facing lives here once.

Triton's dynamic batcher hands `execute` several requests at once. Requests whose tensors agree on
everything but the batch axis are concatenated and run once, then the outputs are split back, as
the real backends do; requests with another shape (another point count, say) form their own group
instead of failing the whole call.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

Arrays = Mapping[str, np.ndarray]
RunFn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]

# Default thread count when a config names none: lets a local run use more cores without editing configs.
THREADS_ENV = "CROSSPOINT_TRITON_THREADS"

_NUMPY_TYPES = {
    "TYPE_BOOL": np.bool_,
    "TYPE_UINT8": np.uint8,
    "TYPE_INT8": np.int8,
    "TYPE_INT16": np.int16,
    "TYPE_INT32": np.int32,
    "TYPE_INT64": np.int64,
    "TYPE_FP16": np.float16,
    "TYPE_FP32": np.float32,
    "TYPE_FP64": np.float64,
}


class ShimModel:
    """Base of the `TritonPythonModel` classes in `onnxruntime/model.py` and `pytorch/model.py`."""

    default_filename = ""
    thread_parameter = ""  # the key the real backend reads, so one config.pbtxt serves both

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self.input_names = [spec["name"] for spec in config["input"]]
        self.output_types = {spec["name"]: _numpy_type(spec["data_type"]) for spec in config["output"]}
        self.batched = int(config.get("max_batch_size", 0)) > 0
        filename = config.get("default_model_filename") or self.default_filename
        # For a python-based backend Triton passes the model's directory, not the backend's.
        path = Path(args["model_repository"]) / args["model_version"] / filename
        self.load(path, _thread_count(config, self.thread_parameter))

    def load(self, path: Path, threads: int) -> None:
        raise NotImplementedError

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils  # only exists inside the Triton stub

        gathered: list[dict[str, np.ndarray]] = []
        bad: dict[int, str] = {}
        for index, request in enumerate(requests):
            arrays = {}
            for name in self.input_names:
                tensor = pb_utils.get_input_tensor_by_name(request, name)
                if tensor is None:
                    bad[index] = f"missing input {name!r}"
                    break
                arrays[name] = tensor.as_numpy()
            gathered.append(arrays)
        good = [i for i in range(len(requests)) if i not in bad]
        results: dict[int, dict[str, np.ndarray] | Exception] = {i: ValueError(bad[i]) for i in bad}
        results.update(
            zip(good, run_grouped([gathered[i] for i in good], self._run, self.batched), strict=True)
        )

        responses = []
        for index in range(len(requests)):
            result = results[index]
            if isinstance(result, Exception):
                error = pb_utils.TritonError(f"{type(result).__name__}: {result}")
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
            else:
                tensors = [pb_utils.Tensor(name, value) for name, value in result.items()]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self) -> None:
        pass

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.infer(inputs)
        missing = set(self.output_types) - set(outputs)
        if missing:
            raise ValueError(f"model produced no {sorted(missing)}")
        return {
            name: np.ascontiguousarray(outputs[name], dtype=kind) for name, kind in self.output_types.items()
        }


def group_compatible(requests: Sequence[Arrays], batched: bool) -> list[list[int]]:
    """Indices of requests that can share one run, in arrival order.

    Without a batch axis (`max_batch_size: 0`) nothing can be concatenated, so each request is alone.
    """
    if not batched:
        return [[i] for i in range(len(requests))]
    groups: dict[tuple[tuple[str, tuple[int, ...], str], ...], list[int]] = {}
    for index, arrays in enumerate(requests):
        key = tuple((name, arrays[name].shape[1:], arrays[name].dtype.str) for name in sorted(arrays))
        groups.setdefault(key, []).append(index)
    return list(groups.values())


def run_grouped(
    requests: Sequence[Arrays], run: RunFn, batched: bool
) -> list[dict[str, np.ndarray] | Exception]:
    """Run `run` once per compatible group; one result (outputs or the exception) per request.

    An error in one group fails only the requests of that group.
    """
    results: list[dict[str, np.ndarray] | Exception] = [RuntimeError("not run")] * len(requests)
    for group in group_compatible(requests, batched):
        try:
            if len(group) == 1:
                results[group[0]] = run(dict(requests[group[0]]))
                continue
            names = list(requests[group[0]])
            merged = {name: np.concatenate([requests[i][name] for i in group]) for name in names}
            sizes = [len(requests[i][names[0]]) for i in group]
            for index, parts in zip(group, _split(run(merged), sizes), strict=True):
                results[index] = parts
        except Exception as error:
            for index in group:
                results[index] = error
    return results


def _split(outputs: dict[str, np.ndarray], sizes: list[int]) -> list[dict[str, np.ndarray]]:
    total = sum(sizes)
    for name, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != total:
            raise ValueError(f"output {name!r} has shape {value.shape}; expected batch axis {total}")
    cuts = np.cumsum(sizes)[:-1]
    pieces = {name: np.split(value, cuts) for name, value in outputs.items()}
    return [{name: pieces[name][i] for name in outputs} for i in range(len(sizes))]


def _numpy_type(triton_type: str) -> type:
    if triton_type not in _NUMPY_TYPES:
        raise ValueError(f"the shim backends do not handle {triton_type}")
    return _NUMPY_TYPES[triton_type]


def _thread_count(config: dict[str, Any], parameter: str) -> int:
    value = config.get("parameters", {}).get(parameter, {}).get("string_value") or os.environ.get(THREADS_ENV)
    return max(1, int(value)) if value else 1
