"""Tiny model repositories for the tests: random-weight checkpoints exported by the real exporter.

One builder for every suite that serves models (export, gateway, clients, benchmarks); each picks
its sizes. The checkpoints are small where it does not matter (k=10, a few hundred points) and real
where it does: ModelNet40 class names, the checkpoint format, `export.export_checkpoints`.
`trained_looking=True` moves the BN statistics and scales away from their init (some scales
negative) and the part-seg transform away from the identity, so BN folding and the transform's
batched matmul are really exercised by parity.
(tests/triton builds its own repository of hand-written modules on purpose: it tests the Triton
harness without depending on export/.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

NUM_POINTS = 256  # the tiny models' default (fast on a shared CPU)


def randomize_batchnorm(model: Any, seed: int = 0) -> None:
    """Trained-looking BN: running stats off their init, scales of both signs."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            assert module.running_mean is not None and module.running_var is not None
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.randn(n, generator=generator))
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)


def save_classifier(
    path: Path,
    *,
    num_points: int = NUM_POINTS,
    seed: int | None = 0,
    trained_looking: bool = False,
    **overrides: Any,
) -> Path:
    """A DGCNN classifier checkpoint (k=10, the 40 ModelNet40 classes unless overridden).

    `seed=None` draws from torch's global generator as it stands (a pair made in one stream)."""
    import torch

    from crosspoint import checkpoint
    from crosspoint.data import MODELNET40_CLASSES
    from crosspoint.models import create_model

    if seed is not None:
        torch.manual_seed(seed)
    args = {"k": 10, "num_classes": len(MODELNET40_CLASSES), **overrides}
    model = create_model("dgcnn", **args)
    if trained_looking:
        randomize_batchnorm(model, seed or 0)
    config = {
        "class_names": list(MODELNET40_CLASSES)[: args["num_classes"]],
        "preprocess": {**checkpoint.DEFAULT_PREPROCESS, "num_points": num_points},
    }
    checkpoint.save(path, model, config)
    return path


def save_segmenter(
    path: Path,
    *,
    num_points: int = NUM_POINTS,
    seed: int | None = None,
    trained_looking: bool = False,
    **overrides: Any,
) -> Path:
    """A DGCNN part-segmentation checkpoint (k=10); `seed` as in `save_classifier`."""
    import torch

    from crosspoint import checkpoint
    from crosspoint.models import create_model

    if seed is not None:
        torch.manual_seed(seed)
    model: Any = create_model("dgcnn_partseg", **{"k": 10, **overrides})
    if trained_looking:
        randomize_batchnorm(model, seed or 0)
        with torch.no_grad():  # a transform that is not the identity, so the bmm path matters
            model.transform_net.transform.weight.normal_(0, 0.01)
    preprocess = {**checkpoint.DEFAULT_PREPROCESS, "num_points": num_points}
    checkpoint.save(path, model, {"preprocess": preprocess})
    return path


def make_checkpoints(
    directory: Path, seed: int = 0, classify_points: int = NUM_POINTS, segment_points: int = NUM_POINTS
) -> list[Path]:
    """A classifier and a part-seg net drawn in one seeded stream: `[cls-<seed>, seg-<seed>]`."""
    directory.mkdir(parents=True, exist_ok=True)
    return [
        save_classifier(directory / f"cls-{seed}.safetensors", num_points=classify_points, seed=seed),
        save_segmenter(directory / f"seg-{seed}.safetensors", num_points=segment_points, seed=None),
    ]


def export_repository(
    checkpoints: list[Path], repository: Path, models: list[str] | None = None, parity_shapes: int = 1
) -> Any:
    """`export.export_checkpoints` into `repository` (embed, classify, segment version 1)."""
    from export import export_checkpoints

    return export_checkpoints(checkpoints, repository, models=models, parity_shapes=parity_shapes)
