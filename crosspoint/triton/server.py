"""Start and stop the `tritonserver` binary that nvidia-pytriton ships, on any model repository.

The pip wheel holds Triton 2.51 with only the python backend. `TritonServer.start` builds a backend
directory where the python backend also serves as the `onnxruntime` and `pytorch` backends (through
the shims in `crosspoint/triton/backends/`), launches the binary on free loopback ports in its own
process group, waits until every model has loaded or failed, and kills the whole group on `stop`,
on garbage collection and at interpreter exit: a test run never leaves a server behind.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import glob
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)

SHIM_BACKENDS = ("onnxruntime", "pytorch")
_SHIM_SOURCE = Path(__file__).resolve().parent / "backends"
_LIVE: weakref.WeakSet[TritonServer] = weakref.WeakSet()


class TritonStartError(RuntimeError):
    """The server did not come up (or a model failed to load); the message ends with the log tail."""


@dataclass(frozen=True)
class TritonDistribution:
    """Where nvidia-pytriton put the server binary and what it needs beside it."""

    binary: Path
    libs: Path  # the wheel's vendored shared libraries (libtritonserver, libcudart, ...)
    python_backend: Path  # libtriton_python.so + triton_python_backend_utils.py
    stub: Path  # triton_python_backend_stub built for this interpreter's Python version


@dataclass(frozen=True)
class TritonUrls:
    grpc: str  # "127.0.0.1:port", the form tritonclient.grpc takes
    http: str  # "127.0.0.1:port", the form tritonclient.http takes
    metrics: str  # full URL of the Prometheus endpoint


def find_distribution() -> TritonDistribution:
    """Locate the tritonserver files inside the installed nvidia-pytriton wheel (without importing it)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        raise TritonStartError("nvidia-pytriton is not installed: pip install 'crosspoint-serve[triton]'")
    root = Path(spec.origin).parent / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = TritonDistribution(
        binary=root / "bin" / "tritonserver",
        libs=root.parent.parent / "nvidia_pytriton.libs",
        python_backend=root / "backends" / "python",
        stub=root / "python_backend_stubs" / version / "triton_python_backend_stub",
    )
    missing = [
        str(path)
        for path in (found.binary, found.libs, found.python_backend, found.stub)
        if not path.exists()
    ]
    if missing:
        raise TritonStartError(f"nvidia-pytriton lacks {missing} (no stub for Python {version}?)")
    return found


def build_backend_dir(dest: Path, dist: TritonDistribution) -> Path:
    """Write a `--backend-directory` tree: `python/` with this Python's stub, and the shims.

    Layout (Triton's "python-based backends"): `<dest>/<name>/model.py` is used for models whose
    backend is `<name>`, run by the stub and library found in `<dest>/python/`.
    """
    python = dest / "python"
    python.mkdir(parents=True, exist_ok=True)
    for name in ("libtriton_python.so", "triton_python_backend_utils.py"):
        shutil.copy2(dist.python_backend / name, python / name)
    # The stub for this Python, under the name the python backend runs (pytriton does the same).
    shutil.copy2(dist.stub, python / "triton_python_backend_stub")
    for backend in SHIM_BACKENDS:
        (dest / backend).mkdir(exist_ok=True)
        # The stub puts this directory (not its parent) on sys.path; model.py is all it needs.
        shutil.copy2(_SHIM_SOURCE / backend / "model.py", dest / backend / "model.py")
    return dest


def server_env(dist: TritonDistribution) -> dict[str, str]:
    """The environment the binary and its python stubs need."""
    env = dict(os.environ)
    # The stub links libpython3.x.so; it must be this interpreter's, not whatever the system has.
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (libdir, str(dist.libs), env.get("LD_LIBRARY_PATH")) if p
    )
    # The embedded interpreter finds its prefix (so the venv's site-packages, where the editable
    # install makes `crosspoint` importable) by looking up `python3` on PATH; it ignores PYTHONPATH.
    # sys.executable is not resolved: that would leave the venv.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all held open while picking, so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


