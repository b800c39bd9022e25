"""Resumable pretraining: 2 steps + resume == the same run straight through, bit for bit (CPU);
same seed -> same losses; the checkpoints are self-describing and pickle-free."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from crosspoint import checkpoint
from crosspoint.train.pretrain import train
from crosspoint.train.state import read_meta
from tests.train.conftest import read_metrics


def test_resume_is_bit_exact_across_an_epoch_boundary(tiny: Any) -> None:
    # 12 shapes / batch 4 = 3 steps per epoch: stop after 2, resume to 5 (into the second epoch).
    straight = tiny("straight", max_steps=5)
    train(straight)
    first = tiny("resumed", max_steps=2)
    train(first)
    a, b = Path(straight.out), Path(first.out)
    assert read_meta(b / "state.safetensors")["step"] == 2
    # Same seed, same data order and augmentations: the first two losses already agree.
    assert [r["loss/total"] for r in read_metrics(b)] == [r["loss/total"] for r in read_metrics(a)][:2]
    # The stored config wins on resume (epochs and lr here are ignored), except max_steps.
    train(tiny("resumed", max_steps=5, epochs=99, lr=1.0), resume=True)

    state_a, state_b = load_file(str(a / "state.safetensors")), load_file(str(b / "state.safetensors"))
    assert state_a.keys() == state_b.keys()
    assert any(k.startswith("image.") for k in state_a) and any(k.startswith("optim.") for k in state_a)
    for key in state_a:  # weights, Adam moments and step, RNG states
        assert torch.equal(state_a[key], state_b[key]), key
    last_a, last_b = load_file(str(a / "last.safetensors")), load_file(str(b / "last.safetensors"))
    assert last_a.keys() == last_b.keys()
    assert all(torch.equal(last_a[k], last_b[k]) for k in last_a)
    losses_a = [r["loss/total"] for r in read_metrics(a)]
    assert len(losses_a) == 5 and losses_a == [r["loss/total"] for r in read_metrics(b)]
    assert read_meta(b / "state.safetensors")["epoch"] == 1

    # The backbone checkpoint describes itself and is not a pickle.
    loaded = checkpoint.load(b / "last.safetensors")
    assert loaded.model_name == "dgcnn" and loaded.model.config.k == 8
    training = loaded.config["training"]
    assert training["task"] == "crosspoint_pretrain" and training["step"] == 5
    assert training["pretrain_config"]["image_encoder"] == "resnet18_image"
    for name in ("last.safetensors", "state.safetensors"):
        # safetensors: an 8-byte little-endian header length, then the JSON header. (Its first byte
        # can be 0x80, pickle's protocol marker, by chance of the length: check the layout instead.)
        data = (b / name).read_bytes()
        header = int.from_bytes(data[:8], "little")
        assert isinstance(json.loads(data[8 : 8 + header]), dict)


def test_another_seed_gives_other_losses(tiny: Any) -> None:
    a, c = tiny("a", max_steps=1, seed=0), tiny("c", max_steps=1, seed=1)
    train(a)
    train(c)
    assert read_metrics(Path(a.out))[0]["loss/total"] != read_metrics(Path(c.out))[0]["loss/total"]
