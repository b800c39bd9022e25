"""MicroBatcher with a recording callable in place of ONNX Runtime (the endpoint tests use the real one)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest

from server.backends.batching import Closed, MicroBatcher, Overloaded


class Recorder:
    """Doubles its input; remembers the batch sizes it was called with."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.calls: list[tuple[Any, int]] = []
        self.delay = delay
        self.fail = fail
        self.threads: set[str] = set()

    def __call__(self, target: Any, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("backend broke")
        self.calls.append((target, int(inputs["x"].shape[0])))
        return {"y": inputs["x"] * 2}


def rows(value: float, n: int = 1) -> dict[str, np.ndarray]:
    return {"x": np.full((n, 3), value, dtype=np.float32)}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def make(recorder: Recorder, **kwargs: Any) -> MicroBatcher:
    options = {"max_batch_size": 4, "max_delay_s": 0.05, "max_queue": 100} | kwargs
    batcher = MicroBatcher(recorder, **options)
    batcher.start()
    return batcher


def test_concurrent_requests_share_one_call() -> None:
    recorder = Recorder()

    async def scenario() -> list[dict[str, np.ndarray]]:
        batcher = make(recorder)
        results = await asyncio.gather(*(batcher.submit("k", "model", rows(i)) for i in range(10)))
        await batcher.close()
        return list(results)

    results = run(scenario())
    assert [r["y"][0, 0] for r in results] == [2.0 * i for i in range(10)]  # each gets its own rows back
    assert [n for _, n in recorder.calls] == [4, 4, 2]
    assert recorder.threads == {"batcher_0"}  # off the event loop


def test_keys_are_not_mixed_and_order_is_kept() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        batcher = make(recorder)
        jobs = [batcher.submit(("a" if i % 2 else "b"), i % 2, rows(i)) for i in range(6)]
        await asyncio.gather(*jobs)
        await batcher.close()

    run(scenario())
    assert sorted(recorder.calls) == [(0, 3), (1, 3)]


def test_delay_bounds_waiting_for_a_full_batch() -> None:
    recorder = Recorder()

    async def scenario() -> float:
        batcher = make(recorder, max_delay_s=0.2)
        started = time.perf_counter()
        await batcher.submit("k", None, rows(1))
        elapsed = time.perf_counter() - started
        await batcher.close()
        return elapsed

    elapsed = run(scenario())
    assert 0.15 <= elapsed < 2.0 and recorder.calls == [(None, 1)]


def test_multi_row_jobs_and_model_limit() -> None:
    recorder = Recorder()

    async def scenario() -> None:
        batcher = make(recorder, max_batch_size=16)
        await asyncio.gather(*(batcher.submit("k", None, rows(i, 3), max_rows=4) for i in range(3)))
        big = await batcher.submit("k", None, rows(9, 20))  # bigger than any batch: runs alone
        assert big["y"].shape == (20, 3)
        await batcher.close()

    run(scenario())
    assert [n for _, n in recorder.calls] == [3, 3, 3, 20]


def test_full_queue_refuses_and_close_drains() -> None:
    recorder = Recorder(delay=0.1)

    async def scenario() -> None:
        batcher = make(recorder, max_batch_size=1, max_queue=2, max_delay_s=0)
        first = asyncio.create_task(batcher.submit("k", None, rows(1)))
        await asyncio.sleep(0.02)  # first is running; the queue is empty again
        queued = [asyncio.create_task(batcher.submit("k", None, rows(i))) for i in (2, 3)]
        await asyncio.sleep(0)
        assert batcher.depth == 2
        with pytest.raises(Overloaded):
            await batcher.submit("k", None, rows(4))
        await batcher.close()  # finishes the queued work
        assert [t.result()["y"][0, 0] for t in (first, *queued)] == [2.0, 4.0, 6.0]
        with pytest.raises(Closed):
            await batcher.submit("k", None, rows(5))

    run(scenario())


def test_backend_errors_reach_every_request_in_the_batch() -> None:
    async def scenario() -> list[Any]:
        batcher = make(Recorder(fail=True))
        results = await asyncio.gather(
            *(batcher.submit("k", None, rows(i)) for i in range(3)), return_exceptions=True
        )
        await batcher.close()
        return list(results)

    assert all(isinstance(r, RuntimeError) for r in run(scenario()))
