"""The embedded backend: ONNX Runtime sessions in this process, fed by the micro-batcher.

CUDA is used when onnxruntime-gpu and a GPU are present (unless `ort_providers` says otherwise).
A new version is loaded and warmed up completely before it is swapped in; requests already holding
the old `OrtModel` finish on it, and its session is freed when the last of them lets go.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort

from export.precision import RowwiseSession, Served, serving_choice
from export.repository import read_max_batch_size
from server.backends.base import (
    MODEL_INPUTS,
    MODEL_OUTPUTS,
    InferenceBackend,
    ModelInfo,
    ServedModel,
    read_info,
    version_stamp,
)
from server.backends.batching import Closed, MicroBatcher, Overloaded
from server.backends.openvino import OpenVinoSession
from server.core.config import Settings
from server.errors import ServingError

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class OrtModel(ServedModel):
    info: ModelInfo
    session: ort.InferenceSession | OpenVinoSession | RowwiseSession
    outputs: tuple[str, ...]
    max_batch_size: int  # the model's own limit (config.pbtxt), 0 = none
    precision: str = "fp32"  # what /v1/models reports: fp32 | bf16
    runtime: str = "onnxruntime"  # onnxruntime | openvino (export/precision.py chose it)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(list(self.outputs), inputs)
        return dict(zip(self.outputs, values, strict=True))


def model_max_batch(info: ModelInfo) -> int:
    """`max_batch_size` from the model's config.pbtxt (the limit the export chose), 0 when absent."""
    return read_max_batch_size(info.path.parent.parent, info.name)


