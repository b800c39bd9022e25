"""DGCNN part segmentation (the reference `DGCNN_partseg`): 3x3 transform net, EdgeConvs 64/64/64,
a 1024-d global feature, the 16-d category one-hot -> 64, and a 1280-d per-point head to 50 parts."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from crosspoint.models._registry import register_model
from crosspoint.models.dgcnn import graph_feature


@dataclass
class PartSegConfig:
    k: int = 40
    emb_dims: int = 1024
    num_categories: int = 16
    num_parts: int = 50
    dropout: float = 0.5


def _conv2d(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_dim, out_dim, 1, bias=False), nn.BatchNorm2d(out_dim), nn.LeakyReLU(0.2)
    )


def _conv1d(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(in_dim, out_dim, 1, bias=False), nn.BatchNorm1d(out_dim), nn.LeakyReLU(0.2)
    )


class TransformNet(nn.Module):
    """Predicts a 3x3 alignment from edge features; starts as the identity."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _conv2d(6, 64)
        self.conv2 = _conv2d(64, 128)
        self.conv3 = _conv1d(128, 1024)
        self.mlp = nn.Sequential(
            nn.Linear(1024, 512, bias=False),
            nn.BatchNorm1d(512),
            nn.LeakyReLU(0.2),
            nn.Linear(512, 256, bias=False),
            nn.BatchNorm1d(256),
            nn.LeakyReLU(0.2),
        )
        self.transform = nn.Linear(256, 9)
        nn.init.zeros_(self.transform.weight)
        with torch.no_grad():
            self.transform.bias.copy_(torch.eye(3).flatten())

    def forward(self, edges: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(edges)).amax(dim=-1)
        x = self.conv3(x).amax(dim=-1)
        return self.transform(self.mlp(x)).view(-1, 3, 3)


@register_model("dgcnn_partseg", PartSegConfig)
class DGCNNPartSeg(nn.Module):
    def __init__(self, config: PartSegConfig) -> None:
        super().__init__()
        self.config = config
        self.transform_net = TransformNet()
        self.conv1 = _conv2d(6, 64)
        self.conv2 = _conv2d(64, 64)
        self.conv3 = _conv2d(128, 64)
        self.conv4 = _conv2d(64, 64)
        self.conv5 = _conv2d(128, 64)
        self.conv6 = _conv1d(192, config.emb_dims)
        self.conv7 = _conv1d(config.num_categories, 64)
        self.num_features = config.emb_dims + 64 + 192
        self.head = nn.Sequential(
            _conv1d(self.num_features, 256),
            nn.Dropout(config.dropout),
            _conv1d(256, 256),
            nn.Dropout(config.dropout),
            _conv1d(256, 128),
            nn.Conv1d(128, config.num_parts, 1, bias=False),
        )

    def forward_features(self, points: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """points [B, N, 3], category one-hot [B, 16] -> per-point features [B, 1280, N]."""
        k = self.config.k
        x = points.transpose(2, 1)
        n = x.shape[-1]
        t = self.transform_net(graph_feature(x, k))
        x = torch.bmm(x.transpose(2, 1), t).transpose(2, 1)
        x1 = self.conv2(self.conv1(graph_feature(x, k))).amax(dim=-1)
        x2 = self.conv4(self.conv3(graph_feature(x1, k))).amax(dim=-1)
        x3 = self.conv5(graph_feature(x2, k)).amax(dim=-1)
        local = torch.cat((x1, x2, x3), dim=1)
        glob = self.conv6(local).amax(dim=-1, keepdim=True)
        cat = self.conv7(category.unsqueeze(-1))
        glob = torch.cat((glob, cat), dim=1).expand(-1, -1, n)
        return torch.cat((glob, local), dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """[B, 1280, N] -> part logits [B, N, 50]."""
        return self.head(features).transpose(2, 1)

    def forward(self, points: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(points, category))
