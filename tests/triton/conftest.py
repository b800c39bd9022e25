"""A tiny model repository shaped like ours (points -> embedding/projection, points+category -> parts).

Exported here, in the test, to both ONNX and TorchScript, so the harness is tested without
depending on `export/` or the shipped model_repository/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from crosspoint.triton.server import TritonServer
from crosspoint.triton.testing import require_tritonserver, running_triton

PARTS = 5
CATEGORIES = 16


class TinyEmbed(torch.nn.Module):
    """[B, N, 3] -> embedding [B, 4], projection [B, 2]: a per-point Linear and a max pool."""

    def __init__(self) -> None:
        super().__init__()
        self.point = torch.nn.Linear(3, 4)
        self.project = torch.nn.Linear(4, 2)

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.point(points).amax(dim=1)
        return embedding, self.project(embedding)


class TinySegment(torch.nn.Module):
    """points [B, N, 3], category [B, 16] -> part_logits [B, N, 5]."""

    def __init__(self) -> None:
        super().__init__()
        self.point = torch.nn.Linear(3, PARTS)
        self.category = torch.nn.Linear(CATEGORIES, PARTS)

    def forward(self, points: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        return self.point(points) + self.category(category)[:, None, :]


EMBED_IO = """
input [ { name: "points" data_type: TYPE_FP32 dims: [ -1, 3 ] } ]
output [
  { name: "embedding" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "projection" data_type: TYPE_FP32 dims: [ 2 ] }
]
"""
# Inputs listed in the other order than forward(points, category): the pytorch shim must bind by name.
SEGMENT_IO = """
input [
  { name: "category" data_type: TYPE_FP32 dims: [ 16 ] },
  { name: "points" data_type: TYPE_FP32 dims: [ -1, 3 ] }
]
output [ { name: "part_logits" data_type: TYPE_FP32 dims: [ -1, 5 ] } ]
"""
# One instance and a generous queue delay: concurrent requests must meet in one execution.
BATCHING = """
max_batch_size: 16
dynamic_batching { max_queue_delay_microseconds: 100000 }
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

# model name -> (config head, io block, file, module)
MODELS = {
    "embed": ('backend: "onnxruntime"', EMBED_IO, "model.onnx", "embed"),
    "embed_platform": ('platform: "onnxruntime_onnx"', EMBED_IO, "model.onnx", "embed"),
    "embed_pt": ('backend: "pytorch"', EMBED_IO, "model.pt", "embed"),
    "segment": ('backend: "onnxruntime"', SEGMENT_IO, "model.onnx", "segment"),
    "segment_pt": ('platform: "pytorch_libtorch"', SEGMENT_IO, "model.pt", "segment"),
}


def make_modules(seed: int = 0) -> dict[str, torch.nn.Module]:
    torch.manual_seed(seed)
    return {"embed": TinyEmbed().eval(), "segment": TinySegment().eval()}


def config_text(name: str) -> str:
    head, io, _, _ = MODELS[name]
    return f'name: "{name}"\n{head}\n{BATCHING}{io}'


def export_version(model_dir: Path, version: int, filename: str, module: torch.nn.Module) -> None:
    out = model_dir / str(version)
    out.mkdir(parents=True, exist_ok=True)
    points = torch.randn(2, 8, 3)
    if isinstance(module, TinySegment):
        args: tuple[torch.Tensor, ...] = (points, torch.eye(CATEGORIES)[:2])
        names, outputs = ["points", "category"], ["part_logits"]
        axes = {"points": {0: "batch", 1: "n"}, "category": {0: "batch"}, "part_logits": {0: "batch", 1: "n"}}
    else:
        args, names, outputs = (points,), ["points"], ["embedding", "projection"]
        axes = {"points": {0: "batch", 1: "n"}, "embedding": {0: "batch"}, "projection": {0: "batch"}}
    if filename == "model.onnx":
        torch.onnx.export(
            module, args, str(out / filename), input_names=names, output_names=outputs,
            dynamic_axes=axes, dynamo=False,
        )  # fmt: skip
    else:
        torch.jit.script(module).save(str(out / filename))


def build_repository(root: Path, names: list[str] | None = None, seed: int = 0) -> Path:
    modules = make_modules(seed)
    for name in names or list(MODELS):
        _, _, filename, kind = MODELS[name]
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "config.pbtxt").write_text(config_text(name))
        export_version(root / name, 1, filename, modules[kind])
    return root


def reference(kind: str, inputs: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """Eager PyTorch outputs for the same weights."""
    module = make_modules(seed)[kind]
    with torch.inference_mode():
        if kind == "segment":
            logits = module(torch.from_numpy(inputs["points"]), torch.from_numpy(inputs["category"]))
            return {"part_logits": logits.numpy()}
        embedding, projection = module(torch.from_numpy(inputs["points"]))
        return {"embedding": embedding.numpy(), "projection": projection.numpy()}


def sample_inputs(kind: str, batch: int, points: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    inputs = {"points": rng.standard_normal((batch, points, 3)).astype(np.float32)}
    if kind == "segment":
        inputs["category"] = np.eye(CATEGORIES, dtype=np.float32)[rng.integers(0, CATEGORIES, batch)]
    return inputs


@pytest.fixture(scope="session")
def tiny_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_repository(tmp_path_factory.mktemp("tiny_repository"))


@pytest.fixture(scope="session")
def triton(tiny_repository: Path) -> Iterator[TritonServer]:
    require_tritonserver()
    with running_triton(tiny_repository, timeout=120) as server:
        yield server
