"""Servers under test as subprocesses on loopback ports: started, waited for, scraped, stopped.

Each runs in its own session (process group), so stopping it also stops what it started (the
gateway's parse workers); its output goes to a log file whose tail is shown if it fails to start.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.measure import REPO_ROOT

_TICK = os.sysconf("SC_CLK_TCK")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)$")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    url: str
    pid: int  # also its process group

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server, its process group and descendants."""
        return group_cpu_seconds(self.pid)


def group_cpu_seconds(group: int) -> float:
    """CPU time (user + system) used so far by the process group `group` and by every descendant of its
    leader (the gateway's parse workers run in sessions of their own), reaped children included."""
    procs: dict[int, tuple[int, int, int]] = {}  # pid -> (parent, group, clock ticks)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process exited meanwhile
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
        ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        procs[int(stat.parent.name)] = (int(fields[1]), int(fields[2]), ticks)

    def counted(pid: int) -> bool:
        for _ in range(64):  # up the parent chain to the leader (or to init)
            if pid == group or procs.get(pid, (0, 0, 0))[1] == group:
                return True
            pid = procs.get(pid, (0, 0, 0))[0]
            if pid <= 1:
                return False
        return False

    return sum(ticks for pid, (_, _, ticks) in procs.items() if counted(pid)) / _TICK


@dataclass(frozen=True)
class ServerSpec:
    args: Sequence[str]  # after `python`
    port: int
    ready_path: str  # answers 200 once the server can take requests
    env: dict[str, str] | None = None


@contextlib.contextmanager
def server_processes(
    specs: Sequence[ServerSpec | None], timeout: float = 180.0
) -> Iterator[list[Server | None]]:
    """Start every server at once (each in its own process group, output to a log file), wait until
    all are ready, stop them all when the block ends. `None` specs give `None` servers."""
    started: list[tuple[subprocess.Popen[bytes], Any] | None] = []
    try:
        for spec in specs:
            if spec is None:
                started.append(None)
                continue
            log = tempfile.NamedTemporaryFile(prefix="bench-server-", suffix=".log", delete=False)  # noqa: SIM115
            process = subprocess.Popen(
                [sys.executable, *spec.args],
                cwd=REPO_ROOT,
                env={**os.environ, **(spec.env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            started.append((process, log))
        deadline = time.monotonic() + timeout
        servers: list[Server | None] = []
        for spec, entry in zip(specs, started, strict=True):
            if spec is None or entry is None:
                servers.append(None)
                continue
            process, log = entry
            url = f"http://127.0.0.1:{spec.port}"
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = Path(log.name).read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"{' '.join(spec.args)} did not become ready on {url}:\n{tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + spec.ready_path, timeout=5).status_code == 200:
                        break
                time.sleep(0.5)
            servers.append(Server(url, process.pid))
        yield servers
    finally:
        for entry in started:
            if entry is not None:
                _stop(entry[0])
                entry[1].close()
                Path(entry[1].name).unlink(missing_ok=True)


@contextlib.contextmanager
def server_process(
    args: Sequence[str], port: int, ready_path: str, env: dict[str, str] | None = None, timeout: float = 180.0
) -> Iterator[Server]:
    """One server (see `server_processes`)."""
    with server_processes([ServerSpec(args, port, ready_path, env)], timeout) as (server,):
        assert server is not None
        yield server


def _stop(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever of the group is left (workers)
    process.wait()


def scrape(url: str) -> dict[str, float]:
    """Prometheus text of `url`/metrics as {'name{labels}': value}."""
    values = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match:
            values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return values


def delta(before: dict[str, float], after: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)
