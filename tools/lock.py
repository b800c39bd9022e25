"""Regenerate the lock files from pyproject.toml: `make lock` (needs `uv`, which the dev lock installs).

requirements/dev.lock    every package of the full development set (train, triton, batch, dev extras)
requirements/serve.lock  the serving set only (what the gateway image installs), resolved under the
                         dev lock as a constraint, so a package has the same version in both files

Both hold sha256 hashes and are installed with `pip install --require-hashes --no-deps`. uv resolves in
about a second and writes deterministic output; pip installs (no uv needed to install). torch comes from
the local CPU wheel (`--find-links /opt/wheels`, pip's own setting on this machine), so its hash is the
hash of that file. Each lock starts with a fingerprint of pyproject's dependency tables: a test compares
it, so a dependency added without re-locking fails the suite with "run `make lock`".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "requirements"
DEV_LOCK = LOCKS / "dev.lock"
SERVE_LOCK = LOCKS / "serve.lock"
BUILD_IN = LOCKS / "build.in"
FINGERPRINT_PREFIX = "# pyproject-dependencies-sha256: "
# nvidia-pytriton ships manylinux_2_35 wheels only; Debian 12 (glibc 2.36) and the slim image satisfy it.
PLATFORM = ["--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_35"]


def dependency_fingerprint(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """sha256 over what decides the lock: requires-python, dependencies, optional-dependencies, build.in."""
    project = tomllib.loads(pyproject.read_text())["project"]
    decided = {
        "requires-python": project.get("requires-python"),
        "dependencies": sorted(project.get("dependencies", [])),
        "optional-dependencies": {k: sorted(v) for k, v in project.get("optional-dependencies", {}).items()},
        "build": sorted(
            line.strip()
            for line in BUILD_IN.read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ),
    }
    return hashlib.sha256(json.dumps(decided, sort_keys=True).encode()).hexdigest()


def read_lock(path: Path) -> dict[str, tuple[str, int]]:
    """Normalised name -> (pinned version, number of hashes) for every package in a lock file."""
    pins: dict[str, tuple[str, int]] = {}
    name = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if "==" in stripped and not stripped.startswith(("#", "--")):
            name, version = stripped.rstrip(" \\").split("==")
            name = _normalise(name.split("[")[0])
            pins[name] = (version, 0)
        elif stripped.startswith("--hash=sha256:") and name:
            pins[name] = (pins[name][0], pins[name][1] + 1)
    return pins


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_problems(
    pyproject: Path = ROOT / "pyproject.toml", dev_lock: Path = DEV_LOCK, serve_lock: Path = SERVE_LOCK
) -> list[str]:
    """Every way pyproject.toml and the locks disagree; empty when the locks are current."""
    from packaging.requirements import Requirement

    project = tomllib.loads(pyproject.read_text())["project"]
    dev, serve = read_lock(dev_lock), read_lock(serve_lock)
    problems = []
    wanted = dependency_fingerprint(pyproject)
    for lock in (dev_lock, serve_lock):
        if not lock.read_text().startswith(f"{FINGERPRINT_PREFIX}{wanted}"):
            problems.append(f"{lock.name} was generated from other pyproject.toml dependencies")
    sets = [("serving", project.get("dependencies", []), (dev, serve))]
    sets += [(extra, reqs, (dev,)) for extra, reqs in project.get("optional-dependencies", {}).items()]
    for set_name, requirements, locks in sets:
        for text in requirements:
            req = Requirement(text)
            for pins in locks:
                pinned = pins.get(_normalise(req.name))
                if pinned is None:
                    problems.append(f"{req.name} ({set_name}) is not in the lock")
                elif not req.specifier.contains(pinned[0], prereleases=True):
                    problems.append(f"{req.name}=={pinned[0]} does not satisfy {text!r} ({set_name})")
    problems += [f"{n} has no sha256 in {f.name}" for f, pins in ((dev_lock, dev), (serve_lock, serve))
                 for n, (_, hashes) in pins.items() if hashes == 0]  # fmt: skip
    problems += [f"{n}: serve.lock {v} != dev.lock {dev[n][0]}" for n, (v, _) in serve.items()
                 if n in dev and dev[n][0] != v]  # fmt: skip
    return [f"{p}: run `make lock`" for p in problems]


def _compile(out: Path, *extra: str) -> None:
    find_links = os.environ.get("PIP_FIND_LINKS", "/opt/wheels")
    cmd = [
        "uv", "pip", "compile", "pyproject.toml", str(BUILD_IN.relative_to(ROOT)), *extra, *PLATFORM,
        "--generate-hashes", "--no-header", "--find-links", find_links, "--quiet", "-o", str(out.relative_to(ROOT)),
    ]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, check=True)
    header = (
        f"{FINGERPRINT_PREFIX}{dependency_fingerprint()}\n"
        "# Generated by `make lock` (tools/lock.py) from pyproject.toml; do not edit by hand.\n"
    )
    out.write_text(header + out.read_text())


def main() -> int:
    _compile(DEV_LOCK, "--all-extras")
    _compile(SERVE_LOCK, "--constraint", str(DEV_LOCK.relative_to(ROOT)))
    print(f"wrote {DEV_LOCK.relative_to(ROOT)} and {SERVE_LOCK.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
