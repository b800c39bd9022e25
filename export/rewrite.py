"""The exported (inference) form of the networks: eval-mode BN folded away, EdgeConv run per point.

Everything here is exact in eval mode; `tests/export/test_rewrite.py` proves it against the
training form (`edgeconv="edge"`) on real shapes. Layout is points-last, [B, N, C], so every 1x1
conv is one MatMul and the neighbour gather reads contiguous rows.

The EdgeConv derivation. The training form computes, per edge (i, j),
    y_ij = s * (W_a (x_j - x_i) + W_b x_i - mu) + beta      (1x1 conv, then eval BN: s = gamma/sigma)
         = P_j + Q_i + b,   P = s W_a x,  Q = s (W_b - W_a) x,  b = beta - s mu
and returns max_j LeakyReLU(y_ij). LeakyReLU(0.2) is increasing, so the max commutes with it:
max_j LReLU(P_j + Q_i + b) = LReLU(max_j P_j + Q_i + b). With s folded into P and Q the sign of
s needs no case: the max is taken over the already-scaled values. So a layer is two per-point
MatMuls (N rows, not N*k), one gather of P, one max over k, one add, one activation.

The part-seg blocks have a second per-edge conv after the first; there only the first conv can use
the per-point form (its activation feeds a conv, not a max), and the max moves to after the second
conv's affine part, before its activation.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_linear_bn_eval

NEGATIVE_SLOPE = 0.2


def knn(x: torch.Tensor, k: int) -> torch.Tensor:
    """x [B, N, C] -> indices [B, N, k], self included: matmul + topk with a constant k.

    The score is `crosspoint.models.dgcnn.knn`'s, term for term in the same order
    (2 <x_i, x_j> - |x_j|^2 - |x_i|^2), so near-ties round the same way in both forms.
    """
    inner = torch.matmul(x, x.transpose(2, 1))
    xx = torch.sum(x * x, dim=-1, keepdim=True)  # [B, N, 1]: |x_i|^2
    neg_dist = 2 * inner - xx.transpose(2, 1) - xx
    return neg_dist.topk(k=k, dim=-1)[1]


def gather_rows(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x [B, N, C], idx [B, N, k] -> [B, N, k, C] by one flat Gather (fastest form in ONNX Runtime)."""
    b, n, c = x.shape
    k = idx.shape[-1]
    base = torch.arange(b, device=x.device).view(-1, 1, 1) * n
    flat = (idx + base).reshape(-1)
    return x.reshape(b * n, c)[flat].view(b, n, k, c)


def _bn_affine(bn: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval BN as y = s x + t (float64 for the folding arithmetic)."""
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.double() - scale * bn.running_mean.double()
    return scale, shift


def _linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    out_dim, in_dim = weight.shape
    layer = nn.Linear(in_dim, out_dim, bias=bias is not None)
    with torch.no_grad():
        layer.weight.copy_(weight.float())
        if bias is not None:
            layer.bias.copy_(bias.float())
    return layer


def fold_conv_bn(conv: Any, bn: Any) -> nn.Linear:
    """A bias-free 1x1 conv + eval BN as one Linear over the channel (last) axis."""
    scale, shift = _bn_affine(bn)
    weight = conv.weight.double().flatten(1) * scale[:, None]
    bias = shift if conv.bias is None else shift + scale * conv.bias.double()
    return _linear(weight, bias)


def split_edge_conv(conv: Any, bn: Any) -> tuple[nn.Linear, nn.Linear]:
    """(neighbour P, centre Q with the bias): W[x_j - x_i; x_i] + BN = s W_a x_j + s (W_b - W_a) x_i + b."""
    scale, shift = _bn_affine(bn)
    wa, wb = conv.weight.double().flatten(1).chunk(2, dim=1)
    return _linear(wa * scale[:, None], None), _linear((wb - wa) * scale[:, None], shift)


class PointEdgeConv(nn.Module):
    """EdgeConv (conv, BN, LeakyReLU, max over k) in the per-point form, max before the activation."""

    def __init__(self, conv: Any, bn: Any, k: int) -> None:
        super().__init__()
        self.k = k
        self.neighbour, self.centre = split_edge_conv(conv, bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = knn(x, self.k)
        nearest = gather_rows(self.neighbour(x), idx).amax(dim=2)
        return F.leaky_relu(nearest + self.centre(x), NEGATIVE_SLOPE)


class PointEdgeConvPair(nn.Module):
    """Two convs on each edge (part-seg blocks): the first per point, the second per edge."""

    def __init__(self, first: Any, second: Any, k: int) -> None:
        super().__init__()
        self.k = k
        self.neighbour, self.centre = split_edge_conv(first[0], first[1])
        self.second = fold_conv_bn(second[0], second[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = knn(x, self.k)
        edges = gather_rows(self.neighbour(x), idx) + self.centre(x).unsqueeze(2)  # [B, N, k, C]
        edges = F.leaky_relu(edges, NEGATIVE_SLOPE)
        return F.leaky_relu(self.second(edges).amax(dim=2), NEGATIVE_SLOPE)


def fold_head(head: nn.Module) -> nn.Module:
    """A Linear/BN1d/activation/Dropout stack (projection, MLP classifier) with each BN folded into
    the Linear before it and dropout dropped; anything else is kept as is (eval-mode copy)."""
    if not isinstance(head, nn.Sequential):
        return copy.deepcopy(head).eval()
    layers: list[nn.Module] = []
    for layer in head:
        if isinstance(layer, nn.BatchNorm1d) and layers and isinstance(layers[-1], nn.Linear):
            layers[-1] = fuse_linear_bn_eval(layers[-1], layer)
        elif isinstance(layer, nn.Dropout):
            continue
        elif isinstance(layer, nn.ReLU):
            layers.append(nn.ReLU())  # not in-place: keeps traced graphs free of aliasing
        else:
            layers.append(copy.deepcopy(layer))
    return nn.Sequential(*layers).eval()


class DGCNNFeatures(nn.Module):
    """`DGCNN.forward_features` in the exported form: points [B, N, 3] -> [B, 2 * emb_dims]."""

    def __init__(self, model: Any) -> None:  # a registry model (duck-typed)
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


class PartSegInference(nn.Module):
    """`DGCNNPartSeg.forward` in the exported form: (points [B,N,3], one-hot [B,16]) -> [B, N, 50].

    Beyond the EdgeConv forms: the head's first conv sees [global (1024+64) broadcast; local 192];
    its weight splits the same way, so the global part is one [B, 1088] x [1088, 256] product per
    cloud instead of per point.
    """

    def __init__(self, model: Any) -> None:  # a registry model (duck-typed)
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
        first = fold_conv_bn(model.head[0][0], model.head[0][1])
        n_global = first.in_features - 3 * 64  # the local features are x1, x2, x3 (64 each)
        self.head_global = _linear(first.weight[:, :n_global], first.bias)
        self.head_local = _linear(first.weight[:, n_global:], None)
        convs = [layer for layer in model.head[1:] if isinstance(layer, nn.Sequential)]
        self.head_mid = nn.ModuleList(fold_conv_bn(c[0], c[1]) for c in convs)
        last = model.head[-1]
        self.head_out = _linear(last.weight.flatten(1), last.bias)

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
