"""Heads shared by the backbones: the CrossPoint projection head and the reference MLP classifier."""

from __future__ import annotations

from torch import nn


def projection_head(in_dim: int, hidden_dim: int, out_dim: int, bias: bool = True) -> nn.Sequential:
    """Linear -> BN -> ReLU -> Linear: the `inv_head` that feeds the NT-Xent losses."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim, bias=bias),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim, bias=bias),
    )


def mlp_classifier(in_dim: int, num_classes: int, dropout: float) -> nn.Sequential:
    """The reference DGCNN classifier (2048 -> 512 -> 256 -> C), used for supervised fine-tuning."""
    return nn.Sequential(
        nn.Linear(in_dim, 512, bias=False),
        nn.BatchNorm1d(512),
        nn.LeakyReLU(0.2),
        nn.Dropout(dropout),
        nn.Linear(512, 256),
        nn.BatchNorm1d(256),
        nn.LeakyReLU(0.2),
        nn.Dropout(dropout),
        nn.Linear(256, num_classes),
    )


def class_head(kind: str, in_dim: int, num_classes: int, dropout: float) -> nn.Module:
    """`linear`: one layer, what a linear SVM / logistic regression on frozen features becomes."""
    if num_classes <= 0:
        return nn.Identity()
    if kind == "linear":
        return nn.Linear(in_dim, num_classes)
    if kind == "mlp":
        return mlp_classifier(in_dim, num_classes, dropout)
    raise ValueError(f"unknown head {kind!r}; expected 'linear' or 'mlp'")
