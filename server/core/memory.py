"""glibc malloc settings that keep a long-running gateway's resident memory at its working set.

glibc serves a block above its mmap threshold (128 KiB at start) with its own mmap and unmaps it when
freed, but each such free raises the threshold to that block's size (up to 32 MiB) for the rest of
the process. After the first large model call, ONNX Runtime's per-call tensors (arena off, see
`Settings.ort_cpu_mem_arena`) then come from the malloc heaps instead, and what they leave behind
stays resident: two 4096-point segment calls kept 50-170 MB depending on how the calls' threads
landed on glibc's per-thread arenas (more on a loaded machine). Setting the threshold explicitly
switches that adjustment off, so large blocks always go back to the kernel when freed (measured:
3-5 MB kept, no measurable latency cost; README "Reliability").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

logger = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # mallopt parameter numbers, glibc <malloc.h>
MMAP_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_"  # the same setting for a process glibc has not started yet


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None


def fix_mmap_threshold(threshold_bytes: int) -> bool:
    """Pin glibc's mmap threshold for this process (0: leave glibc's dynamic one). False where the C
    library is not glibc (musl and others never move their threshold)."""
    if threshold_bytes <= 0:
        return False
    libc = _libc()
    if libc is None:
        return False
    if not libc.mallopt(M_MMAP_THRESHOLD, ctypes.c_int(threshold_bytes)):
        logger.warning("mallopt(M_MMAP_THRESHOLD, %d) refused", threshold_bytes)
        return False
    return True


def child_malloc_env(threshold_bytes: int) -> dict[str, str]:
    """Environment that gives a child process the same pinned threshold from its first allocation."""
    return {MMAP_THRESHOLD_ENV: str(threshold_bytes)} if threshold_bytes > 0 else {}
