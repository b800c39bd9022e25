"""One registry for every network: `create_model(name, **overrides)` builds it from a typed config."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from torch import nn

_REGISTRY: dict[str, tuple[Callable[[Any], nn.Module], type, dict[str, Any]]] = {}


def register_model(
    name: str, config_cls: type, **defaults: Any
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Register `cls(config)` under `name`; `defaults` override the config dataclass defaults."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = (cls, config_cls, defaults)
        return cls

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def model_config_class(name: str) -> type:
    return _lookup(name)[1]


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model; unknown config keys are an error, not silently ignored."""
    cls, config_cls, defaults = _lookup(name)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(overrides) - fields
    if unknown:
        raise TypeError(f"{name}: unknown config keys {sorted(unknown)}; known: {sorted(fields)}")
    config = config_cls(**{**defaults, **overrides})
    model = cls(config)
    model.model_name = name  # type: ignore[assignment]  # travels into checkpoints
    return model


def _lookup(name: str) -> tuple[Callable[[Any], nn.Module], type, dict[str, Any]]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {list_models()}") from None
