"""Clients of the gateway and of Triton: the Python SDK, the CLI commands and the batch gRPC client.

`from clients import CrossPointClient` works, but the names are resolved lazily: the root CLI imports
`clients.cli` (and so this file) on every start, and must not pay for httpx/numpy there.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CrossPointClient": "clients.sdk",
    "AsyncCrossPointClient": "clients.sdk",
    "RetryPolicy": "clients.calls",
    "CrossPointError": "clients.errors",
    "CrossPointAPIError": "clients.errors",
    "CrossPointConnectionError": "clients.errors",
    "EmbedResult": "clients.results",
    "ClassifyResult": "clients.results",
    "SegmentResult": "clients.results",
    "Prediction": "clients.results",
    "ModelInfo": "clients.results",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'clients' has no attribute {name!r}")
