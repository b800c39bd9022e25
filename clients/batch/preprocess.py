"""Preprocessing in worker processes: file -> `crosspoint.geometry` points (the gateway's own steps).

Runs in a process pool so parsing and sampling (CPU-bound, GIL-holding) use every core while the
event loop keeps Triton busy. A worker returns arrays, never raises for bad input: each file's
failure becomes an error row, so one broken mesh cannot stop a run of thousands.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PrepareSettings:
    num_points: int
    up_axis: str
    seed: int = 0  # the gateway's default: the same file gives the same points, hence the same answer
    min_points: int | None = None  # the model's (crosspoint.json); None: geometry's default
    max_memory_mb: int | None = None


@dataclass(frozen=True)
class Prepared:
    index: int  # position in the run's list of files
    points: np.ndarray | None  # float32 [N, 3]; None on error
    error_code: str = ""
    error_message: str = ""


def init_worker(max_memory_mb: int | None) -> None:
    """Import the preprocessing once per worker; cap its address space (a hostile file then fails
    with MemoryError, not an OOM kill of the whole run)."""
    import crosspoint.geometry  # noqa: F401  (an import error here fails the start check, once)

    if max_memory_mb:
        limit = max_memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def worker_ready() -> bool:
    """A no-op the parent runs once: it returns only if a worker started and initialised."""
    return True


def prepare_file(index: int, path: str, settings: PrepareSettings) -> Prepared:
    from crosspoint.geometry import GeometryError, load, prepare

    try:
        shape = load(path)
        extra = {} if settings.min_points is None else {"min_points": settings.min_points}
        points, _receipt = prepare(shape, settings.num_points, settings.up_axis, settings.seed, **extra)
    except GeometryError as exc:
        return Prepared(index, None, exc.code, str(exc))
    except MemoryError:
        return Prepared(
            index, None, "limit_exceeded", f"over the worker memory limit ({settings.max_memory_mb} MB)"
        )
    except OSError as exc:
        return Prepared(index, None, "read_error", str(exc))
    except Exception as exc:  # a parser bug must cost one row, not the run
        return Prepared(index, None, "internal_error", f"{type(exc).__name__}: {exc}")
    return Prepared(index, np.ascontiguousarray(points, dtype=np.float32))


def prepare_chunk(items: list[tuple[int, str]], settings: PrepareSettings) -> list[Prepared]:
    """Several files per task: one pickle round trip per chunk instead of per file."""
    return [prepare_file(index, path, settings) for index, path in items]
