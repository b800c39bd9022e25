"""CrossPoint networks behind one factory: `create_model(name, **overrides)`.

Every model keeps its typed config in `.config` (saved with the weights) and offers
`forward_features` (the representation) and `forward_head` (what sits on top of it).
"""

from __future__ import annotations

from torch import nn

from crosspoint.models import dgcnn, partseg, pointnet, resnet  # noqa: F401  (registration)
from crosspoint.models._registry import create_model, list_models, model_config_class, register_model


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["count_parameters", "create_model", "list_models", "model_config_class", "register_model"]
