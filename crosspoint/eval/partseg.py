"""Part-segmentation metrics as the reference computes them (`calculate_shape_IoU` in train_partseg.py).

Instance mIoU: for each shape, the IoU of every part of ITS category (prediction and truth in the 50
global ids), an empty union counting 1, averaged over those parts; then the mean over shapes.
Class mIoU: the mean over shapes within each category, then the mean over the categories present.
Predictions are restricted to the shape's category's parts (the standard ShapeNetPart evaluation:
the category is an input, so the logits of the other 15 categories' parts are masked out).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from crosspoint.data.shapenetpart_meta import CATEGORY_NAMES, NUM_CATEGORIES, PART_COUNTS, PART_OFFSETS


def category_part_mask(categories: torch.Tensor, num_parts: int = 50) -> torch.Tensor:
    """[B] category ids -> bool [B, num_parts], True on the category's own parts."""
    offsets = torch.tensor(PART_OFFSETS, device=categories.device)[categories]
    counts = torch.tensor(PART_COUNTS, device=categories.device)[categories]
    ids = torch.arange(num_parts, device=categories.device)
    return (ids >= offsets[:, None]) & (ids < (offsets + counts)[:, None])


def restricted_argmax(logits: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
    """Part logits [B, N, 50] -> labels [B, N] chosen among the category's parts only."""
    mask = category_part_mask(categories, logits.shape[-1])
    return logits.masked_fill(~mask[:, None, :], float("-inf")).argmax(dim=-1)


def shape_ious(pred: np.ndarray, target: np.ndarray, categories: Sequence[int]) -> np.ndarray:
    """pred, target int [M, N] (global part ids), categories [M] -> per-shape mean part IoU [M]."""
    out = np.zeros(len(categories), dtype=np.float64)
    for i, c in enumerate(categories):
        ious = []
        for part in range(PART_OFFSETS[c], PART_OFFSETS[c] + PART_COUNTS[c]):
            p, t = pred[i] == part, target[i] == part
            union = np.logical_or(p, t).sum()
            # A part absent from both prediction and truth is segmented perfectly (reference rule).
            ious.append(1.0 if union == 0 else np.logical_and(p, t).sum() / union)
        out[i] = float(np.mean(ious))
    return out


def miou_summary(ious: np.ndarray, category_ids: Sequence[int]) -> dict[str, Any]:
    categories = np.asarray(category_ids)
    per_category = {
        CATEGORY_NAMES[c]: {
            "miou": float(ious[categories == c].mean()),
            "shapes": int((categories == c).sum()),
        }
        for c in range(NUM_CATEGORIES)
        if (categories == c).any()
    }
    return {
        "instance_miou": float(ious.mean()) if len(ious) else float("nan"),
        "class_miou": float(np.mean([v["miou"] for v in per_category.values()]))
        if per_category
        else float("nan"),
        "shapes": len(ious),
        "per_category": per_category,
    }


def predict_parts(
    model: nn.Module,
    points: np.ndarray,
    categories: np.ndarray,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """A `dgcnn_partseg` model in eval mode -> restricted part predictions int64 [M, N]."""
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(points), batch_size):
            x = torch.as_tensor(np.ascontiguousarray(points[i : i + batch_size]), dtype=torch.float32).to(
                device
            )
            cat = torch.as_tensor(categories[i : i + batch_size], dtype=torch.long).to(device)
            onehot = torch.nn.functional.one_hot(cat, NUM_CATEGORIES).float()
            preds.append(restricted_argmax(model(x, onehot), cat).cpu().numpy())
    return np.concatenate(preds) if preds else np.zeros((0, points.shape[1]), np.int64)


def evaluate_partseg(
    model: nn.Module,
    points: np.ndarray,
    part_labels: np.ndarray,
    categories: np.ndarray,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    pred = predict_parts(model, points, categories, batch_size, device)
    ious = shape_ious(pred, part_labels, categories.tolist())
    summary = miou_summary(ious, categories.tolist())
    summary["point_accuracy"] = float((pred == part_labels).mean()) if pred.size else float("nan")
    return summary
