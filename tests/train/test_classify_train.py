"""End-to-end classifier fine-tuning: a classifier checkpoint comes out, validation picks it, and a run
cut mid-epoch and resumed ends with the same weights as one that was never cut."""

from __future__ import annotations

from pathlib import Path

import torch

from crosspoint import checkpoint
from crosspoint.models import create_model
from crosspoint.train.classify import ClassifyTrainConfig, train


def _config(tmp_path: Path, out: str, **overrides: object) -> ClassifyTrainConfig:
    torch.manual_seed(0)
    init = tmp_path / "backbone.safetensors"
    if not init.exists():  # a bare backbone: the classifier gets a fresh linear head
        checkpoint.save(init, create_model("dgcnn", k=8), {"training": {"task": "test"}})
    settings: dict[str, object] = {
        "init": str(init), "out": str(tmp_path / out), "num_points": 512, "train_limit": 120,
        "test_limit": 40, "batch_size": 8, "epochs": 1, "save_every_steps": 2, "device": "cpu", "precision": "fp32",
    }  # fmt: skip
    settings.update(overrides)
    return ClassifyTrainConfig(**settings)  # type: ignore[arg-type]


def test_fine_tuning_writes_a_classifier_picked_on_validation(tmp_path: Path) -> None:
    summary = train(_config(tmp_path, "run", max_steps=3))
    best = checkpoint.load(tmp_path / "run" / "best.safetensors")
    assert best.model.config.num_classes == 40 and best.model.config.head == "linear"
    assert len(best.config["class_names"]) == 40
    assert best.preprocess["num_points"] == 512
    assert summary["step"] == 3 and summary["best_step"] == 3
    assert summary["history"][-1]["val_accuracy"] == summary["best_val"]
    assert 0.0 <= summary["test_accuracy_of_best"] <= 1.0
    # The head was trained: it is no longer the fresh one the backbone-only init gave it.
    fresh = create_model("dgcnn", k=8, num_classes=40, head="linear")
    assert not torch.equal(best.model.head.weight, fresh.head.weight)


def test_resume_mid_epoch_is_bit_exact(tmp_path: Path) -> None:
    train(_config(tmp_path, "straight", max_steps=4))
    train(_config(tmp_path, "cut", max_steps=2))
    train(_config(tmp_path, "cut", max_steps=4), resume=True)
    a = checkpoint.load(tmp_path / "straight" / "last.safetensors").model.state_dict()
    b = checkpoint.load(tmp_path / "cut" / "last.safetensors").model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
