"""Procedural part-labelled shapes in ShapeNetPart's 16 categories and 50-part numbering.

Only 20 real part-labelled shapes are available here, so the part-segmentation model learns from these
instead (and from the real ones mixed in). Each category has a generator that unions simple primitives
(boxes, tubes, lofts, revolutions) with randomized proportions, part counts and styles, then applies a
small smooth deformation. Shapes come out in the frame of the real data: y up, each category facing the
way ShapeNetPart's do (airplanes, cars, motorbikes, rockets, pistols, skateboards along x with the front
at +x; chairs and laptops facing +x; mugs' handles at +x; guitars and knives standing along y), centred on
their bounding box with a bounding-box diagonal of 1, like the released point files.

    from crosspoint.data.procedural import generate, sample_points, ProceduralPartDataset
    shape = generate("Chair", seed=3)              # LabeledMesh: trimesh + global part id per face
    points, labels = sample_points(shape, 2048, seed=3)
    item = ProceduralPartDataset(10_000)[7]        # {"points", "part_labels", "category", "shape_seed"}

Pictures: `python -m crosspoint.data.procedural.preview` writes docs/images/procedural_grid.png and
docs/images/procedural_vs_real.png.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import SupportsIndex, TypedDict

import numpy as np
import trimesh

from crosspoint.data.procedural import _aircraft, _furniture, _handheld, _household, _vehicles
from crosspoint.data.procedural._geometry import PartBuilder, deform
from crosspoint.data.shapenetpart_meta import CATEGORY_NAMES, PART_COUNTS, PART_OFFSETS, category_index

# category index -> (generator returning category-local labels, deformation strength)
_GENERATORS: dict[int, tuple[Callable[[np.random.Generator], PartBuilder], float]] = {
    0: (_aircraft.airplane, 0.5),
    1: (_household.bag, 1.0),
    2: (_household.cap, 0.8),
    3: (_vehicles.car, 0.6),
    4: (_furniture.chair, 0.7),
    5: (_handheld.earphone, 0.8),
    6: (_handheld.guitar, 0.5),
    7: (_handheld.knife, 0.4),
    8: (_furniture.lamp, 0.6),
    9: (_household.laptop, 0.4),
    10: (_vehicles.motorbike, 0.5),
    11: (_household.mug, 0.7),
    12: (_handheld.pistol, 0.5),
    13: (_aircraft.rocket, 0.5),
    14: (_vehicles.skateboard, 0.4),
    15: (_furniture.table, 0.6),
}


@dataclass(frozen=True)
class LabeledMesh:
    """A mesh with one global ShapeNetPart part id (0..49) per face."""

    mesh: trimesh.Trimesh
    face_labels: np.ndarray  # int64 [F]
    category: int

    @property
    def category_name(self) -> str:
        return CATEGORY_NAMES[self.category]


def _rng(category: int, seed: int) -> np.random.Generator:
    # the category is part of the stream, so seed k of two categories are unrelated shapes
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, category, 0x5EED]))


def normalize(vertices: np.ndarray) -> np.ndarray:
    """Centre on the bounding box and scale its diagonal to 1, as ShapeNetPart's files are."""
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    return (vertices - (lo + hi) / 2) / float(np.linalg.norm(hi - lo))


def generate(category: str | SupportsIndex, seed: int) -> LabeledMesh:
    """A random shape of the category; the same (category, seed) always gives the same mesh and labels."""
    c = category_index(category)
    build, strength = _GENERATORS[c]
    rng = _rng(c, seed)
    vertices, faces, local = build(rng).arrays()
    if local.min() < 0 or local.max() >= PART_COUNTS[c]:
        raise AssertionError(f"{CATEGORY_NAMES[c]} generator produced part {local.max()}")
    vertices = normalize(deform(vertices, rng, strength))
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    return LabeledMesh(mesh=mesh, face_labels=local + PART_OFFSETS[c], category=c)


def sample_points(shape: LabeledMesh, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted uniform surface samples (float32 [n, 3]) and their faces' part ids (int64 [n])."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) % 2**63, 0x5A3B]))
    tri = np.asarray(shape.mesh.vertices, dtype=np.float64)[np.asarray(shape.mesh.faces)]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    cdf = np.cumsum(area)
    face = np.searchsorted(cdf, rng.random(n) * cdf[-1], side="right")
    face = np.minimum(face, len(area) - 1)
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    w = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    points = np.einsum("nk,nkd->nd", w, tri[face])
    return points.astype(np.float32), shape.face_labels[face].astype(np.int64)


class PartSample(TypedDict):
    points: np.ndarray  # float32 [N, 3]
    part_labels: np.ndarray  # int64 [N], global part ids
    category: int
    shape_seed: int  # generate(category, shape_seed) rebuilds the mesh


class ProceduralPartDataset:
    """Indexable set of procedural shapes; item i depends only on (seed, i).

    Categories cycle with i (balanced); pass `categories` (names or indices, repeats allowed to weight
    them) to restrict or reweight. Items are dicts shaped like a part-segmentation sample:
    `points` float32 [N, 3], `part_labels` int64 [N] (global ids), `category` int, `shape_seed` int.
    """

    def __init__(
        self,
        num_shapes: int,
        num_points: int = 2048,
        seed: int = 0,
        categories: Sequence[str | SupportsIndex] | None = None,
    ) -> None:
        if num_shapes < 0 or num_points <= 0:
            raise ValueError("num_shapes must be >= 0 and num_points > 0")
        self.num_shapes = int(num_shapes)
        self.num_points = int(num_points)
        self.seed = int(seed)
        cats = range(len(CATEGORY_NAMES)) if categories is None else categories
        self.categories = [category_index(c) for c in cats]
        if not self.categories:
            raise ValueError("categories must not be empty")

    def __len__(self) -> int:
        return self.num_shapes

    def shape(self, index: int) -> LabeledMesh:
        """The mesh behind item `index`."""
        category, shape_seed, _ = self._plan(index)
        return generate(category, shape_seed)

    def _plan(self, index: int) -> tuple[int, int, int]:
        if index < 0:
            index += self.num_shapes
        if not 0 <= index < self.num_shapes:
            raise IndexError(f"index {index} out of range for {self.num_shapes} shapes")
        shape_seed, sample_seed = np.random.SeedSequence([self.seed % 2**63, index]).generate_state(2)
        return self.categories[index % len(self.categories)], int(shape_seed), int(sample_seed)

    def __getitem__(self, index: int) -> PartSample:
        category, shape_seed, sample_seed = self._plan(index)
        points, labels = sample_points(generate(category, shape_seed), self.num_points, sample_seed)
        return {"points": points, "part_labels": labels, "category": category, "shape_seed": shape_seed}


def render_grid(path: str = "docs/images/procedural_grid.png", per_category: int = 4, seed: int = 0) -> str:
    """Save a PNG grid (rows: categories, columns: examples, points coloured by part); returns its path."""
    from crosspoint.data.procedural.preview import render_grid as _render

    return str(_render(path, per_category=per_category, seed=seed))


__all__ = [
    "LabeledMesh",
    "PartSample",
    "ProceduralPartDataset",
    "generate",
    "normalize",
    "render_grid",
    "sample_points",
]
