"""`ParsePool`: a few sandboxed parse worker processes, each doing one task at a time.

The pool, not the worker, enforces wall-clock time: a task that overruns gets its worker SIGKILLed
(its whole process group) and replaced. A worker that dies (memory cap, crash) or breaks the
protocol is replaced too; the request that hit it gets a typed error. Nothing is left behind: workers
die with the gateway (PR_SET_PDEATHSIG) and `stop` kills any that remain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Coroutine, Mapping
from typing import Any

from server.core.config import REPO_ROOT
from server.metrics import Metrics
from server.services.parse_worker import EXIT_OUT_OF_MEMORY
from server.services.wire import Buffer, WireError, encode, read_frame_async

logger = logging.getLogger(__name__)


class WorkerFailure(Exception):
    """A task did not complete on its worker: `reason` is timeout, crashed or protocol."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PoolBusy(Exception):
    """More tasks are waiting for a worker than the pool accepts."""


class PoolClosed(Exception):
    """The pool is stopping."""


class _Worker:
    """One child process and its pipes."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: asyncio.subprocess.Process | None = None
        self.busy = False
        self.lock = asyncio.Lock()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        if self.proc is None or self.proc.returncode is not None:
            return False
        # The event loop hears of a child's exit from asyncio's child watcher thread, which on a loaded
        # machine runs late: a worker SIGKILLed from outside stayed listed (and could be handed the next
        # task) until then. waitid(WNOWAIT) asks the kernel without reaping, so the watcher still gets it.
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None
        except ChildProcessError:  # reaped meanwhile
            return False

    async def start(
        self, memory_mb: int, max_tasks: int, timeout: float, extra_env: Mapping[str, str]
    ) -> None:
        env = dict(os.environ)
        env.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
        env.update(extra_env)
        path = [str(REPO_ROOT), *(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p)]
        env["PYTHONPATH"] = os.pathsep.join(path)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.services.parse_worker",
            "--memory-mb",
            str(memory_mb),
            "--max-tasks",
            str(max_tasks),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,  # its own process group: Ctrl-C on the gateway does not reach it
        )
        try:
            header, _ = await asyncio.wait_for(self._read(), timeout)
        except (TimeoutError, asyncio.IncompleteReadError, WireError) as exc:
            await self.kill()
            raise RuntimeError(f"parse worker did not start ({type(exc).__name__})") from exc
        if not header.get("ready"):
            await self.kill()
            raise RuntimeError("parse worker sent no ready message")

    async def _read(self) -> tuple[dict[str, Any], dict[str, Buffer]]:
        assert self.proc is not None and self.proc.stdout is not None
        return await read_frame_async(self.proc.stdout.readexactly)

    async def exchange(
        self, header: dict[str, Any], buffers: dict[str, Buffer]
    ) -> tuple[dict[str, Any], dict[str, Buffer]]:
        assert self.proc is not None and self.proc.stdin is not None
        for chunk in encode(header, buffers):
            self.proc.stdin.write(chunk)
        await self.proc.stdin.drain()
        return await self._read()

    async def exit_code(self, wait: float = 2.0) -> int | None:
        """The exit status of a worker that is going away (None if it is still running)."""
        if self.proc is None:
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), wait)
        return self.proc.returncode

    async def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 10)

    async def close(self, grace: float = 2.0) -> None:
        """Ask the worker to exit (EOF on stdin), then kill it if it does not."""
        if self.proc is not None and self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), grace)
        await self.kill()


class ParsePool:
    """Runs worker tasks with a time limit; at most `size` at once, at most `max_waiting` queued."""

    def __init__(
        self,
        size: int,
        *,
        memory_mb: int,
        max_tasks_per_worker: int,
        start_timeout_s: float,
        max_waiting: int,
        metrics: Metrics,
        worker_env: Mapping[str, str] | None = None,
    ) -> None:
        self._workers = [_Worker(i) for i in range(size)]
        self._worker_env = dict(worker_env or {})
        self._memory_mb = memory_mb
        self._max_tasks = max_tasks_per_worker
        self._start_timeout = start_timeout_s
        self._max_waiting = max_waiting
        self._metrics = metrics
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._waiting = 0
        self._closed = False
        self._background: set[asyncio.Task[None]] = set()

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self._workers if w.alive and w.pid is not None]

    @property
    def alive(self) -> int:
        return sum(w.alive for w in self._workers)

    async def start(self) -> None:
        try:
            await asyncio.gather(*(self._start_worker(w) for w in self._workers))
        except BaseException:
            await self.stop()
            raise
        for worker in self._workers:
            self._idle.put_nowait(worker)

    async def _start_worker(self, worker: _Worker) -> None:
        async with worker.lock:
            if worker.alive:
                return
            await worker.start(self._memory_mb, self._max_tasks, self._start_timeout, self._worker_env)
            assert worker.proc is not None
            self._spawn(self._watch(worker, worker.proc))
        self._update_gauge()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _watch(self, worker: _Worker, proc: asyncio.subprocess.Process) -> None:
        """A worker that dies while idle (killed from outside) is replaced at once, not at next use."""
        await proc.wait()
        if self._closed or worker.proc is not proc or worker.busy:
            return  # replaced already, or the request using it reports and replaces it
        logger.warning(
            "parse worker %d (pid %d) died while idle (exit %s); replacing it",
            worker.index,
            proc.pid,
            proc.returncode,
        )
        self._metrics.parse_restarts.labels(reason="died_idle").inc()
        await self._restart(worker)

    def _update_gauge(self) -> None:
        self._metrics.parse_workers.set(self.alive)

    async def run(
        self, header: dict[str, Any], buffers: dict[str, Buffer], timeout: float
    ) -> tuple[dict[str, Any], dict[str, Buffer]]:
        """One task on an idle worker; the timeout counts from when a worker takes it."""
        if self._closed:
            raise PoolClosed
        if self._idle.empty() and self._waiting >= self._max_waiting:
            raise PoolBusy
        self._waiting += 1
        try:
            worker = await self._idle.get()
        finally:
            self._waiting -= 1
        started = time.perf_counter()
        healthy = False
        worker.busy = True  # until it is back in the idle queue (the watcher leaves busy workers alone)
        try:
            try:
                await self._start_worker(worker)  # no-op unless it died while idle
            except Exception as exc:
                raise WorkerFailure("unavailable", f"no parse worker could be started ({exc})") from None
            try:
                result = await asyncio.wait_for(worker.exchange(header, buffers), timeout)
            except TimeoutError:
                raise WorkerFailure("timeout", f"parsing took longer than {timeout:g} s") from None
            except (asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError):
                if await worker.exit_code() == EXIT_OUT_OF_MEMORY:
                    raise WorkerFailure(
                        "memory", "the input needed more memory than the limit allows"
                    ) from None
                raise WorkerFailure("crashed", "the parse worker died while reading this input") from None
            except WireError as exc:
                raise WorkerFailure("protocol", f"the parse worker sent a broken answer ({exc})") from None
            healthy = not result[0].get("retiring", False)
            return result
        except WorkerFailure as exc:
            self._metrics.parse_restarts.labels(reason=exc.reason).inc()
            raise
        finally:
            self._metrics.parse_latency.observe(time.perf_counter() - started)
            self._release(worker, healthy)

    def _release(self, worker: _Worker, healthy: bool) -> None:
        if healthy and worker.alive:
            worker.busy = False
            self._idle.put_nowait(worker)
            return
        self._spawn(self._replace(worker))

    async def _replace(self, worker: _Worker) -> None:
        # Runs even when the request that used the worker was cancelled: the slot always comes back.
        await worker.kill()
        await self._restart(worker)
        worker.busy = False
        if not self._closed:
            self._idle.put_nowait(worker)

    async def _restart(self, worker: _Worker) -> None:
        delay = 0.5
        while not self._closed:
            try:
                await self._start_worker(worker)
                break
            except Exception:
                logger.exception("parse worker restart failed; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        self._update_gauge()

    async def stop(self) -> None:
        self._closed = True
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await asyncio.gather(*(w.close() for w in self._workers))
        self._update_gauge()
