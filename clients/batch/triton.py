"""The gRPC side of a batch run: what the model expects, and one inference call with retries."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from export.contract import expected_names

# Triton answers these when it is starting, overloaded or shedding load: worth another try.
RETRYABLE_STATUS = ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED")

# The outputs a batch run asks for: the served contract's (export.contract), in its order.
TASK_OUTPUTS = {task: names[1] for task in ("embed", "classify") if (names := expected_names(task))}


@dataclass(frozen=True)
class ModelSpec:
    """What the served model takes and returns, read from Triton's model config."""

    name: str
    version: str
    max_batch_size: int
    output_dims: dict[str, int]  # the per-item size of each output we ask for
    parameters: dict[str, str]  # config.pbtxt `parameters` (export may record preprocessing there)


class InferenceFailed(RuntimeError):
    """A batch failed after its retries; its files get error rows."""


async def model_spec(client: Any, model: str, version: str, task: str) -> ModelSpec:
    """Check that Triton serves `model` (at `version`) and read its config; InferenceFailed if not."""
    from tritonclient.utils import InferenceServerException

    try:
        if not await client.is_server_ready():
            raise InferenceFailed("Triton is up but not ready")
        if not await client.is_model_ready(model, version):
            raise InferenceFailed(f"model {model!r} (version {version or 'latest'}) is not ready on Triton")
        config = (await client.get_model_config(model, version, as_json=True))["config"]
        if not version:
            # Pin what "latest" is now, so every request of the run (and its rows) name one version.
            served = (await client.get_model_metadata(model, as_json=True)).get("versions") or [""]
            version = max(served, key=lambda v: int(v) if v.isdigit() else -1)
    except InferenceServerException as exc:
        raise InferenceFailed(f"cannot talk to Triton: {exc.message()}") from exc
    outputs = {o["name"]: o.get("dims", []) for o in config.get("output", [])}
    missing = [name for name in TASK_OUTPUTS[task] if name not in outputs]
    if missing:
        raise InferenceFailed(f"model {model!r} has no output {missing} (outputs: {sorted(outputs)})")
    dims = {}
    for name in TASK_OUTPUTS[task]:
        shape = [int(d) for d in outputs[name]]
        if len(shape) != 1 or shape[0] <= 0:
            raise InferenceFailed(f"{model}.{name} has per-item dims {shape}; expected one fixed size")
        dims[name] = shape[0]
    parameters = {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}
    return ModelSpec(model, version, int(config.get("max_batch_size", 0)), dims, parameters)


async def infer_batch(
    client: Any, spec: ModelSpec, points: np.ndarray, retries: int = 4, backoff: float = 0.5
) -> dict[str, np.ndarray]:
    """Run one [B, N, 3] batch; retry what Triton calls transient, with capped jittered backoff."""
    from tritonclient.grpc import InferInput, InferRequestedOutput
    from tritonclient.utils import InferenceServerException

    request = InferInput("points", list(points.shape), "FP32")
    request.set_data_from_numpy(points)
    outputs = [InferRequestedOutput(name) for name in spec.output_dims]
    for attempt in range(retries + 1):
        try:
            result = await client.infer(spec.name, [request], model_version=spec.version, outputs=outputs)
            return {name: result.as_numpy(name) for name in spec.output_dims}
        except InferenceServerException as exc:
            status = str(exc.status() or "")
            if attempt == retries or not any(code in status for code in RETRYABLE_STATUS):
                raise InferenceFailed(f"{status or 'error'}: {exc.message()}") from exc
        await asyncio.sleep(min(10.0, backoff * 2**attempt) * random.uniform(0.5, 1.0))
    raise AssertionError("unreachable")
