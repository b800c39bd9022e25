"""The batch run: files -> worker processes (preprocess) -> batches -> Triton (gRPC aio) -> store.

Three bounded stages keep memory flat however many files there are: at most `2 * workers`
preprocessing chunks are queued, at most `max_in_flight` batches are at Triton, and finished rows
go to the store, which flushes part files as it goes (see `store.py`).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clients.batch.inputs import FileKey, default_workers, discover, file_key
from clients.batch.preprocess import Prepared, PrepareSettings, init_worker, prepare_chunk, worker_ready
from clients.batch.settings import RunSettings, resolve_settings
from clients.batch.store import INFERENCE_FAILED, ResultStore
from clients.batch.triton import InferenceFailed, ModelSpec, infer_batch, model_spec

MAX_FAILED_BATCHES_IN_A_ROW = 5
SCALARS = (
    "path",
    "size",
    "mtime_ns",
    "sha256",
    "model",
    "version",
    "num_points",
    "seed",
    "error_code",
    "error_message",
)


class WorkerStartError(RuntimeError):
    """The preprocessing processes cannot start at all (not one bad file): the run stops."""


@dataclass(frozen=True)
class BatchJob:
    task: str  # "embed" | "classify"
    inputs: list[str]
    out: Path
    triton_url: str
    repository: Path | None = Path("model_repository")
    model: str | None = None  # default: the task's model name
    model_version: str | None = None  # default: the newest version in the repository
    num_points: int | None = None  # default: the model's crosspoint.json
    up_axis: str | None = None
    seed: int = 0
    workers: int = field(default_factory=default_workers)
    batch_size: int = 32
    max_in_flight: int = 4
    hash_keys: bool = False
    retry_errors: bool = False
    flush_rows: int = 512
    flush_seconds: float = 30.0
    max_memory_mb: int | None = None
    infer_retries: int = 4  # per batch, for UNAVAILABLE / RESOURCE_EXHAUSTED
    progress: bool = True


@dataclass(frozen=True)
class BatchSummary:
    out: Path
    total: int  # files found
    skipped: int  # already in the output
    succeeded: int
    failed: int
    seconds: float
    rows: int  # rows in the output after the merge

    @property
    def files_per_second(self) -> float:
        return (self.succeeded + self.failed) / self.seconds if self.seconds > 0 else 0.0


def run_batch(job: BatchJob) -> BatchSummary:
    return asyncio.run(_run(job))


async def _run(job: BatchJob) -> BatchSummary:
    import tritonclient.grpc.aio as grpcclient

    start = time.monotonic()
    files = discover(job.inputs)
    client = grpcclient.InferenceServerClient(job.triton_url)
    try:
        settings, spec = await _open_model(client, job)
        store = ResultStore(
            job.out, dict(spec.output_dims), _scalar_columns(job.task), job.flush_rows, job.flush_seconds
        )
        store.load_done()
        keys = await asyncio.to_thread(lambda: [file_key(p, job.hash_keys) for p in files])
        todo = [k for k in keys if not store.is_done(k, job.retry_errors)]
        run = _Run(job, settings, spec, store, todo, client)
        try:
            await run.execute(skipped=len(files) - len(todo))
        finally:
            # Whatever finished is kept, even on Ctrl-C: the next run starts from there.
            store.flush()
        rows = store.finalize()
    finally:
        await client.close()
    return BatchSummary(
        job.out, len(files), len(files) - len(todo), run.succeeded, run.failed, time.monotonic() - start, rows
    )


async def _open_model(client: Any, job: BatchJob) -> tuple[RunSettings, ModelSpec]:
    model = job.model or job.task
    settings = resolve_settings(
        job.repository, model, job.model_version, job.num_points, job.up_axis, job.seed
    )
    spec = await model_spec(client, model, settings.version, job.task)
    if not settings.from_repository:
        settings = resolve_settings(
            None, model, settings.version, job.num_points, job.up_axis, job.seed, parameters=spec.parameters
        )
    return settings, spec


def _scalar_columns(task: str) -> tuple[str, ...]:
    return (*SCALARS, "label", "probability") if task == "classify" else SCALARS


class _Run:
    """State of one run; methods are the pipeline stages."""

    def __init__(
        self,
        job: BatchJob,
        settings: RunSettings,
        spec: ModelSpec,
        store: ResultStore,
        todo: list[FileKey],
        client: Any,
    ) -> None:
        self.job, self.settings, self.spec, self.store, self.todo, self.client = (
            job,
            settings,
            spec,
            store,
            todo,
            client,
        )
        self.batch_size = min(job.batch_size, spec.max_batch_size) if spec.max_batch_size > 0 else 1
        self.prepare = PrepareSettings(
            settings.num_points, settings.up_axis, settings.seed, settings.min_points, job.max_memory_mb
        )
        self.pending: dict[int, list[Prepared]] = {}  # prepared points waiting for a full batch, by N
        self.inflight: set[asyncio.Task[None]] = set()
        self.infer_slots = asyncio.Semaphore(job.max_in_flight)
        self.succeeded = 0
        self.failed = 0
        self.pool: ProcessPoolExecutor | None = None
        self.pool_generation = 0
        self.pool_lock = asyncio.Lock()
        self.failed_batches_in_a_row = 0
        self.fatal: BaseException | None = None  # set when the run must stop; raised by the stages

    async def execute(self, skipped: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=len(self.todo) + skipped,
            initial=skipped,
            unit="file",
            disable=not self.job.progress,
            desc=f"batch {self.job.task}",
            smoothing=0.05,
        )
        self.pool = await self._start_pool()
        preparing: set[asyncio.Task[None]] = set()
        try:
            prep_slots = asyncio.Semaphore(2 * self.job.workers)
            for chunk in _chunks(list(enumerate(self.todo)), self.batch_size):
                await prep_slots.acquire()
                self._stop_if_failed()
                self._spawn(preparing, self._prepare(chunk, prep_slots))
            await self._drain(preparing)
            for group in self.pending.values():
                for batch in _chunks(group, self.batch_size):
                    await self._launch(batch)
            self.pending.clear()
            await self._drain(self.inflight)
        finally:
            for task in [*preparing, *self.inflight]:
                task.cancel()
            if self.pool is not None:
                self.pool.shutdown(wait=False, cancel_futures=True)
            self.bar.close()

    def _spawn(self, tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None]) -> None:
        """Start a stage task; its failure (if any) stops the run at the next check."""
        task = asyncio.create_task(work)
        tasks.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            tasks.discard(finished)
            if not finished.cancelled() and finished.exception() is not None and self.fatal is None:
                self.fatal = finished.exception()

        task.add_done_callback(done)

    async def _drain(self, tasks: set[asyncio.Task[None]]) -> None:
        """Wait for the stage's tasks; stop at the first failure (the finally block cancels the rest)."""
        while tasks and self.fatal is None:
            await asyncio.wait(set(tasks), return_when=asyncio.FIRST_EXCEPTION)
        self._stop_if_failed()

    def _stop_if_failed(self) -> None:
        if self.fatal is not None:
            raise self.fatal

    async def _start_pool(self) -> ProcessPoolExecutor:
        """A pool whose workers have started and imported crosspoint.geometry, or WorkerStartError."""
        # forkserver, not fork: the parent runs gRPC threads, and forking those is unsafe. The server
        # preloads the worker module, so each worker starts with numpy/trimesh already imported.
        # (As with any spawn/forkserver pool, a script calling this needs `if __name__ == "__main__":`.)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["clients.batch.preprocess"])
        pool = ProcessPoolExecutor(
            self.job.workers, mp_context=context, initializer=init_worker, initargs=(self.job.max_memory_mb,)
        )
        try:
            await asyncio.get_running_loop().run_in_executor(pool, worker_ready)
        except BrokenProcessPool as exc:
            pool.shutdown(wait=False, cancel_futures=True)
            raise WorkerStartError(f"preprocessing workers die on start ({exc}); see the log above") from None
        return pool

    async def _replace_pool(self, generation: int) -> None:
        """After a worker died: one new pool, however many chunks noticed the death."""
        async with self.pool_lock:
            if generation != self.pool_generation:
                return
            assert self.pool is not None
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = await self._start_pool()
            self.pool_generation += 1

    async def _prepare(self, chunk: list[tuple[int, FileKey]], slots: asyncio.Semaphore) -> None:
        try:
            items = [(index, key.path) for index, key in chunk]
            for prepared in await self._in_pool(items):
                if prepared.points is None:
                    self._record(self.todo[prepared.index], None, prepared.error_code, prepared.error_message)
                    continue
                group = self.pending.setdefault(len(prepared.points), [])
                group.append(prepared)
                if len(group) >= self.batch_size:
                    self.pending[len(prepared.points)] = []
                    await self._launch(group)
        finally:
            slots.release()

    async def _in_pool(self, items: list[tuple[int, str]]) -> list[Prepared]:
        """Run a chunk in the pool; if a worker dies (a crash, the OOM killer), find the file that did it."""
        loop = asyncio.get_running_loop()
        generation = self.pool_generation
        assert self.pool is not None
        try:
            return await loop.run_in_executor(self.pool, prepare_chunk, items, self.prepare)
        except BrokenProcessPool:
            await self._replace_pool(generation)
        if len(items) == 1:
            index, path = items[0]
            return [
                Prepared(index, None, "worker_crashed", f"preprocessing {Path(path).name} killed its worker")
            ]
        results: list[Prepared] = []
        for item in items:  # one at a time, so only the guilty file gets the error
            results += await self._in_pool([item])
        return results

    async def _launch(self, batch: list[Prepared]) -> None:
        await self.infer_slots.acquire()
        if self.fatal is not None:
            self.infer_slots.release()
            raise self.fatal
        self._spawn(self.inflight, self._infer(batch))

    async def _infer(self, batch: list[Prepared]) -> None:
        try:
            points = np.stack([p.points for p in batch if p.points is not None])
            try:
                outputs = await infer_batch(self.client, self.spec, points, retries=self.job.infer_retries)
            except InferenceFailed as exc:
                for item in batch:
                    self._record(self.todo[item.index], None, INFERENCE_FAILED, str(exc))
                self.failed_batches_in_a_row += 1
                if self.failed_batches_in_a_row >= MAX_FAILED_BATCHES_IN_A_ROW and self.fatal is None:
                    # Triton is gone, not one odd batch: stop instead of failing every remaining file.
                    self.fatal = InferenceFailed(
                        f"{self.failed_batches_in_a_row} batches in a row failed; last: {exc}"
                    )
                return
            self.failed_batches_in_a_row = 0
            for i, item in enumerate(batch):
                self._record(self.todo[item.index], {name: values[i] for name, values in outputs.items()})
        finally:
            self.infer_slots.release()

    def _record(
        self, key: FileKey, outputs: dict[str, np.ndarray] | None, code: str = "", message: str = ""
    ) -> None:
        row: dict[str, Any] = {
            "path": key.path,
            "size": key.size,
            "mtime_ns": key.mtime_ns,
            "sha256": key.sha256,
            "model": self.spec.name,
            "version": self.spec.version,
            "num_points": self.settings.num_points,
            "seed": self.settings.seed,
            "error_code": code,
            "error_message": message,
        }
        if outputs is not None:
            row.update(outputs)
            if "logits" in outputs:
                row.update(_top1(outputs["logits"], self.settings.class_names))
            self.succeeded += 1
        else:
            self.failed += 1
            self.bar.set_postfix(errors=self.failed, refresh=False)
        self.store.add(row)
        self.bar.update(1)


def _top1(logits: np.ndarray, class_names: list[str]) -> dict[str, Any]:
    shifted = np.exp(logits.astype(np.float64) - logits.max())
    index = int(np.argmax(logits))
    label = class_names[index] if index < len(class_names) else str(index)
    return {"label": label, "probability": float(shifted[index] / shifted.sum())}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
