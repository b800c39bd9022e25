"""`crosspoint eval classify`: confusion counts, per-class accuracy and the largest mistakes, from
hand-countable answers; the picture is a PNG of the stated size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from crosspoint.eval.classify import confusion, confusion_picture, learning_curves, summarize


def test_summary_counts_what_was_answered() -> None:
    labels = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    matrix = confusion(labels, predicted, 4)  # class 3 has no test rows
    assert matrix.tolist() == [[3, 1, 0, 0], [0, 2, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]]
    doc = summarize(matrix, ["a", "b", "c", "d"])
    assert doc["top1"] == 6 / 8
    assert doc["mean_class_accuracy"] == (0.75 + 1.0 + 0.5) / 3  # classes without rows left out
    assert doc["per_class"]["c"] == {"accuracy": 0.5, "count": 2}
    assert doc["per_class"]["d"] == {"accuracy": None, "count": 0}
    assert doc["largest_confusions"] == [
        {"true": "c", "predicted": "b", "count": 1, "of": 2},
        {"true": "a", "predicted": "b", "count": 1, "of": 4},
    ] or doc["largest_confusions"] == [
        {"true": "a", "predicted": "b", "count": 1, "of": 4},
        {"true": "c", "predicted": "b", "count": 1, "of": 2},
    ]


def test_pictures_are_written(tmp_path: Path) -> None:
    doc = summarize(
        confusion(np.arange(40) % 40, (np.arange(40) + 1) % 40, 40), [f"class{i}" for i in range(40)]
    )
    confusion_picture(doc, tmp_path / "c.png", "title")
    assert Image.open(tmp_path / "c.png").size == (190 + 40 * 14 + 20, 110 + 40 * 14 + 20)
    history = [{"step": s, "loss": 1.0 / s, "val_accuracy": 0.5 + 0.01 * s} for s in (10, 20, 30)]
    learning_curves(history, tmp_path / "l.png", "run")
    assert Image.open(tmp_path / "l.png").size == (520, 300)
