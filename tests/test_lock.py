"""The lock files decide what is installed: they must agree with pyproject.toml and with this environment."""

from __future__ import annotations

import importlib.util
import shutil
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lock_tool", ROOT / "tools" / "lock.py")
assert _spec and _spec.loader
lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lock)


def test_locks_agree_with_pyproject() -> None:
    problems = lock.lock_problems()
    assert not problems, "\n".join(problems)


def test_a_dependency_added_without_relocking_fails(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    text = (ROOT / "pyproject.toml").read_text()
    pyproject.write_text(text.replace('    "usearch",', '    "usearch",\n    "left-pad-3d>=1",', 1))
    problems = lock.lock_problems(pyproject)
    assert any("left-pad-3d (serving) is not in the lock" in p for p in problems), problems
    assert any("generated from other pyproject.toml dependencies" in p for p in problems), problems
    assert all(p.endswith("run `make lock`") for p in problems)


def test_a_range_the_lock_does_not_satisfy_fails(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text((ROOT / "pyproject.toml").read_text().replace('"numpy<2"', '"numpy>=2"', 1))
    assert any("does not satisfy 'numpy>=2'" in p for p in lock.lock_problems(pyproject))


def test_a_hand_edited_lock_fails(tmp_path: Path) -> None:
    serve = tmp_path / "serve.lock"
    shutil.copy(lock.SERVE_LOCK, serve)
    text = serve.read_text()
    onnxruntime = lock.read_lock(lock.SERVE_LOCK)["onnxruntime"][0]
    serve.write_text(text.replace(f"onnxruntime=={onnxruntime}", "onnxruntime==0.0.1", 1))
    problems = lock.lock_problems(serve_lock=serve)
    assert any("onnxruntime: serve.lock 0.0.1 != dev.lock" in p for p in problems), problems


def test_every_pin_is_hashed_and_torch_is_the_local_cpu_wheel() -> None:
    dev, serve = lock.read_lock(lock.DEV_LOCK), lock.read_lock(lock.SERVE_LOCK)
    assert all(hashes for _, hashes in dev.values()) and all(hashes for _, hashes in serve.values())
    assert dev["torch"] == ("2.13.0+cpu", 1)  # one file: the CPU wheel on this machine's disk
    assert "torch" not in serve and not any(name.startswith("nvidia-") for name in serve)
    assert set(serve) <= set(dev)


def test_this_environment_was_installed_from_the_lock() -> None:
    """`make test` installs the dev lock: every locked package is installed at exactly its pinned version."""
    differ = {}
    for name, (version, _) in lock.read_lock(lock.DEV_LOCK).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            differ[name] = (version, installed)
    assert not differ, f"installed differs from requirements/dev.lock (re-run `make install`): {differ}"
