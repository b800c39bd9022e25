"""The networks' inference (exported) forms: eval-mode BN folded away, EdgeConv run per point.

Each model builds its own form (`model.export_form()`, in its own file) from the pieces here; export/
only traces it, writes the files and checks parity. Everything here is exact in eval mode;
`tests/export/test_rewrite.py` proves it against the training form (`edgeconv="edge"`) on real
shapes. Layout is points-last, [B, N, C], so every 1x1 conv is one MatMul and the neighbour gather
reads contiguous rows.

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

from crosspoint.models._edgeconv import gather_rows, knn

NEGATIVE_SLOPE = 0.2


def _bn_affine(bn: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval BN as y = s x + t (float64 for the folding arithmetic)."""
    assert bn.running_var is not None and bn.running_mean is not None
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.double() - scale * bn.running_mean.double()
    return scale, shift


def linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """A float32 Linear with these (float64) weights."""
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
    return linear(weight, bias)


def split_edge_conv(conv: Any, bn: Any) -> tuple[nn.Linear, nn.Linear]:
    """(neighbour P, centre Q with the bias): W[x_j - x_i; x_i] + BN = s W_a x_j + s (W_b - W_a) x_i + b."""
    scale, shift = _bn_affine(bn)
    wa, wb = conv.weight.double().flatten(1).chunk(2, dim=1)
    return linear(wa * scale[:, None], None), linear((wb - wa) * scale[:, None], shift)


class PointEdgeConv(nn.Module):
    """EdgeConv (conv, BN, LeakyReLU, max over k) in the per-point form, max before the activation."""

    def __init__(self, conv: Any, bn: Any, k: int) -> None:
        super().__init__()
        self.k = k
        self.neighbour, self.centre = split_edge_conv(conv, bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = knn(x, self.k, points_last=True)
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
        idx = knn(x, self.k, points_last=True)
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


class ForwardFeatures(nn.Module):
    """`model.forward_features` as a module (a backbone whose trained form is its inference form)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(points)  # type: ignore[operator]


class PointBackboneForm(nn.Module):
    """A point backbone's inference form in three parts, so a served graph keeps only what it outputs:
    `features` (points [B, N, 3] -> embedding), `projection` and `head` (BN folded, no dropout)."""

    def __init__(self, features: nn.Module, projection: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.features, self.projection, self.head = features, projection, head

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(points))
