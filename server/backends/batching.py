"""Micro-batching for the in-process backend: many requests, one ONNX Runtime call.

Requests submit rows (`[b, ...]` arrays) under a key (model instance + input shapes). The batcher
task takes the oldest job, waits up to `max_delay` for more jobs with the same key until
`max_batch_size` rows, concatenates them, runs ONE call in a worker thread, and splits the outputs
back. The queue is bounded in rows: a full queue refuses new work (`Overloaded`) instead of growing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

Arrays = dict[str, np.ndarray]
RunBatch = Callable[[Any, Arrays], Arrays]  # (target, stacked inputs) -> outputs, rows first
OnBatch = Callable[[Any, int, float], None]  # (target, rows, seconds)


class Overloaded(Exception):
    """The queue is full; try again later."""


class Closed(Exception):
    """The batcher is draining for shutdown."""


@dataclass
class _Job:
    key: Hashable
    target: Any
    inputs: Arrays
    rows: int
    max_rows: int
    future: asyncio.Future[Arrays]
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher:
    def __init__(
        self,
        run: RunBatch,
        *,
        max_batch_size: int,
        max_delay_s: float,
        max_queue: int,
        on_batch: OnBatch | None = None,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self._run = run
        self._max_rows = max_batch_size
        self._max_delay = max_delay_s
        self._max_queue = max_queue
        self._on_batch = on_batch
        self._on_depth = on_depth
        self._jobs: deque[_Job] = deque()
        self._rows = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._running: list[_Job] = []
        # One thread: the backend call is itself multi-threaded (intra-op); calls do not overlap.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batcher")

    @property
    def depth(self) -> int:
        """Rows waiting (not yet handed to the backend)."""
        return self._rows

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="micro-batcher")

    async def submit(
        self, key: Hashable, target: Any, inputs: Mapping[str, np.ndarray], max_rows: int | None = None
    ) -> Arrays:
        """Queue `inputs` (each `[b, ...]`, same b) and wait for the matching output rows.

        `max_rows` caps the batch this job joins (a model's own limit, below `max_batch_size`).
        """
        (result,) = await self.submit_many(key, target, [inputs], max_rows)
        return result

    async def submit_many(
        self,
        key: Hashable,
        target: Any,
        chunks: Sequence[Mapping[str, np.ndarray]],
        max_rows: int | None = None,
    ) -> list[Arrays]:
        """Several jobs of one request, admitted (or refused) together."""
        if self._closed:
            raise Closed
        sizes = []
        for inputs in chunks:
            rows = {int(a.shape[0]) for a in inputs.values()}
            if len(rows) != 1:
                raise ValueError("inputs disagree on the number of rows")
            sizes.append(rows.pop())
        total = sum(sizes)
        # A request bigger than the whole queue still runs, but only into an empty queue.
        if self._rows and self._rows + total > self._max_queue:
            raise Overloaded
        limit = min(self._max_rows, max_rows or self._max_rows)
        loop = asyncio.get_running_loop()
        jobs = [
            _Job(key, target, dict(inputs), b, limit, loop.create_future())
            for inputs, b in zip(chunks, sizes, strict=True)
        ]
        self._jobs.extend(jobs)
        self._set_depth(self._rows + total)
        self._idle.clear()
        self._wakeup.set()
        return list(await asyncio.gather(*(job.future for job in jobs)))

    def _set_depth(self, rows: int) -> None:
        self._rows = rows
        if self._on_depth:
            self._on_depth(rows)

    def _take_batch(self) -> list[_Job]:
        """The oldest job and the following jobs of its key, up to max rows (FIFO within the key)."""
        first = self._jobs[0]
        batch: list[_Job] = []
        rows = 0
        for job in list(self._jobs):
            if job.key != first.key:
                continue
            if batch and rows + job.rows > first.max_rows:
                break
            batch.append(job)
            rows += job.rows
        for job in batch:
            self._jobs.remove(job)
        self._set_depth(self._rows - rows)
        return batch

    def _rows_for(self, key: Hashable) -> int:
        return sum(job.rows for job in self._jobs if job.key == key)

    async def _loop(self) -> None:
        while True:
            while not self._jobs:
                self._idle.set()
                self._wakeup.clear()
                await self._wakeup.wait()
            first = self._jobs[0]
            deadline = first.enqueued + self._max_delay
            while self._rows_for(first.key) < first.max_rows:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
            batch = [job for job in self._take_batch() if not job.future.done()]
            if batch:
                await self._execute(batch)

    async def _execute(self, batch: list[_Job]) -> None:
        target = batch[0].target
        names = list(batch[0].inputs)
        stacked = {n: np.concatenate([job.inputs[n] for job in batch], axis=0) for n in names}
        rows = sum(job.rows for job in batch)
        started = time.perf_counter()
        self._running = batch
        try:
            outputs = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._run, target, stacked
            )
        except Exception as exc:
            logger.exception("backend call failed for a batch of %d rows", rows)
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            self._running = []
            return
        if self._on_batch:
            self._on_batch(target, rows, time.perf_counter() - started)
        offset = 0
        for job in batch:
            part = {name: value[offset : offset + job.rows] for name, value in outputs.items()}
            offset += job.rows
            if not job.future.done():
                job.future.set_result(part)
        self._running = []

    async def close(self, timeout: float = 30.0) -> None:
        """Refuse new work, finish what is queued (up to `timeout`), then stop the task."""
        self._closed = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for job in [*self._jobs, *self._running]:
            if not job.future.done():
                job.future.set_exception(Closed())
        self._jobs.clear()
        self._executor.shutdown(wait=True)
