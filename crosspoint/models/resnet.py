"""A ResNet image encoder written here (torchvision does not import with our torch build).

Same topology as torchvision's ResNet-18/34/50 without the fc layer: the trunk gives the 2048-d
(ResNet-50) or 512-d (ResNet-18/34) feature, and the CrossPoint image head projects it to 256.
The reference trains it from scratch, so there are no pretrained weights to match.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from crosspoint.models._registry import register_model
from crosspoint.models.heads import projection_head

_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


@dataclass
class ResNetConfig:
    depth: int = 50
    width: int = 64
    proj_dim: int = 256
    proj_hidden: int = 512


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_dim: int, width: int, stride: int) -> None:
        super().__init__()
        out_dim = width * self.expansion
        self.conv1 = nn.Conv2d(in_dim, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_dim, out_dim, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.downsample(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_dim: int, width: int, stride: int) -> None:
        super().__init__()
        out_dim = width * self.expansion
        self.conv1 = nn.Conv2d(in_dim, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        # Stride on the 3x3 conv (ResNet v1.5), as torchvision does.
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_dim, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_dim)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_dim, out_dim, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.downsample(x))


def _shortcut(in_dim: int, out_dim: int, stride: int) -> nn.Module:
    if stride == 1 and in_dim == out_dim:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_dim, out_dim, 1, stride, bias=False), nn.BatchNorm2d(out_dim))


class ResNetImage(nn.Module):
    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        if config.depth not in _LAYERS:
            raise ValueError(f"ResNet depth must be one of {sorted(_LAYERS)}, not {config.depth}")
        self.config = config
        block: type[BasicBlock] | type[Bottleneck] = Bottleneck if config.depth >= 50 else BasicBlock
        w = config.width
        self.stem = nn.Sequential(
            nn.Conv2d(3, w, 7, 2, 3, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages: list[nn.Module] = []
        in_dim = w
        for i, blocks in enumerate(_LAYERS[config.depth]):
            width = w * 2**i
            layers: list[nn.Module] = []
            for j in range(blocks):
                layers.append(block(in_dim, width, 2 if (j == 0 and i > 0) else 1))
                in_dim = width * block.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.num_features = in_dim
        self.projection = projection_head(in_dim, config.proj_hidden, config.proj_dim, bias=False)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """images [B, 3, H, W] -> globally average-pooled trunk feature [B, D]."""
        return self.stages(self.stem(images)).mean(dim=(2, 3))

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return features if pre_logits else self.project(features)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.projection(features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))


register_model("resnet50_image", ResNetConfig, depth=50)(ResNetImage)
register_model("resnet18_image", ResNetConfig, depth=18)(ResNetImage)