class TritonServer:
    """A running tritonserver; use `TritonServer.start(...)`, as a context manager or with `stop()`."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        urls: TritonUrls,
        workdir: Path,
        log_path: Path,
        shm_prefix: str,
    ) -> None:
        self.process = process
        self.urls = urls
        self.workdir = workdir
        self.log_path = log_path
        self.log_text = ""  # the whole log, kept by stop() once the workdir is gone
        self._shm_prefix = shm_prefix
        self._finalizer = weakref.finalize(self, _kill_group, process, shm_prefix)
        self._finalizer.atexit = False  # at exit _stop_all runs first and stops gracefully
        _LIVE.add(self)

    @classmethod
    def start(
        cls,
        model_repository: str | Path,
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        backend_dir: str | Path | None = None,
        timeout: float = 120.0,
        *,
        model_control_mode: str = "poll",
        poll_seconds: int = 1,
        log_path: str | Path | None = None,
        extra_args: Sequence[str] = (),
        require_all_models: bool = True,
    ) -> TritonServer:
        """Launch tritonserver on `model_repository` and wait until its models are loaded.

        Ports left as None are picked free on 127.0.0.1 (with a retry if another process takes one
        first). `model_control_mode="poll"` reloads models when a new version directory appears.
        With `require_all_models`, a model that fails to load stops the server and raises.
        """
        repository = Path(model_repository).resolve()
        if not repository.is_dir():
            raise TritonStartError(f"model repository {repository} is not a directory")
        dist = find_distribution()
        workdir = Path(tempfile.mkdtemp(prefix="crosspoint-triton-"))
        backends = (
            Path(backend_dir).resolve() if backend_dir else build_backend_dir(workdir / "backends", dist)
        )
        log_file = Path(log_path).resolve() if log_path else workdir / "tritonserver.log"
        asked = (http_port, grpc_port, metrics_port)
        # Another process can take a picked port before tritonserver binds it; only then is a retry useful.
        attempts = 3 if all(port is None for port in asked) else 1
        for attempt in range(1, attempts + 1):
            spare = iter(free_ports(3))
            http, grpc, metrics = (port or next(spare) for port in asked)
            urls = TritonUrls(f"127.0.0.1:{grpc}", f"127.0.0.1:{http}", f"http://127.0.0.1:{metrics}/metrics")
            shm_prefix = f"crosspoint{os.getpid()}_{secrets.token_hex(4)}_"
            command = [
                str(dist.binary),
                f"--model-repository={repository}",
                f"--backend-directory={backends}",
                "--http-address=127.0.0.1",
                f"--http-port={http}",
                "--grpc-address=127.0.0.1",
                f"--grpc-port={grpc}",
                "--metrics-address=127.0.0.1",
                f"--metrics-port={metrics}",
                "--allow-gpu-metrics=false",
                f"--model-control-mode={model_control_mode}",
                *([f"--repository-poll-secs={poll_seconds}"] if model_control_mode == "poll" else []),
                *(["--load-model=*"] if model_control_mode == "explicit" else []),
                # Keep serving the models that loaded; start() itself reports the ones that did not.
                "--exit-on-error=false",
                # The shims cannot auto-complete a config; a partial config must fail here, as it
                # would in production.
                "--disable-auto-complete-config",
                # Unique shared-memory names: several servers (tests, colleagues) share /dev/shm.
                f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
                "--backend-config=python,shm-default-byte-size=8388608",
                "--backend-config=python,shm-growth-byte-size=8388608",
                *extra_args,
            ]
            log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(log_file, "ab") as log:
                process = subprocess.Popen(
                    command,
                    env=server_env(dist),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    # The stub's sys.path starts with its cwd; the workdir (backends/ and the log)
                    # holds nothing that could shadow onnxruntime or torch, unlike a project dir.
                    cwd=workdir,
                    start_new_session=True,
                    preexec_fn=_die_with_parent_if_main_thread(),
                )
            server = cls(process, urls, workdir, log_file, shm_prefix)
            logger.info(
                "tritonserver pid %d on grpc %s, http %s (log %s)",
                process.pid,
                urls.grpc,
                urls.http,
                log_file,
            )
            try:
                server.wait_until_ready(timeout, require_all_models)
                return server
            except TritonStartError as error:
                port_clash = "already in use" in server.log_tail().lower()
                server._stop(timeout=5.0, remove_workdir=False)
                if not (port_clash and attempt < attempts):
                    shutil.rmtree(workdir, ignore_errors=True)
                    raise error from None
                logger.warning("tritonserver lost a port race; retrying with new ports")
        raise AssertionError("unreachable")

    def wait_until_ready(self, timeout: float, require_all_models: bool = True) -> None:
        """Block until the server is live and no model is still loading; raise TritonStartError if not."""
        import tritonclient.http as httpclient

        deadline = time.monotonic() + timeout
        client = httpclient.InferenceServerClient(self.urls.http, connection_timeout=2.0, network_timeout=5.0)
        try:
            while True:
                if self.process.poll() is not None:
                    raise TritonStartError(
                        self._describe(f"tritonserver exited with {self.process.returncode}")
                    )
                states = _model_states(client)
                if states is not None and all(
                    state in ("READY", "UNAVAILABLE") for state, _ in states.values()
                ):
                    failed = {name: reason for name, (state, reason) in states.items() if state != "READY"}
                    if failed and require_all_models:
                        raise TritonStartError(self._describe(f"models failed to load: {failed}"))
                    return
                if time.monotonic() > deadline:
                    # A stub that cannot start (wrong libpython, missing module) hangs model load.
                    raise TritonStartError(self._describe(f"not ready after {timeout:.0f} s"))
                time.sleep(0.2)
        finally:
            client.close()

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        if self.log_text:
            return self.log_text[-chars:]
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> None:
        """Ask tritonserver to unload and exit; kill its whole process group if it takes too long."""
        self._stop(timeout, remove_workdir=True)

    def _stop(self, timeout: float, remove_workdir: bool) -> None:
        if self.is_running():
            self.process.send_signal(signal.SIGINT)  # Triton's graceful shutdown: finishes in-flight work
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("tritonserver %d ignored SIGINT for %.0f s; killing it", self.pid, timeout)
        self._finalizer()  # kills what is left of the group (stubs) and frees shared memory
        self.log_text = self.log_tail(chars=10**7)
        _LIVE.discard(self)
        if remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _describe(self, what: str) -> str:
        return f"{what}; tritonserver log (tail):\n{self.log_tail()}"

    def __enter__(self) -> TritonServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _model_states(client: Any) -> dict[str, tuple[str, str]] | None:
    """{model: (state, reason)} once the server is live; None while it is still starting."""
    try:
        if not client.is_server_live():
            return None
        index = client.get_model_repository_index()
    except Exception:  # connection refused until the HTTP endpoint is up
        return None
    states: dict[str, tuple[str, str]] = {}
    for entry in index:
        # One entry per version; an old version unloaded by the version policy must not hide a READY one.
        state, reason = entry.get("state", ""), entry.get("reason", "")
        if states.get(entry["name"], ("",))[0] != "READY":
            states[entry["name"]] = (state, reason)
    return states


def _kill_group(process: subprocess.Popen[bytes], shm_prefix: str) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # the group id is the server's pid (own session)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)
    # SIGKILL lands asynchronously: a stub unmapping a big heap can outlive the call above.
    deadline = time.monotonic() + 10
    while _live_group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    # A killed stub cannot unlink its shared-memory regions.
    for path in glob.glob(f"/dev/shm/{glob.escape(shm_prefix)}*"):
        with contextlib.suppress(OSError):
            os.unlink(path)


def _live_group_members(group: int) -> list[int]:
    """Pids in process group `group` that are not zombies (Linux /proc)."""
    members = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":  # fields after the name: state, ppid, pgrp
            members.append(int(stat.split("/")[2]))
    return members


def _die_with_parent_if_main_thread() -> Callable[[], None] | None:
    """A preexec hook so a SIGKILLed test run takes tritonserver with it (Linux PDEATHSIG).

    The signal fires when the forking *thread* exits, so it is only armed from the main thread; a
    server started from a worker thread relies on stop(), the finalizer and atexit instead.
    """
    if threading.current_thread() is not threading.main_thread() or not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    def arm() -> None:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG

    return arm


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        server._stop(timeout=10.0, remove_workdir=True)
