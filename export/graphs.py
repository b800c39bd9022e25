"""The three served graphs (embed, classify, segment), each in two forms built from one checkpoint.

- "export": what goes into model.onnx / model.pt: the model's own `export_form()` (its inference
  form, built in crosspoint/models: per-point EdgeConv, BN folded; PointNet's backbone is itself).
- "reference": the training form in eval mode (EdgeConv on N*k edge features, as in the
  reference code), the yardstick of every parity check, and the "naive" export we time against.

Outputs come back as a tuple in the contract's order (export.contract), which is also the order
Triton's pytorch backend binds them in.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from crosspoint.models.inference import ForwardFeatures
from export.contract import ModelSpec, model_spec

FORMS = ("export", "reference")
POINT_BACKBONES = ("dgcnn", "pointnet")
SEGMENTATION = "dgcnn_partseg"


def served_models(checkpoint_config: dict[str, Any]) -> tuple[str, ...]:
    """What a checkpoint can serve: embed (+ classify with a class head) or segment."""
    name = checkpoint_config["model"]["name"]
    args = checkpoint_config["model"]["args"]
    if name in POINT_BACKBONES:
        return ("embed", "classify") if int(args.get("num_classes", 0)) > 0 else ("embed",)
    if name == SEGMENTATION:
        return ("segment",)
    return ()


def spec_for(model: Any, served: str) -> ModelSpec:
    """The contract of `served` with this model's sizes filled in."""
    config = model.config
    if served == "segment":
        return model_spec("segment", num_categories=config.num_categories, num_parts=config.num_parts)
    return model_spec(
        served,
        embedding_dim=model.num_features,
        projection_dim=config.proj_dim,
        num_classes=config.num_classes,
    )


class PointCloudGraph(nn.Module):
    """points [B, N, 3] -> the outputs named in `outputs` ("embedding", "projection", "logits")."""

    def __init__(
        self,
        features: nn.Module,
        outputs: tuple[str, ...],
        projection: nn.Module | None = None,
        head: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.features, self.projection, self.head = features, projection, head
        self.outputs = outputs

    def forward(self, points: torch.Tensor) -> tuple[torch.Tensor, ...]:
        embedding = self.features(points)
        results = []
        for name in self.outputs:  # unrolled when traced
            if name == "embedding":
                results.append(embedding)
            elif name == "projection" and self.projection is not None:
                results.append(self.projection(embedding))
            elif name == "logits" and self.head is not None:
                results.append(self.head(embedding))
        return tuple(results)


class SegmentGraph(nn.Module):
    """(points [B, N, 3], category one-hot [B, 16]) -> (part_logits [B, N, 50],)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, points: torch.Tensor, category: torch.Tensor) -> tuple[torch.Tensor]:
        return (self.net(points, category),)


def reference_model(model: Any) -> Any:
    """The same weights in the training form: DGCNN rebuilt with `edgeconv="edge"`, eval mode."""
    from crosspoint.models import create_model

    name = model.model_name
    if name != "dgcnn" or model.config.edgeconv == "edge":
        return model.eval()
    args = {**vars(model.config), "edgeconv": "edge"}
    reference = create_model(name, **args)
    reference.load_state_dict(model.state_dict())
    return reference.eval()


def build_graph(model: Any, served: str, form: str = "export") -> nn.Module:
    """The graph serving `served` from `model` (a loaded registry model) in `form` ("export"/"reference")."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, not {form!r}")
    name = model.model_name
    if served not in served_models({"model": {"name": name, "args": vars(model.config)}}):
        raise ValueError(f"a {name!r} checkpoint cannot serve {served!r}")
    model = model.eval()
    if served == "segment":
        net = model.export_form() if form == "export" else reference_model(model)
        return SegmentGraph(net).eval()
    outputs = spec_for(model, served).output_names
    if form == "reference":
        reference = reference_model(model)
        return PointCloudGraph(
            ForwardFeatures(reference), outputs, reference.projection, reference.head
        ).eval()
    exported = model.export_form()
    # Only the heads this model outputs: a traced module keeps every submodule's weights.
    projection = exported.projection if "projection" in outputs else None
    head = exported.head if "logits" in outputs else None
    return PointCloudGraph(exported.features, outputs, projection, head).eval()