def call_row_limit(model_max_batch: int, num_points: int, settings: Settings) -> int:
    """Rows one backend call may take: the model's own limit, the batcher's, and the kNN memory bound
    (rows x points^2 <= max_batch_point_pairs; a lone row still runs, padded or not)."""
    by_memory = max(1, settings.max_batch_point_pairs // max(1, num_points * num_points))
    return min(model_max_batch or settings.max_batch_size, settings.max_batch_size, by_memory)


def providers(requested: list[str] | None) -> list[str]:
    available = ort.get_available_providers()
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise RuntimeError(f"ONNX Runtime providers {missing} are not available here (have {available})")
        return requested
    preferred = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return [p for p in preferred if p in available] or available


class OnnxRuntimeBackend(InferenceBackend):
    kind: ClassVar[str] = "onnxruntime"

    async def start(self) -> None:
        s = self.settings
        self._failed: dict[tuple[str, str], tuple[Any, ...]] = {}  # (model, version) -> files that failed
        self._providers = providers(s.ort_providers)
        self.batcher = MicroBatcher(
            self._run_batch,
            max_batch_size=s.max_batch_size,
            max_delay_s=s.max_batch_delay_ms / 1000.0,
            max_queue=s.max_queue,
            on_batch=self._observe_batch,
            on_depth=self.metrics.queue_depth.set,
        )
        self.batcher.start()
        logger.info("onnxruntime backend: providers %s", self._providers)
        await self.load_all()

    async def stop(self) -> None:
        await self.batcher.close(timeout=float(self.settings.graceful_timeout_s))

    def _session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings.ort_intra_op_threads
        options.inter_op_num_threads = self.settings.ort_inter_op_threads
        spinning = "1" if self.settings.ort_allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        options.enable_cpu_mem_arena = self.settings.ort_cpu_mem_arena
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return options

    def _serving_choice(self, info: ModelInfo) -> Served:
        if "CUDAExecutionProvider" in self._providers:
            return Served("onnxruntime", "fp32", "ONNX Runtime on the GPU")
        return serving_choice(info.path, self.settings.precision)

    def _load(self, info: ModelInfo) -> OrtModel:
        choice = self._serving_choice(info)
        session: ort.InferenceSession | OpenVinoSession | RowwiseSession | None = None
        if choice.runtime == "openvino":
            try:
                session = OpenVinoSession(
                    info.path / "model.onnx", choice.precision, self.settings.cpu_streams
                )
            except Exception as exc:  # the fp32 reference path still serves
                logger.warning(
                    "%s version %s: openvino failed (%s); fp32 ONNX Runtime", info.name, info.version, exc
                )
                choice = Served("onnxruntime", "fp32", f"openvino failed: {type(exc).__name__}")
        if session is None:
            session = ort.InferenceSession(
                str(info.path / choice.file), sess_options=self._session_options(), providers=self._providers
            )
            if choice.precision == "int8":
                session = RowwiseSession(session)  # per-row activation scales: batch-independent answers
        logger.info(
            "%s version %s: %s %s (%s)",
            info.name,
            info.version,
            choice.runtime,
            choice.precision,
            choice.reason,
        )
        have_in = {i.name for i in session.get_inputs()}
        have_out = [o.name for o in session.get_outputs()]
        missing = set(MODEL_INPUTS[info.name]) - have_in
        if missing:
            raise RuntimeError(f"{info.path}/model.onnx lacks inputs {sorted(missing)}")
        outputs = tuple(name for name in MODEL_OUTPUTS[info.name] if name in have_out)
        if not outputs:
            raise RuntimeError(f"{info.path}/model.onnx has none of the outputs {MODEL_OUTPUTS[info.name]}")
        model = OrtModel(
            info=info,
            session=session,
            outputs=outputs,
            max_batch_size=model_max_batch(info),
            precision=choice.precision,
            runtime=choice.runtime,
        )
        model.run(self._warmup_inputs(info))  # a file that loads but cannot run is not swapped in
        return model

    @staticmethod
    def _warmup_inputs(info: ModelInfo) -> dict[str, np.ndarray]:
        n = max(info.min_points, min(info.num_points, 256))
        points = np.random.default_rng(0).standard_normal((1, n, 3)).astype(np.float32)
        inputs = {"points": points}
        if info.name == "segment":
            category = np.zeros((1, 16), dtype=np.float32)
            category[0, 0] = 1.0
            inputs["category"] = category
        return inputs

    async def reload(self) -> list[ModelInfo]:
        swapped = []
        repository = self.settings.model_repository
        for name in self.settings.models:
            versions = self.versions(name)
            current = self._served.get(name)
            for version in reversed(versions):
                if current is not None and current.info.version == version:
                    break  # the newest version that loads is served already
                stamp = version_stamp(repository, name, version)
                if self._failed.get((name, version)) == stamp:
                    continue  # these files failed before; retried once they change (a copy in progress)
                try:
                    info = read_info(repository, name, version)
                    model = await asyncio.to_thread(self._load, info)
                except Exception as exc:
                    logger.warning("could not load %s version %s: %s", name, version, exc)
                    self._failed[(name, version)] = stamp
                    self._record_failure(name, version, f"failed to load ({type(exc).__name__}): {exc}")
                    continue
                self._swap(model)
                if current is not None:
                    self.metrics.reloads.labels(model=name).inc()
                logger.info("serving %s version %s", name, version)
                swapped.append(model.info)
                break
            self._forget_missing(name, versions)
            if not versions:
                self.last_error.setdefault(name, "no version in the model repository")
        return swapped

    def _run_batch(self, target: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert isinstance(target, OrtModel)
        if self.settings.batch_invariant and next(iter(inputs.values())).shape[0] == 1:
            padded = target.run({name: np.concatenate([value, value]) for name, value in inputs.items()})
            return {name: value[:1] for name, value in padded.items()}
        return target.run(inputs)

    def _observe_batch(self, target: Any, rows: int, seconds: float) -> None:
        name = target.info.name
        self.metrics.batch_size.labels(model=name).observe(rows)
        self.metrics.inference_latency.labels(model=name).observe(seconds)

    async def infer(self, served: ServedModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        assert isinstance(served, OrtModel)
        key = (id(served), *((name, value.shape[1:]) for name, value in sorted(inputs.items())))
        rows = int(next(iter(inputs.values())).shape[0])
        limit = call_row_limit(served.max_batch_size, inputs["points"].shape[1], self.settings)
        # More rows than one call may take (e.g. 16 category runs, segment max 8) go in chunks.
        chunks = [{k: v[i : i + limit] for k, v in inputs.items()} for i in range(0, rows, limit)]
        try:
            parts = await self.batcher.submit_many(key, served, chunks, max_rows=limit)
            if len(parts) == 1:
                return parts[0]
            return {name: np.concatenate([p[name] for p in parts], axis=0) for name in parts[0]}
        except Overloaded:
            raise ServingError(
                "overloaded",
                "the inference queue is full; try again shortly",
                retry_after=self.settings.retry_after_s,
            ) from None
        except Closed:
            raise ServingError("shutting_down", "the server is shutting down") from None

    async def check(self) -> dict[str, Any]:
        return {"ok": True, "providers": self._providers, "queue_depth": self.batcher.depth}
