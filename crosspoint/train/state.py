"""Resumable training state without pickle: tensors in one safetensors file, everything else as JSON.

`state.safetensors` holds the weights of every trained module (`<module>.<param>`), the optimizer's
per-parameter tensors (`optim.<param index>.<key>`) and the RNG states (`rng.*`); its metadata key
`training_state` holds a JSON document with the step/epoch counters, the optimizer's param groups, the
Python/NumPy RNG scalars and whatever the loop adds (config, best probe score). Loading restores all of
it, so a resumed CPU run continues bit-exactly.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

METADATA_KEY = "training_state"


def save_state(
    path: str | os.PathLike[str],
    modules: Mapping[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    meta: Mapping[str, Any],
) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"{name}.{key}"] = value
    opt = optimizer.state_dict()
    scalars: dict[str, Any] = {}
    for pid, per_param in opt["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    np_state: tuple[Any, ...] = tuple(np.random.get_state())
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(np_state[1], dtype=np.int64))
    document = {
        **meta,
        "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars},
        "rng": {"python": random.getstate(), "numpy": [np_state[0], *np_state[2:]]},
    }
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(document)})
    os.replace(tmp, path)  # a crash mid-write leaves the previous state intact


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        document: dict[str, Any] = json.loads((f.metadata() or {})[METADATA_KEY])
    return document


def resumed_config(
    path: str | os.PathLike[str], given: Any, run_fields: tuple[str, ...], ignore: tuple[str, ...] = ()
) -> Any:
    """The config stored in the state at `path` wins, except how the run executes: `run_fields` as
    `given` now, and `data`/`cache_dir` when given again (the run moved to another machine).

    `given` is a config dataclass; `ignore` drops stored keys that no longer exist.
    """
    stored = {k: v for k, v in read_meta(path)["config"].items() if k not in ignore}
    now = {k: getattr(given, k) for k in run_fields}
    moved = {k: getattr(given, k) for k in ("data", "cache_dir") if getattr(given, k) is not None}
    return type(given)(**{**stored, **now, **moved})


def start_run(cfg: Any, resume: bool) -> tuple[Any, torch.device, bool]:
    """A single-process run's start -> (config, device, resuming): a resumed run's stored config (how and
    where it runs as given now), the precision resolved for the device, every RNG seeded."""
    from dataclasses import replace

    from crosspoint.train import runtime as rt

    state_path = Path(cfg.out) / "state.safetensors"
    resuming = resume and state_path.exists()
    if resuming:
        cfg = resumed_config(state_path, cfg, ("max_steps", "device", "precision", "num_workers", "out"))
    device = rt.pick_device(cfg.device)
    cfg = replace(cfg, precision=rt.resolve_precision(cfg.precision, device))
    rt.seed_everything(cfg.seed)
    return cfg, device, resuming


def load_state(
    path: str | os.PathLike[str],
    modules: Mapping[str, nn.Module],
    optimizer: torch.optim.Optimizer,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Restore modules, optimizer and RNGs in place; returns the JSON document."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    meta = read_meta(path)
    for name, module in modules.items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value.to(device) if name != "step" else value
    for key, value in meta["optimizer"]["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    cuda_keys = sorted(
        (k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1])
    )
    cuda_states = [tensors[k] for k in cuda_keys]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states[: torch.cuda.device_count()])
    kind, *rest = meta["rng"]["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), *rest))
    version, internal, gauss = meta["rng"]["python"]
    random.setstate((version, tuple(internal), gauss))
    return meta
