"""`precision`: bf16 autocast by default where the device has bf16 arithmetic, a run setting on resume,
and runs saved before the field existed (with the old `amp` flag) still resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from crosspoint.train import runtime as rt
from crosspoint.train.pretrain import PretrainConfig, resume_config
from crosspoint.train.state import save_state


def test_default_precision_follows_the_hardware() -> None:
    cpu = torch.device("cpu")
    assert rt.resolve_precision(None, cpu) == ("bf16" if rt.bf16_supported(cpu) else "fp32")
    assert rt.resolve_precision("fp32", cpu) == "fp32"
    assert rt.resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="precision"):
        rt.resolve_precision("fp16", cpu)


def test_autocast_runs_gemms_in_bf16_only_when_asked() -> None:
    cpu = torch.device("cpu")
    a = torch.randn(4, 8)
    with rt.autocast(cpu, "bf16"):
        assert (a @ a.t()).dtype == torch.bfloat16
    with rt.autocast(cpu, "fp32"):
        assert (a @ a.t()).dtype == torch.float32


def test_a_run_saved_before_precision_resumes_with_the_given_one(tmp_path: Path) -> None:
    stored = {k: v for k, v in dataclasses.asdict(PretrainConfig(out="old", lr=0.5)).items()}
    stored.pop("precision")
    stored["amp"] = True  # what runs before the `precision` field stored
    param = torch.zeros(1, requires_grad=True)
    path = tmp_path / "state.safetensors"
    save_state(path, {}, torch.optim.Adam([param]), {"step": 3, "config": stored})

    cfg = resume_config(path, PretrainConfig(out="new", lr=9.0, precision="fp32"))
    assert cfg.precision == "fp32" and cfg.lr == 0.5 and cfg.out == "new"
    assert resume_config(path, PretrainConfig()).precision is None  # auto, resolved by train()
