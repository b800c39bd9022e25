"""Which files a batch run covers, and the key that says whether a file was already done."""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FileKey:
    """Identity of one input file: the same path with the same size and mtime (or hash) is done.

    mtime+size is free to compute and is what `make`/rsync trust; `--key sha256` is for inputs whose
    mtimes are not reliable (copied trees, some network file systems).
    """

    path: str
    size: int
    mtime_ns: int
    sha256: str = ""


def discover(sources: Iterable[str]) -> list[Path]:
    """Expand directories (recursively, shape files only) and glob patterns; sorted, no duplicates."""
    from crosspoint.geometry import SUPPORTED_FORMATS

    suffixes = {f".{name}" for name in SUPPORTED_FORMATS}
    found: set[Path] = set()
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        elif path.is_file():
            found.add(path)
        else:
            matches = [Path(m) for m in glob.glob(source, recursive=True)]
            if not matches:
                raise FileNotFoundError(f"no file, directory or glob match: {source}")
            found.update(m for m in matches if m.is_file())
    return sorted(p.resolve() for p in found)


def file_key(path: Path, hashed: bool = False) -> FileKey:
    stat = path.stat()
    digest = sha256_of(path) if hashed else ""
    return FileKey(str(path), stat.st_size, stat.st_mtime_ns, digest)


def sha256_of(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def default_workers() -> int:
    """Leave one core to the event loop (gRPC, writing); at least one worker."""
    return max(1, (os.cpu_count() or 2) - 1)
