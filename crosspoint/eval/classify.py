"""Top-1 of the served classifier the way the gateway runs it: the exported ONNX graph of a classify version
(ONNX Runtime fp32, the reference precision) on the shared ModelNet40 test rows as `geometry.prepare`
made them (surface samples -> farthest points, unit sphere, y up).

    crosspoint eval classify --repository model_repository --out docs/results/eval_classify.json \
        --picture docs/images/confusion_classify.png

Writes overall and per-class accuracy, the confusion matrix and its largest off-diagonal cells; the
picture is the row-normalised confusion matrix (rows: true class, columns: answer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.calibrate import run_graph
from export.repository import ONNX_FILE, read_model_metadata, version_dir


def confusion(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[true, predicted], every class a row and a column even when no test row has it."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(labels, predicted, labels=np.arange(num_classes)).astype(np.int64)


def summarize(matrix: np.ndarray, class_names: list[str], top: int = 15) -> dict[str, Any]:
    """Overall and mean per-class accuracy, each class's accuracy, the `top` largest confusions."""
    counts = matrix.sum(axis=1)
    correct = np.diag(matrix)
    per_class = {
        name: {"accuracy": float(correct[i] / counts[i]) if counts[i] else None, "count": int(counts[i])}
        for i, name in enumerate(class_names)
    }
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    cells = np.argsort(off, axis=None)[::-1][:top]
    mistakes = [
        {"true": class_names[t], "predicted": class_names[p], "count": int(off[t, p]), "of": int(counts[t])}
        for t, p in zip(*np.unravel_index(cells, off.shape), strict=True)
        if off[t, p] > 0
    ]
    present = counts > 0
    return {
        "top1": float(correct.sum() / counts.sum()),
        "mean_class_accuracy": float(np.mean(correct[present] / counts[present])),
        "per_class": per_class,
        "largest_confusions": mistakes,
        "confusion": matrix.tolist(),
    }


def evaluate_classify(
    repository: Path, version: int | None = None, *, cache_dir: Path | None = None
) -> dict[str, Any]:
    from crosspoint.data import load_modelnet40_npz

    metadata = read_model_metadata(repository, "classify", version)
    graph = version_dir(repository, "classify", metadata.version) / ONNX_FILE
    test = load_modelnet40_npz(split="test", num_points=metadata.num_points)
    logits = run_graph(graph, test.points, cache_dir=cache_dir, label="test")["logits"]
    names = list(metadata.class_names or [])
    if list(test.class_names) != names:
        raise ValueError(f"classify v{metadata.version} answers other classes than the test split has")
    doc = summarize(confusion(test.labels, logits.argmax(axis=1), len(names)), names)
    return {
        "model": "classify",
        "version": metadata.version,
        "checkpoint": metadata.checkpoint,
        "protocol": {
            "runtime": "onnxruntime CPU fp32, the exported graph",
            "input": "shared ModelNet40 test rows through geometry.prepare (the gateway's preprocessing)",
            "num_points": metadata.num_points,
            "test_rows": len(test),
        },
        **doc,
    }


def confusion_picture(doc: dict[str, Any], path: Path, title: str) -> None:
    """Row-normalised confusion matrix, one cell per (true, predicted) class, names on both axes."""
    from PIL import Image, ImageDraw

    matrix = np.asarray(doc["confusion"], dtype=np.float64)
    names = list(doc["per_class"])
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    cell, left, top = 14, 190, 110
    n = len(names)
    image = Image.new("RGB", (left + n * cell + 20, top + n * cell + 20), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 6), title, fill=(0, 0, 0))
    for i, name in enumerate(names):
        accuracy = doc["per_class"][name]["accuracy"]
        label = f"{name} {100 * accuracy:.0f}%" if accuracy is not None else name
        draw.text((10, top + i * cell + 1), label, fill=(0, 0, 0))
        for j in range(n):
            shade = int(255 * (1 - rows[i, j]) ** 0.7)  # small confusions stay visible
            colour = (shade, shade, 255) if i == j else (255, shade, shade)
            x, y = left + j * cell, top + i * cell
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=colour, outline=(235, 235, 235))
    for j, name in enumerate(names):  # column names, written downwards letter by letter
        x = left + j * cell + 3
        for k, ch in enumerate(name[:9]):
            draw.text((x, 30 + 8 * k), ch, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def learning_curves(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """Mean training loss and validation top-1 per epoch of a fine-tuning run (its checkpoint's history)."""
    from PIL import Image, ImageDraw

    width, height, pad = 520, 300, 50
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((pad, 8), title, fill=(0, 0, 0))
    steps = [row["step"] for row in history]
    series = {
        "train loss (mean of the epoch)": ([row["loss"] for row in history], (200, 60, 60)),
        "validation top-1": ([row["val_accuracy"] for row in history], (60, 100, 200)),
    }
    x0, y0, x1, y1 = pad, pad, width - pad, height - pad
    draw.rectangle((x0, y0, x1, y1), outline=(0, 0, 0))
    span = max(max(steps) - min(steps), 1)
    for k, (name, (values, colour)) in enumerate(series.items()):
        lo, hi = min(values), max(values)
        scale = max(hi - lo, 1e-9)
        points = [
            (x0 + (x1 - x0) * (s - min(steps)) / span, y1 - (y1 - y0) * (v - lo) / scale)
            for s, v in zip(steps, values, strict=True)
        ]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour)
        draw.text((x0 + 4, y1 + 6 + 14 * k), f"{name}: {lo:.3f} .. {hi:.3f}", fill=colour)
    draw.text((x1 - 120, y0 - 14), f"steps {min(steps)} .. {max(steps)}", fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
