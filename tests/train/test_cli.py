"""`crosspoint train` options are generated from the config dataclasses: one default, one help each."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from crosspoint.train import cli
from crosspoint.train.configs import (
    HEAD_CS,
    ClassifyTrainConfig,
    HeadConfig,
    PartSegTrainConfig,
    PretrainConfig,
)

COMMANDS = {
    "pretrain": PretrainConfig,
    "head": HeadConfig,
    "classify": ClassifyTrainConfig,
    "partseg": PartSegTrainConfig,
}
# What `train head` shows differently: the C grid as a string, the embedding cache as a switch.
HEAD_CLI = {"Cs": "cs", "feature_cache": "feature_cache"}


def _params(name: str) -> dict[str, Any]:
    group: Any = typer.main.get_command(cli.app)
    return {p.name: p for p in group.commands[name].params}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_config_field_is_an_option_with_the_dataclass_default(name: str) -> None:
    params = _params(name)
    config = COMMANDS[name]
    renamed = HEAD_CLI if name == "head" else {}
    fields = [f for f in dataclasses.fields(config) if f.name not in renamed]
    expected = {f.name for f in fields} | set(renamed.values()) | ({"resume"} if name != "head" else set())
    assert set(params) == expected
    for f in fields:
        param = params[f.name]
        if f.default is dataclasses.MISSING:
            assert param.required, f.name
        else:
            assert param.default == f.default, (name, f.name)
        if f.metadata.get("help"):
            assert param.help == f.metadata["help"]


def test_views_default_is_the_config_one() -> None:
    """The CLI said 8 while PretrainConfig said 4; the config's value is the one both use now."""
    assert _params("pretrain")["views"].default == PretrainConfig().views == 4


def test_pretrain_options_reach_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def fake_train(cfg: PretrainConfig, resume: bool = False) -> dict[str, Any]:
        seen.update(cfg=cfg, resume=resume)
        return {
            "step": 0,
            "epoch": 0,
            "best_probe": -1.0,
            "best_step": -1,
            "random_probe": None,
            "out": cfg.out,
        }

    monkeypatch.setattr("crosspoint.train.pretrain.train", fake_train)
    args = ["pretrain", "--views", "3", "--k", "10", "--no-channels-last", "--device", "cpu", "--resume"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    expected = dataclasses.replace(PretrainConfig(), views=3, k=10, channels_last=False, device="cpu")
    assert seen == {"cfg": expected, "resume": True}


def test_head_grid_and_feature_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    seen: list[HeadConfig] = []

    def fake_fit(cfg: HeadConfig) -> dict[str, Any]:
        seen.append(cfg)
        keys = ("classifier", "C", "val_accuracy", "train_accuracy", "sklearn_agreement_val")
        return dict.fromkeys(keys, 0.0)

    monkeypatch.setattr("crosspoint.train.head.fit_head", fake_fit)
    runner = CliRunner()
    base = ["head", "--checkpoint", "b.safetensors", "--cache-dir", str(tmp_path)]
    assert runner.invoke(cli.app, base).exit_code == 0
    assert runner.invoke(cli.app, [*base, "--cs", "0.5,2", "--no-feature-cache"]).exit_code == 0
    assert tuple(seen[0].Cs) == HEAD_CS and seen[0].feature_cache == str(tmp_path / "features")
    assert tuple(seen[1].Cs) == (0.5, 2.0) and seen[1].feature_cache is None
    assert runner.invoke(cli.app, ["head"]).exit_code != 0  # --checkpoint is required
