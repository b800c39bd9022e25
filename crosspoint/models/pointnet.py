"""PointNet as the CrossPoint reference uses it: shared MLP 64-64-64-128-1024, max-pool (no T-Nets)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from crosspoint.models._registry import register_model
from crosspoint.models.heads import class_head, projection_head
from crosspoint.models.inference import ForwardFeatures, PointBackboneForm, fold_head


@dataclass
class PointNetConfig:
    emb_dims: int = 1024
    proj_dim: int = 256
    num_classes: int = 0
    head: str = "linear"
    dropout: float = 0.5


def _pointwise(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(in_dim, out_dim, kernel_size=1, bias=False), nn.BatchNorm1d(out_dim), nn.ReLU()
    )


@register_model("pointnet", PointNetConfig)
class PointNet(nn.Module):
    """The embedding is the 1024-d max-pooled feature."""

    def __init__(self, config: PointNetConfig) -> None:
        super().__init__()
        self.config = config
        widths = (3, 64, 64, 64, 128, config.emb_dims)
        self.mlp = nn.Sequential(*(_pointwise(a, b) for a, b in itertools.pairwise(widths)))
        self.num_features = config.emb_dims
        self.projection = projection_head(config.emb_dims, config.emb_dims, config.proj_dim)
        self.head = class_head(config.head, config.emb_dims, config.num_classes, config.dropout)

    def forward_features(self, points: torch.Tensor) -> torch.Tensor:
        return self.mlp(points.transpose(2, 1)).amax(dim=-1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.head(features)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(features)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(points))

    def export_form(self) -> PointBackboneForm:
        """No EdgeConv: the trained backbone is its own inference form (ONNX Runtime fuses its Conv+BN);
        the projection and class head get BN folded and dropout dropped."""
        return PointBackboneForm(ForwardFeatures(self), fold_head(self.projection), fold_head(self.head))
