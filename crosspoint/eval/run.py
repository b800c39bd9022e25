"""The evaluations behind `crosspoint eval`, as functions returning JSON-ready dicts (no timings:
the same checkpoint, data and seed give the same document, which the tests check)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crosspoint import checkpoint
from crosspoint.eval.features import cache_path, embed_cached


def random_twin(model: nn.Module, name: str, seed: int) -> nn.Module:
    """The same network (same config) with default-initialised weights, in eval mode."""
    from crosspoint.models import create_model

    torch.manual_seed(seed)
    return create_model(name, **dataclasses.asdict(model.config)).eval()  # type: ignore[call-overload]


def networks(path: str, compare_random: bool, seed: int) -> dict[str, tuple[nn.Module, dict[str, Any]]]:
    ckpt = checkpoint.load(path)
    info = {
        "path": str(path),
        "model": ckpt.model_name,
        "weights_sha256": ckpt.config.get("weights_sha256"),
        "args": ckpt.config["model"]["args"],
    }
    nets = {"pretrained": (ckpt.model, info)}
    if compare_random:
        nets["random"] = (
            random_twin(ckpt.model, ckpt.model_name, seed),
            {**info, "weights_sha256": None, "init_seed": seed},
        )
    return nets


def limit_rows(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """A seeded subset of `limit` rows (all rows when limit is 0), sorted."""
    if not limit or limit >= len(labels):
        return np.arange(len(labels))
    return np.sort(np.random.default_rng(seed).permutation(len(labels))[:limit])


def svm_eval(
    checkpoint_path: str,
    data: str | None = None,
    num_points: int = 1024,
    Cs: Sequence[float] = (0.001, 0.01, 0.1, 1.0, 10.0),
    val_fraction: float = 0.1,
    seed: int = 0,
    compare_random: bool = False,
    train_limit: int = 0,
    test_limit: int = 0,
    batch_size: int = 32,
    device: str = "cpu",
    cache_dir: str | None = None,
    feature_cache: str | Path | None = None,
) -> dict[str, Any]:
    from crosspoint.data import load_modelnet40_npz
    from crosspoint.eval.svm import best_variant, svm_both

    train = load_modelnet40_npz(data, split="train", num_points=num_points, cache_dir=cache_dir)
    test = load_modelnet40_npz(data, split="test", num_points=num_points, cache_dir=cache_dir)
    tr, te = limit_rows(train.labels, train_limit, seed), limit_rows(test.labels, test_limit, seed + 1)
    doc: dict[str, Any] = {
        "protocol": {
            "classifier": "sklearn SVC(kernel='linear')",
            "C_grid": list(Cs),
            "C_chosen_on": "validation",
            "val_fraction": val_fraction,
            "num_points": num_points,
            "seed": seed,
        },
        "data": {"path": data or "shared modelnet40_partial", "train": len(tr), "test": len(te)},
        "results": {},
    }
    for label, (model, info) in networks(checkpoint_path, compare_random, seed).items():
        model.to(device)
        fx = embed_cached(model, train.points[tr], feature_cache, batch_size, device, f"{label} train")
        tx = embed_cached(model, test.points[te], feature_cache, batch_size, device, f"{label} test")
        results = svm_both(
            fx, train.labels[tr], tx, test.labels[te], Cs=Cs, val_fraction=val_fraction, seed=seed
        )
        best = best_variant(results)
        doc["results"][label] = {
            "network": info,
            **{k: v.to_dict() for k, v in results.items()},
            "best": {"variant": best.variant, "test_accuracy": best.test_accuracy},
        }
    return doc


def fewshot_eval(
    checkpoint_path: str,
    data: str | None = None,
    split: str = "train",
    ways: Sequence[int] = (5, 10),
    shots: Sequence[int] = (10, 20),
    queries: int = 20,
    runs: int = 10,
    num_points: int = 1024,
    seed: int = 0,
    compare_random: bool = False,
    batch_size: int = 32,
    device: str = "cpu",
    cache_dir: str | None = None,
    feature_cache: str | Path | None = None,
) -> dict[str, Any]:
    from crosspoint.data import load_modelnet40_npz
    from crosspoint.eval.fewshot import fewshot_accuracy, needed_indices, sample_episodes

    pool = load_modelnet40_npz(data, split=split, num_points=num_points, cache_dir=cache_dir)  # type: ignore[arg-type]
    settings = {(w, s): sample_episodes(pool.labels, w, s, queries, runs, seed) for w in ways for s in shots}
    rows = needed_indices([ep for episodes, _ in settings.values() for ep in episodes])
    position = {int(r): i for i, r in enumerate(rows)}
    doc: dict[str, Any] = {
        "protocol": {
            "reference": "MohamedAfham/CrossPoint eval_fewshot.py",
            "pool_split": split,
            "queries_per_class": queries,
            "runs": runs,
            "classifier": "StandardScaler + SVC(kernel='linear', C=1)",
            "num_points": num_points,
            "seed": seed,
        },
        "data": {"path": data or "shared modelnet40_partial", "pool": len(pool), "embedded": len(rows)},
        "results": {},
    }
    for label, (model, info) in networks(checkpoint_path, compare_random, seed).items():
        model.to(device)
        whole = cache_path(model, pool.points, feature_cache, batch_size, device) if feature_cache else None
        if whole is not None and whole.exists():  # `eval svm` already embedded the whole train split
            feats = np.load(whole)[rows]
        else:
            feats = embed_cached(
                model, pool.points[rows], feature_cache, batch_size, device, f"{label} few-shot"
            )
        per_setting = {}

        def rows_of(idx: np.ndarray, f: np.ndarray = feats) -> np.ndarray:
            return f[[position[int(i)] for i in idx]]

        for (w, s), (episodes, classes) in settings.items():
            result = fewshot_accuracy(episodes, rows_of)
            per_setting[f"{w}way_{s}shot"] = {**result, "eligible_classes": len(classes)}
        doc["results"][label] = {"network": info, **per_setting}
    return doc


def partseg_eval(
    checkpoint_path: str,
    data: str | None = None,
    split: str = "test",
    procedural: int = 0,
    procedural_seed: int = 1_000_003,
    batch_size: int = 8,
    device: str = "cpu",
    cache_dir: str | None = None,
    compare_random: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """`results` scores the checkpoint; with `compare_random`, `random` scores its random-weights twin."""
    from crosspoint.data import load_shapenetpart_npz
    from crosspoint.eval.partseg import evaluate_partseg

    ckpt = checkpoint.load(checkpoint_path)
    num_points = int(ckpt.preprocess.get("num_points", 2048))
    real = load_shapenetpart_npz(data, split=split, num_points=num_points, cache_dir=cache_dir)  # type: ignore[arg-type]
    doc: dict[str, Any] = {
        "protocol": {
            "metric": "instance and class mIoU, parts restricted to the category, empty union = 1",
            "num_points": num_points,
            "split": split,
        },
        "checkpoint": {"path": str(checkpoint_path), "weights_sha256": ckpt.config.get("weights_sha256")},
    }
    sets: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    if len(real):
        sets["shapenetpart"] = (real.points, real.part_labels, real.categories)
    if procedural:
        from crosspoint.train.partseg import ProceduralParts

        items = [ProceduralParts(procedural, num_points, procedural_seed)[i] for i in range(procedural)]
        sets["procedural"] = tuple(  # type: ignore[assignment]
            torch.stack([it[key] for it in items]).numpy() for key in ("points", "part_labels", "category")
        )
    models = {"results": ckpt.model}
    if compare_random:
        models["random"] = random_twin(ckpt.model, ckpt.model_name, seed)
        doc["random_init_seed"] = seed
    for section, model in models.items():
        model.to(device)
        doc[section] = {
            name: evaluate_partseg(model, *arrays, batch_size, device) for name, arrays in sets.items()
        }
        if procedural:
            doc[section]["procedural"]["seed"] = procedural_seed
    return doc
