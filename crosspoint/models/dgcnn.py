"""DGCNN (Wang et al. 2019) as CrossPoint uses it: 4 EdgeConvs -> 1024 -> max+avg pool = 2048-d.

Points come in as [B, N, 3]; internally features are [B, C, N] like the reference code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from crosspoint.models._edgeconv import fused_edge_conv, gather_rows, knn
from crosspoint.models._registry import register_model
from crosspoint.models.heads import class_head, projection_head
from crosspoint.models.inference import (
    NEGATIVE_SLOPE,
    PointBackboneForm,
    PointEdgeConv,
    fold_conv_bn,
    fold_head,
)


@dataclass
class DGCNNConfig:
    k: int = 20
    emb_dims: int = 1024
    proj_dim: int = 256
    num_classes: int = 0
    head: str = "linear"
    dropout: float = 0.5
    # "point" runs the EdgeConv 1x1 conv per point instead of per edge; same weights, same result
    # (on CPU also BN statistics and the max over k without the edge tensor: models/_edgeconv.py).
    edgeconv: str = "point"


def fused_applies(x: torch.Tensor) -> bool:
    """The fused EdgeConv (sparse CPU kernels) runs eagerly on CPU; tracing and export see the plain form."""
    return (
        x.device.type == "cpu"
        and not torch.jit.is_tracing()
        and not torch.jit.is_scripting()
        and not torch.compiler.is_compiling()
        and not torch.onnx.is_in_onnx_export()
    )


def gather_neighbours(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [B, C, N], idx [B, N, k] -> neighbour features [B, C, N, k]."""
    return gather_rows(x.transpose(2, 1), idx).permute(0, 3, 1, 2)


def graph_feature(x: torch.Tensor, k: int, idx: torch.Tensor | None = None) -> torch.Tensor:
    """The reference edge feature [x_j - x_i, x_i]: [B, 2C, N, k]."""
    if idx is None:
        idx = knn(x, k)
    neighbours = gather_neighbours(x, idx)
    centre = x.unsqueeze(-1).expand_as(neighbours)
    return torch.cat((neighbours - centre, centre), dim=1)


class EdgeConv(nn.Module):
    """1x1 conv on edge features, BN, LeakyReLU(0.2), max over the k neighbours."""

    def __init__(self, in_dim: int, out_dim: int, k: int, form: str = "point") -> None:
        super().__init__()
        if form not in ("point", "edge"):
            raise ValueError(f"EdgeConv form must be 'point' or 'edge', not {form!r}")
        self.k, self.form = k, form
        self.conv = nn.Conv2d(2 * in_dim, out_dim, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_dim)
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.form == "point" and fused_applies(x):
            # Neighbours from fp32 scores even under autocast: the graph serving will build.
            with torch.autocast(x.device.type, enabled=False):
                idx = knn(x.float() if x.dtype in (torch.bfloat16, torch.float16) else x, self.k)
            return fused_edge_conv(x, idx, self.conv.weight, self.bn, self.act.negative_slope)
        idx = knn(x, self.k)
        if self.form == "edge":
            edges = self.conv(graph_feature(x, self.k, idx))
        else:
            # W [x_j - x_i; x_i] = Wa x_j + (Wb - Wa) x_i: project N points, not N*k edges.
            w = self.conv.weight.flatten(1)
            wa, wb = w.chunk(2, dim=1)
            per_point = torch.einsum("oc,bcn->bon", wa, x)
            centre = torch.einsum("oc,bcn->bon", wb - wa, x)
            edges = gather_neighbours(per_point, idx) + centre.unsqueeze(-1)
        return self.act(self.bn(edges)).max(dim=-1)[0]


class DGCNNFeatures(nn.Module):
    """`DGCNN.forward_features` in the inference form (models/inference.py): [B, N, 3] -> [B, 2 * emb_dims]."""

    def __init__(self, model: DGCNN) -> None:
        super().__init__()
        k = model.config.k
        self.edges = nn.ModuleList(
            PointEdgeConv(block.conv, block.bn, k)
            for block in (model.edge1, model.edge2, model.edge3, model.edge4)
        )
        self.conv5 = fold_conv_bn(model.conv5[0], model.conv5[1])

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        x = points
        features = []
        for edge in self.edges:
            x = edge(x)
            features.append(x)
        x = F.leaky_relu(self.conv5(torch.cat(features, dim=-1)), NEGATIVE_SLOPE)
        return torch.cat((x.amax(dim=1), x.mean(dim=1)), dim=1)


@register_model("dgcnn", DGCNNConfig)
class DGCNN(nn.Module):
    """CrossPoint's DGCNN: embedding (`forward_features`), projection (`project`), class head."""

    def __init__(self, config: DGCNNConfig) -> None:
        super().__init__()
        self.config = config
        k = config.k
        self.edge1 = EdgeConv(3, 64, k, config.edgeconv)
        self.edge2 = EdgeConv(64, 64, k, config.edgeconv)
        self.edge3 = EdgeConv(64, 128, k, config.edgeconv)
        self.edge4 = EdgeConv(128, 256, k, config.edgeconv)
        self.conv5 = nn.Sequential(
            nn.Conv1d(512, config.emb_dims, kernel_size=1, bias=False),
            nn.BatchNorm1d(config.emb_dims),
            nn.LeakyReLU(0.2),
        )
        self.num_features = 2 * config.emb_dims
        self.projection = projection_head(self.num_features, config.emb_dims, config.proj_dim)
        self.head = class_head(config.head, self.num_features, config.num_classes, config.dropout)

    def forward_features(self, points: torch.Tensor) -> torch.Tensor:
        """points [B, N, 3] -> the 2048-d embedding (max-pool and avg-pool concatenated)."""
        x = points.transpose(2, 1)
        x1 = self.edge1(x)
        x2 = self.edge2(x1)
        x3 = self.edge3(x2)
        x4 = self.edge4(x3)
        # conv5 on per-point rows [B*N, 512] as one GEMM (faster than the 1x1 Conv1d on CPU); BN over
        # the same B*N rows, so the same statistics. The fused EdgeConvs already return such rows.
        b, n = points.shape[:2]
        rows = torch.cat([f.transpose(2, 1) for f in (x1, x2, x3, x4)], dim=2).reshape(b * n, -1)
        conv, bn, act = self.conv5
        # out_channels as a constant, not -1: an exported graph must keep the embedding width static.
        x = act(bn(F.linear(rows, conv.weight.flatten(1)))).view(b, n, conv.out_channels)  # type: ignore[operator]
        return torch.cat((x.amax(dim=1), x.mean(dim=1)), dim=1)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.head(features)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """The 256-d projection the contrastive losses compare."""
        return self.projection(features)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(points))

    def export_form(self) -> PointBackboneForm:
        """The same weights in the inference form (eval BN folded, EdgeConv per point): what is exported."""
        return PointBackboneForm(DGCNNFeatures(self), fold_head(self.projection), fold_head(self.head))
