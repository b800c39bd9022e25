"""CrossPoint's training augmentations: one point-cloud view, one rendered image.

Both follow the reference code, MohamedAfham/CrossPoint:
- points: `datasets/data.py` (`trans_1` / `trans_2`) built from `datasets/data_utils.py`
  (`PointcloudNormalize`, `PointcloudScale(lo=0.5, hi=2)`, `PointcloudRotate` about y,
  `PointcloudTranslate(0.5)`, `PointcloudJitter(std=0.01, clip=0.05)`, `PointcloudRandomInputDropout(0.875)`);
- images: `train_crosspoint.py` (`Resize((224, 224))`, `ColorJitter(brightness=0.4, contrast=0.4,
  saturation=0.4)`, `RandomHorizontalFlip()`, `ToTensor()`, ImageNet `Normalize`). The reference has no
  RandomResizedCrop; neither do we.

Randomness comes only from the `numpy.random.Generator` passed in, so a dataset that seeds one generator
per (seed, epoch, item) is reproducible whatever the number of DataLoader workers.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from crosspoint.geometry import normalize_unit_sphere

SCALE_RANGE = (0.5, 2.0)
TRANSLATE_RANGE = 0.5
JITTER_STD = 0.01
JITTER_CLIP = 0.05
MAX_DROPOUT_RATIO = 0.875

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
COLOR_JITTER = 0.4  # brightness, contrast and saturation factors are drawn from U[1 - 0.4, 1 + 0.4]
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale


def rotation_about_y(angle: float) -> np.ndarray:
    """3x3 rotation by `angle` radians about +y (the up axis of the model frame)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def augment_point_view(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One augmented view of a cloud `[N, 3]`, in the reference order; returns float32 `[N, 3]`.

    normalize -> scale U[0.5, 2] -> rotate about y U[0, 2pi) -> translate U[-0.5, 0.5] x extent per axis
    -> jitter N(0, 0.01) clipped to 0.05 -> drop a ratio U[0, 0.875] of points (replaced by the first point).
    """
    pts, _, _ = normalize_unit_sphere(np.asarray(points, dtype=np.float64))
    pts = pts * rng.uniform(*SCALE_RANGE)
    pts = pts @ rotation_about_y(rng.uniform(0.0, 2.0 * np.pi)).T
    # The reference scales the translation by the (already scaled) bounding-box extent of the cloud.
    extent = pts.max(axis=0) - pts.min(axis=0)
    pts = pts + rng.uniform(-TRANSLATE_RANGE, TRANSLATE_RANGE, size=3) * extent
    pts = pts + np.clip(rng.normal(0.0, JITTER_STD, size=pts.shape), -JITTER_CLIP, JITTER_CLIP)
    # Dropout keeps N fixed (batching needs it) by overwriting dropped points with point 0, as the reference.
    ratio = rng.uniform(0.0, MAX_DROPOUT_RATIO)
    drop = rng.random(len(pts)) <= ratio
    pts[drop] = pts[0]
    return pts.astype(np.float32)


def quarter_turn(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One of the 8 headings an axis-aligned upload can have once its up axis is right: a quarter turn
    about +y (0-3) and a mirror of x with probability 1/2. These are what `up_axis=auto` leaves open, so a
    classifier trained under them answers the same for every signed axis permutation it picks up."""
    turn = rotation_about_y(0.5 * np.pi * rng.integers(4)).round()
    if rng.random() < 0.5:
        turn = turn * np.array([-1.0, 1.0, 1.0])  # mirror x after the turn
    return (np.asarray(points, dtype=np.float64) @ turn.T).astype(np.float32)


def scale_translate(points: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Classification-training augmentation of the DGCNN code CrossPoint builds on (`translate_pointcloud`
    in `datasets/shapenet_part.py`): anisotropic scale U[2/3, 3/2] and shift U[-0.2, 0.2] per axis."""
    scale = rng.uniform(2.0 / 3.0, 3.0 / 2.0, size=3)
    shift = rng.uniform(-0.2, 0.2, size=3)
    return (np.asarray(points, dtype=np.float64) * scale + shift).astype(np.float32)


def _grayscale(img: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_GRAY_WEIGHTS, dtype=img.dtype).view(3, 1, 1)
    return (img * w).sum(dim=0, keepdim=True)


def _blend(img: torch.Tensor, other: torch.Tensor, factor: float) -> torch.Tensor:
    return (factor * img + (1.0 - factor) * other).clamp(0.0, 1.0)


def color_jitter(img: torch.Tensor, rng: np.random.Generator, strength: float = COLOR_JITTER) -> torch.Tensor:
    """torchvision `ColorJitter(b, c, s)` on a float `[3, H, W]` image in [0, 1]: same factors, random order."""
    factors = rng.uniform(1.0 - strength, 1.0 + strength, size=3)
    for op in rng.permutation(3):
        f = float(factors[op])
        if op == 0:  # brightness: blend with black
            img = _blend(img, torch.zeros_like(img), f)
        elif op == 1:  # contrast: blend with the mean grey level of the whole image
            img = _blend(img, _grayscale(img).mean(), f)
        else:  # saturation: blend with the grey version of the image
            img = _blend(img, _grayscale(img), f)
    return img


def image_to_tensor(image: np.ndarray | torch.Tensor, size: int | None = None) -> torch.Tensor:
    """uint8 `[H, W, 3]` (or float `[3, H, W]` in [0, 1]) -> float32 `[3, size, size]` in [0, 1]."""
    img = torch.as_tensor(image)
    if img.dtype == torch.uint8:
        img = img.permute(2, 0, 1).float() / 255.0
    img = img.float()
    if size is not None and tuple(img.shape[-2:]) != (size, size):
        img = F.interpolate(
            img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )[0]
        img = img.clamp(0.0, 1.0)
    return img


def normalize_image(img: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalization of a float `[3, H, W]` image in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (img - mean) / std


def augment_image(
    image: np.ndarray | torch.Tensor, rng: np.random.Generator, size: int | None = 224
) -> torch.Tensor:
    """Reference image transform: resize -> colour jitter -> horizontal flip (p=0.5) -> ImageNet normalize.

    `image` is a rendered view, uint8 `[H, W, 3]`; returns float32 `[3, size, size]`.
    """
    img = color_jitter(image_to_tensor(image, size), rng)
    if rng.random() < 0.5:
        img = img.flip(-1)
    return normalize_image(img).contiguous()


__all__ = [
    "augment_image",
    "augment_point_view",
    "color_jitter",
    "image_to_tensor",
    "normalize_image",
    "rotation_about_y",
    "scale_translate",
]
