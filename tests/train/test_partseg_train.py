"""Part-segmentation fine-tuning: real shapes + procedural ones, the checkpoint carries the taxonomy,
pretrained weights load by matching name and shape."""

from __future__ import annotations

from pathlib import Path

import torch

from crosspoint import checkpoint
from crosspoint.data.shapenetpart_meta import CATEGORY_NAMES, PART_NAMES
from crosspoint.models import create_model
from crosspoint.train.partseg import PartSegTrainConfig, ProceduralParts, load_pretrained, train


def test_tiny_partseg_run_mixes_procedural_shapes(tmp_path: Path) -> None:
    cfg = PartSegTrainConfig(out=str(tmp_path / "seg"), procedural=8, epochs=2, batch_size=8, num_points=256,
                             k=10, device="cpu", seed=0)  # fmt: skip
    summary = train(cfg)
    assert summary["data"] == {"real": 16, "procedural": 8}
    history = summary["history"]
    assert len(history) == 2 and history[0]["lr"] == 0.1 and history[1]["lr"] < 0.1
    assert all(0.0 <= row["instance_miou"] <= 1.0 for row in history)
    loaded = checkpoint.load(Path(cfg.out) / "last.safetensors")
    assert loaded.model_name == "dgcnn_partseg" and loaded.model.config.k == 10
    doc = loaded.config
    assert doc["category_names"] == list(CATEGORY_NAMES) and doc["part_names"] == list(PART_NAMES)
    assert doc["category_parts"]["Chair"] == [12, 13, 14, 15] and doc["preprocess"]["num_points"] == 256
    assert doc["training"]["partseg_config"]["label_smoothing"] == 0.2


def test_procedural_items_are_prepared_like_real_ones() -> None:
    item = ProceduralParts(2, 128, seed=0)[1]
    points = item["points"]
    assert points.shape == (128, 3) and item["part_labels"].shape == (128,)
    assert torch.allclose(
        points.norm(dim=1).max(), torch.tensor(1.0), atol=1e-5
    )  # unit sphere, like prepare()
    assert torch.allclose(points.mean(dim=0), torch.zeros(3), atol=0.1)
    c = int(item["category"])
    assert item["part_labels"].min() >= 0 and CATEGORY_NAMES[c]


def test_pretrained_weights_load_where_names_and_shapes_match(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = create_model("dgcnn_partseg", k=40)
    path = tmp_path / "pre.safetensors"
    checkpoint.save(path, source)
    target = create_model("dgcnn_partseg", k=40)
    report = load_pretrained(target, str(path))
    assert report["loaded"] == report["of"]
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in target.state_dict().items())
    other = tmp_path / "dgcnn.safetensors"
    checkpoint.save(other, create_model("dgcnn"))  # a classification DGCNN shares no layer names
    assert load_pretrained(create_model("dgcnn_partseg"), str(other))["loaded"] == 0


def test_max_steps_on_an_epoch_end_counts_the_epoch_and_resumes_after_it(tmp_path: Path) -> None:
    # 16 real + 8 procedural shapes in batches of 8 (drop_last off below 100 shapes) = 3 steps an epoch.
    cfg = PartSegTrainConfig(out=str(tmp_path / "seg"), procedural=8, epochs=2, batch_size=8, num_points=256,
                             k=10, device="cpu", seed=0, max_steps=3, eval_every=0)  # fmt: skip
    first = train(cfg)
    assert first["epoch"] == 1 and first["step"] == 3 and (tmp_path / "seg" / "state.safetensors").exists()
    second = train(PartSegTrainConfig(**{**cfg.__dict__, "max_steps": 0}), resume=True)
    assert second["epoch"] == 2 and second["step"] == 6
    assert [row["epoch"] for row in second["history"]] == [0, 1]  # epoch 0 is not redone
