"""DGCNN part segmentation (the reference `DGCNN_partseg`): 3x3 transform net, EdgeConvs 64/64/64,
a 1024-d global feature, the 16-d category one-hot -> 64, and a 1280-d per-point head to 50 parts."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from crosspoint.models._edgeconv import flat_neighbours, fused_edge_conv
from crosspoint.models._registry import register_model
from crosspoint.models.dgcnn import fused_applies, graph_feature, knn
from crosspoint.models.inference import (
    NEGATIVE_SLOPE,
    PointEdgeConv,
    PointEdgeConvPair,
    fold_conv_bn,
    fold_head,
    linear,
)


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


def _parts(block: nn.Sequential) -> tuple[nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU]:
    conv, bn, act = block
    return cast(nn.Conv2d, conv), cast(nn.BatchNorm2d, bn), cast(nn.LeakyReLU, act)


def edge_block(
    x: torch.Tensor, k: int, first: nn.Sequential, second: nn.Sequential | None = None
) -> torch.Tensor:
    """`second(first(graph_feature(x, k))).amax(-1)` for x [B, C, N] -> [B, O, N], the reference blocks.

    On CPU the first conv runs per point (W [x_j - x_i; x_i] = Wa x_j + (Wb - Wa) x_i, models/_edgeconv.py)
    and the edges stay as rows [B*N*k, C] (one GEMM each, no [B, 2C, N, k] concatenation); a single
    block is the fused EdgeConv. Same modules, same BatchNorm statistics.
    """
    if not fused_applies(x):
        h = first(graph_feature(x, k))
        return (second(h) if second is not None else h).amax(dim=-1)
    with torch.autocast(x.device.type, enabled=False):  # fp32 neighbours, as in dgcnn.EdgeConv
        idx = knn(x.float() if x.dtype in (torch.bfloat16, torch.float16) else x, k)
    conv, bn, act = _parts(first)
    if second is None:
        return fused_edge_conv(x, idx, conv.weight, bn, act.negative_slope)
    b, c, n = x.shape
    w = conv.weight.flatten(1)
    wa, wb = w[:, :c], w[:, c:]
    pq = x.transpose(2, 1).reshape(b * n, c) @ torch.cat((wa, wb - wa)).t()
    p, q = pq.chunk(2, dim=1)
    flat = flat_neighbours(idx, b, n)
    edges = (p[flat].view(b * n, k, -1) + q.unsqueeze(1)).flatten(0, 1)  # [B*N*k, O] rows
    # A [rows, C, 1, 1] view: BatchNorm2d then normalizes over the B*N*k edges, as on [B, C, N, k].
    h = act(bn(edges[:, :, None, None])).flatten(1)
    conv2, bn2, act2 = _parts(second)
    z = act2(bn2(F.linear(h, conv2.weight.flatten(1))[:, :, None, None])).flatten(1)
    return z.view(b, n, k, -1).amax(dim=2).transpose(2, 1)


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
        return self.from_local(self.conv2(self.conv1(edges)).amax(dim=-1))

    def from_points(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The transform of points x [B, 3, N] (`forward` on their edge features, via `edge_block`)."""
        return self.from_local(edge_block(x, k, self.conv1, self.conv2))

    def from_local(self, x: torch.Tensor) -> torch.Tensor:
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
        t = self.transform_net.from_points(x, k)
        x = torch.bmm(x.transpose(2, 1), t).transpose(2, 1)
        x1 = edge_block(x, k, self.conv1, self.conv2)
        x2 = edge_block(x1, k, self.conv3, self.conv4)
        x3 = edge_block(x2, k, self.conv5)
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

    def export_form(self) -> PartSegInference:
        """The same weights in the inference form (eval BN folded, EdgeConv per point): what is exported."""
        return PartSegInference(self)


class PartSegInference(nn.Module):
    """`DGCNNPartSeg.forward` in the inference form: (points [B,N,3], one-hot [B,16]) -> [B, N, 50].

    Beyond the EdgeConv forms (models/inference.py): the head's first conv sees [global (1024+64)
    broadcast; local 192]; its weight splits the same way, so the global part is one [B, 1088] x
    [1088, 256] product per cloud instead of per point.
    """

    def __init__(self, model: DGCNNPartSeg) -> None:
        super().__init__()
        k = model.config.k
        tnet = model.transform_net
        self.t_edges = PointEdgeConvPair(tnet.conv1, tnet.conv2, k)
        self.t_conv3 = fold_conv_bn(tnet.conv3[0], tnet.conv3[1])
        self.t_mlp = fold_head(tnet.mlp)
        self.t_out = copy.deepcopy(tnet.transform)
        self.block1 = PointEdgeConvPair(model.conv1, model.conv2, k)
        self.block2 = PointEdgeConvPair(model.conv3, model.conv4, k)
        self.block3 = PointEdgeConv(model.conv5[0], model.conv5[1], k)
        self.conv6 = fold_conv_bn(model.conv6[0], model.conv6[1])
        self.conv7 = fold_conv_bn(model.conv7[0], model.conv7[1])
        head: Any = model.head  # conv blocks (conv, BN, activation), dropouts, the last Conv1d
        first = fold_conv_bn(head[0][0], head[0][1])
        n_global = first.in_features - 3 * 64  # the local features are x1, x2, x3 (64 each)
        self.head_global = linear(first.weight[:, :n_global], first.bias)
        self.head_local = linear(first.weight[:, n_global:], None)
        convs = [layer for layer in head[1:] if isinstance(layer, nn.Sequential)]
        self.head_mid = nn.ModuleList(fold_conv_bn(c[0], c[1]) for c in convs)
        last = head[-1]
        self.head_out = linear(last.weight.flatten(1), last.bias)

    def forward(self, points: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        t = self.t_edges(points)
        t = F.leaky_relu(self.t_conv3(t), NEGATIVE_SLOPE).amax(dim=1)
        t = self.t_out(self.t_mlp(t)).view(-1, 3, 3)
        x = torch.bmm(points, t)
        x1 = self.block1(x)
        x2 = self.block2(x1)
        x3 = self.block3(x2)
        local = torch.cat((x1, x2, x3), dim=-1)
        glob = F.leaky_relu(self.conv6(local), NEGATIVE_SLOPE).amax(dim=1)
        cat = F.leaky_relu(self.conv7(category), NEGATIVE_SLOPE)
        head_global = self.head_global(torch.cat((glob, cat), dim=-1)).unsqueeze(1)  # [B, 1, 256]
        h = F.leaky_relu(self.head_local(local) + head_global, NEGATIVE_SLOPE)
        for layer in self.head_mid:
            h = F.leaky_relu(layer(h), NEGATIVE_SLOPE)
        return self.head_out(h)
