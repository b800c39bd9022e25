"""Frozen embeddings: the 2048-d (DGCNN) / 1024-d (PointNet) `forward_features` of a model in eval mode.

Every evaluation (linear SVM, few-shot, the pretraining probe, the class-head fit) goes through
`embed`, so they all see the same features. An optional on-disk cache keyed by the weights' sha256,
the data and the point count lets `svm`, `fewshot` and `--compare-random` share one extraction
(about 5-8 clouds/s for DGCNN at 1024 points on this 2-core CPU, so ModelNet40 takes ~30 min).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crosspoint.checkpoint import weights_sha256


def embed(
    model: nn.Module,
    points: np.ndarray,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: str | None = None,
) -> np.ndarray:
    """points float32 [M, N, 3] -> features float32 [M, D]; restores the model's train/eval mode."""
    was_training = model.training
    model.eval()
    chunks = []
    starts = range(0, len(points), batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc=progress, unit="batch", leave=False)
    try:
        with torch.no_grad():
            for i in starts:
                x = torch.as_tensor(np.ascontiguousarray(points[i : i + batch_size]), dtype=torch.float32)
                chunks.append(model.forward_features(x.to(device)).float().cpu().numpy())  # type: ignore[operator]
    finally:
        model.train(was_training)
    dim = int(getattr(model, "num_features", 0))
    return np.concatenate(chunks) if chunks else np.zeros((0, dim), np.float32)


def cache_key(model: nn.Module, points: np.ndarray, **extra: Any) -> str:
    """sha256 over the weights, the exact input points and any extra settings."""
    digest = hashlib.sha256()
    digest.update(weights_sha256(model.state_dict()).encode())
    digest.update(json.dumps(dataclass_dict(model), sort_keys=True).encode())
    digest.update(f"{points.dtype.str}|{list(points.shape)}|".encode())
    digest.update(np.ascontiguousarray(points).tobytes())
    digest.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def dataclass_dict(model: nn.Module) -> dict[str, Any]:
    import dataclasses

    config = getattr(model, "config", None)
    return (
        dataclasses.asdict(config)
        if dataclasses.is_dataclass(config) and not isinstance(config, type)
        else {}
    )


def cache_path(
    model: nn.Module,
    points: np.ndarray,
    cache_dir: str | Path,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> Path:
    """Where `embed_cached` keeps (or would keep) these points' features."""
    key = cache_key(model, points, batch_size=batch_size, device=str(device))
    return Path(cache_dir) / f"features-{key}.npy"


def embed_cached(
    model: nn.Module,
    points: np.ndarray,
    cache_dir: str | Path | None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    progress: str | None = None,
) -> np.ndarray:
    """`embed`, reusing `<cache_dir>/<key>.npy` when the same weights already saw the same points."""
    if cache_dir is None:
        return embed(model, points, batch_size, device, progress)
    path = cache_path(model, points, cache_dir, batch_size, device)
    if path.exists():
        return np.load(path)
    features = embed(model, points, batch_size, device, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npy")
    np.save(tmp, features)
    tmp.replace(path)
    return features
