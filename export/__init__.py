"""Exporting CrossPoint checkpoints to ONNX, TorchScript and a Triton model repository.

    export.export_checkpoint(path, "model_repository") -> ExportResult   (torch)
    export.validate_repository("model_repository") -> list[Problem]      (torch-free)
    export.repository.read_model_metadata / latest_version               (torch-free)

Importing this package does not import torch: the exporter loads lazily on first use, so the
gateway can use `export.repository` and `export.validate` in its torch-free image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from export.validate import Problem, validate_repository

if TYPE_CHECKING:
    from export.exporter import ExportedModel, ExportResult, export_checkpoint, export_checkpoints

_LAZY = {"export_checkpoint", "export_checkpoints", "ExportResult", "ExportedModel"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from export import exporter

        return getattr(exporter, name)
    raise AttributeError(f"module 'export' has no attribute {name!r}")


__all__ = [
    "ExportResult",
    "ExportedModel",
    "Problem",
    "export_checkpoint",
    "export_checkpoints",
    "validate_repository",
]
