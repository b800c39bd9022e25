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
        "head_warmup_steps": 1,
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


def test_head_warmup_trains_the_head_alone(tmp_path: Path) -> None:
    init = checkpoint.load(_config(tmp_path, "x").init).model.state_dict()
    train(_config(tmp_path, "warm", max_steps=2, head_warmup_steps=2, keep_head=False))
    warm = checkpoint.load(tmp_path / "warm" / "last.safetensors").model
    assert not torch.equal(warm.head.weight, torch.zeros_like(warm.head.weight))
    trained = {k: v for k, v in warm.state_dict().items() if k in init and "running" not in k}
    assert all(torch.equal(v, init[k]) for k, v in trained.items() if "num_batches" not in k)
    # BatchNorm ran in train mode meanwhile: its statistics follow the augmented clouds.
    stats = [k for k in init if k.endswith("running_mean")]
    assert any(not torch.equal(warm.state_dict()[k], init[k]) for k in stats)
    train(_config(tmp_path, "after", max_steps=3, head_warmup_steps=2))
    after = checkpoint.load(tmp_path / "after" / "last.safetensors").model.state_dict()
    assert any(not torch.equal(after[k], init[k]) for k in trained)
