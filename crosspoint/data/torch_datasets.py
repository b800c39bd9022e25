"""torch `Dataset`s over the in-memory sets: plain points, part labels, and CrossPoint pretraining items.

Randomness: item `i` of epoch `e` draws from `numpy.random.default_rng([seed, e, i])`, so an epoch is
reproducible whatever the number of DataLoader workers or their order. Call `set_epoch(e)` before
iterating each epoch (as with `DistributedSampler`); with `persistent_workers=True` the workers keep the
epoch they were created with.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from crosspoint.augment import augment_image, augment_point_view, quarter_turn, scale_translate
from crosspoint.data.sets import PartSet, PointCloudSet
from crosspoint.render import ViewStore


class _EpochSeeded:
    seed: int
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])


class PointDataset(_EpochSeeded, Dataset):
    """`{"points": float32 [N, 3], "label": int64}`; `augment=True` adds the DGCNN classification
    augmentation (anisotropic scale + shift, `augment.scale_translate`) and shuffles the point order;
    `turns=True` first turns each cloud to one of its 8 axis-aligned headings (`augment.quarter_turn`)."""

    def __init__(
        self, data: PointCloudSet, augment: bool = False, seed: int = 0, turns: bool = False
    ) -> None:
        self.data, self.augment, self.seed, self.turns = data, augment, int(seed), turns

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        points = self.data.points[index]
        if self.augment:
            rng = self.rng(index)
            points = points[rng.permutation(len(points))]
            points = scale_translate(quarter_turn(points, rng) if self.turns else points, rng)
        return {
            "points": torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
            "label": torch.tensor(int(self.data.labels[index]), dtype=torch.int64),
        }


class PartDataset(_EpochSeeded, Dataset):
    """`{"points": float32 [N, 3], "part_labels": int64 [N], "category": int64}`; `augment=True`
    shuffles the point order, the only augmentation of the reference part-segmentation loader."""

    def __init__(self, data: PartSet, augment: bool = False, seed: int = 0) -> None:
        self.data, self.augment, self.seed = data, augment, int(seed)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        points, labels = self.data.points[index], self.data.part_labels[index]
        if self.augment:
            order = self.rng(index).permutation(len(points))
            points, labels = points[order], labels[order]
        return {
            "points": torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
            "part_labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
            "category": torch.tensor(int(self.data.categories[index]), dtype=torch.int64),
        }


class PretrainDataset(_EpochSeeded, Dataset):
    """CrossPoint pretraining items: two augmented point views and one augmented rendered image.

    `{"view1": float32 [n, 3], "view2": float32 [n, 3], "image": float32 [3, H, W], "label": int64}`.
    As in the reference (`datasets/data.py`, `ShapeNetRender`), both views are independent draws of the
    same augmentation of the same cloud, and the image is one view chosen at random per item per epoch.
    `num_points` below the set's N takes the first `num_points` points: `geometry.prepare` returns them in
    farthest-point order, so the prefix is itself an FPS sample. The label is for probes only.
    """

    def __init__(
        self,
        data: PointCloudSet,
        views: ViewStore,
        num_points: int = 1024,
        image_size: int = 224,
        seed: int = 0,
    ) -> None:
        if num_points > data.num_points:
            raise ValueError(f"num_points={num_points} but the set holds {data.num_points} points per cloud")
        self.data, self.views = data, views
        self.num_points, self.image_size, self.seed = int(num_points), int(image_size), int(seed)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = self.rng(index)
        cloud = self.data.points[index]
        points = cloud[: self.num_points]
        view1 = augment_point_view(points, rng)
        view2 = augment_point_view(points, rng)
        # The store is keyed by the full prepared cloud, the same array `ViewStore.prefill(set)` saw.
        images = self.views.get(self.data.shape_ids[index], cloud)
        image = augment_image(images[rng.integers(len(images))], rng, size=self.image_size)
        return {
            "view1": torch.from_numpy(view1),
            "view2": torch.from_numpy(view2),
            "image": image,
            "label": torch.tensor(int(self.data.labels[index]), dtype=torch.int64),
        }
