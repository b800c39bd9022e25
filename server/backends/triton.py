"""The Triton backend: the same interface over tritonclient's asyncio gRPC client.

Metadata comes from the same `model_repository/<model>/<version>/crosspoint.json` files the embedded
backend reads, so preprocessing is identical; each call pins the version whose metadata was used.
Triton batches requests itself (dynamic batching); the gateway bounds rows in flight for backpressure
and splits a request bigger than the model's `max_batch_size`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import tritonclient.grpc.aio as grpcclient
from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE
from tritonclient.utils import InferenceServerException

from server.backends.base import MODEL_OUTPUTS, InferenceBackend, ModelInfo, ServedModel, read_info
from server.errors import ServingError, scrub

logger = logging.getLogger(__name__)

# gRPC's reconnect backoff grows to 120 s by default: after a Triton restart the gateway kept failing for
# ~10 s. Retrying the connection every 0.1-0.5 s serves again within a second of Triton being ready.
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
    ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]
# Triton unreachable (down, restarting) or not answering in time: the client should retry, not give up.
_RETRYABLE = {"StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED", "StatusCode.CANCELLED"}


@dataclass(eq=False)
class TritonModel(ServedModel):
    info: ModelInfo
    max_batch_size: int
    outputs: tuple[str, ...]


class TritonBackend(InferenceBackend):
    kind: ClassVar[str] = "triton"

    async def start(self) -> None:
        self.client = grpcclient.InferenceServerClient(self.settings.triton_url, channel_args=CHANNEL_ARGS)
        self._in_flight = 0
        await self.load_all()

    async def stop(self) -> None:
        await self.client.close()

    async def _ready_version(self, name: str, version: str) -> bool:
        try:
            return bool(
                await self.client.is_model_ready(
                    name, version, client_timeout=min(5.0, self.settings.triton_timeout_s)
                )
            )
        except InferenceServerException:
            return False

    async def reload(self) -> list[ModelInfo]:
        swapped = []
        for name in self.settings.models:
            current = self._served.get(name)
            versions = self.versions(name)
            for version in reversed(versions):
                if current is not None and current.info.version == version:
                    break  # the newest version Triton serves is served already
                if not await self._ready_version(name, version):
                    self._record_failure(name, version, "Triton does not serve this version")
                    continue
                try:
                    info = read_info(self.settings.model_repository, name, version)
                    config = await self.client.get_model_config(name, version, as_json=True)
                except (OSError, ValueError, InferenceServerException) as exc:
                    logger.warning("could not use %s version %s: %s", name, version, exc)
                    self._record_failure(name, version, str(exc))
                    continue
                cfg = config.get("config", config)
                declared = [str(o.get("name")) for o in cfg.get("output", [])]
                outputs = tuple(o for o in MODEL_OUTPUTS[name] if o in declared) or MODEL_OUTPUTS[name]
                model = TritonModel(
                    info=info, max_batch_size=int(cfg.get("max_batch_size", 0) or 0), outputs=outputs
                )
                self._swap(model)
                if current is not None:
                    self.metrics.reloads.labels(model=name).inc()
                logger.info("serving %s version %s from Triton", name, version)
                swapped.append(info)
                break
            self._forget_missing(name, versions)
        return swapped

    async def infer(self, served: ServedModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert isinstance(served, TritonModel)
        rows = int(next(iter(inputs.values())).shape[0])
        if self._in_flight and self._in_flight + rows > self.settings.max_queue:
            raise ServingError(
                "overloaded",
                "too many requests are waiting for Triton; try again shortly",
                retry_after=self.settings.retry_after_s,
            )
        self._in_flight += rows
        self.metrics.queue_depth.set(self._in_flight)
        try:
            step = served.max_batch_size or rows
            parts = [
                await self._call(served, {k: v[start : start + step] for k, v in inputs.items()})
                for start in range(0, rows, step)
            ]
        finally:
            self._in_flight -= rows
            self.metrics.queue_depth.set(self._in_flight)
        return {name: np.concatenate([p[name] for p in parts], axis=0) for name in served.outputs}

    async def _call(self, served: TritonModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        request = []
        for name, value in inputs.items():
            tensor = grpcclient.InferInput(name, list(value.shape), "FP32")
            tensor.set_data_from_numpy(np.ascontiguousarray(value, dtype=np.float32))
            request.append(tensor)
        wanted = [grpcclient.InferRequestedOutput(name) for name in served.outputs]
        name = served.info.name
        with self.metrics.inference_latency.labels(model=name).time():
            try:
                result = await self.client.infer(
                    name,
                    request,
                    model_version=served.info.version,
                    outputs=wanted,
                    client_timeout=self.settings.triton_timeout_s,
                )
            except InferenceServerException as exc:
                logger.warning("Triton call to %s v%s failed: %s", name, served.info.version, exc)
                if str(exc.status()) in _RETRYABLE:
                    raise ServingError(
                        "backend_unavailable",
                        "the inference server is unreachable or not answering; try again shortly",
                        retry_after=self.settings.retry_after_s,
                    ) from None
                raise ServingError(
                    "backend_error", f"the Triton server failed on {name}: {exc.message()}"
                ) from None
        self.metrics.batch_size.labels(model=name).observe(int(next(iter(inputs.values())).shape[0]))
        outputs = {}
        for output in served.outputs:
            value = result.as_numpy(output)
            if value is None:
                raise ServingError("backend_error", f"Triton's answer from {name} lacks {output}")
            outputs[output] = value
        return outputs

    async def check(self) -> dict[str, Any]:
        try:
            live = await self.client.is_server_live(client_timeout=5.0)
            ready = await self.client.is_server_ready(client_timeout=5.0)
        except InferenceServerException as exc:
            return {"ok": False, "error": scrub(exc.message() or "Triton is unreachable")}
        models = {m.info.name: await self._ready_version(m.info.name, m.info.version) for m in self.served()}
        return {"ok": bool(live and ready and all(models.values())), "models": models}
