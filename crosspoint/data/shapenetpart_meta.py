"""ShapeNetPart's taxonomy: 16 categories, 50 parts, in the benchmark's own numbering.

Category order and synset ids are those of `synsetoffset2category.txt` in the ShapeNetPart release;
part offsets and counts are the `seg_classes` table of PointNet/PointNet++ (global part ids 0..49), the
numbering of the `_normal` release's 7th column and of every published mIoU.

Part names are not shipped with the benchmark (the files only hold ids). The per-category order here
follows `id2part2cat` in yangyangyang127/PointCLIP_V2 `zeroshot_seg/data.py` (commit 04779d35), shortened
to the common one-word names, and was checked against the 20 real shapes in
`../shared/data/shapenetpart_partial` (e.g. guitar 19 is the small part at the top of the neck, lamp 24
the flat disc at the bottom, table 48 the tall legs and 49 a small block or frame under the top).
Where that list says "leg or support" / "drawer" for Table, other write-ups say "leg support" / "leg";
the real shapes agree with the PointCLIP order, so that is the one kept.
"""

from __future__ import annotations

from operator import index as as_index
from typing import SupportsIndex

CATEGORY_NAMES: tuple[str, ...] = (
    "Airplane",
    "Bag",
    "Cap",
    "Car",
    "Chair",
    "Earphone",
    "Guitar",
    "Knife",
    "Lamp",
    "Laptop",
    "Motorbike",
    "Mug",
    "Pistol",
    "Rocket",
    "Skateboard",
    "Table",
)

SYNSET_IDS: tuple[str, ...] = (
    "02691156",
    "02773838",
    "02954340",
    "02958343",
    "03001627",
    "03261776",
    "03467517",
    "03624134",
    "03636649",
    "03642806",
    "03790512",
    "03797390",
    "03948459",
    "04099429",
    "04225987",
    "04379243",
)

CATEGORY_PARTS: dict[str, tuple[str, ...]] = {
    "Airplane": ("body", "wing", "tail", "engine"),
    "Bag": ("handle", "body"),
    "Cap": ("panels", "peak"),
    "Car": ("roof", "hood", "wheel", "body"),
    "Chair": ("back", "seat", "leg", "arm"),
    "Earphone": ("earphone", "headband", "data wire"),
    "Guitar": ("head", "neck", "body"),
    "Knife": ("blade", "handle"),
    "Lamp": ("base", "shade", "canopy", "tube"),
    "Laptop": ("keyboard", "screen"),
    "Motorbike": ("gas tank", "seat", "wheel", "handle", "light", "body"),
    "Mug": ("handle", "body"),
    "Pistol": ("barrel", "handle", "trigger and guard"),
    "Rocket": ("body", "fin", "nose"),
    "Skateboard": ("wheel", "deck", "belt for foot"),
    "Table": ("desktop", "leg or support", "drawer"),
}

NUM_CATEGORIES = len(CATEGORY_NAMES)
PART_COUNTS: tuple[int, ...] = tuple(len(CATEGORY_PARTS[name]) for name in CATEGORY_NAMES)
PART_OFFSETS: tuple[int, ...] = tuple(sum(PART_COUNTS[:i]) for i in range(NUM_CATEGORIES))
NUM_PARTS = sum(PART_COUNTS)

PART_NAMES: tuple[str, ...] = tuple(part for name in CATEGORY_NAMES for part in CATEGORY_PARTS[name])
"""The 50 part names in global id order (names repeat across categories: 'body', 'handle', 'wheel')."""

PART_CATEGORY: tuple[int, ...] = tuple(c for c in range(NUM_CATEGORIES) for _ in range(PART_COUNTS[c]))
"""For each global part id, the category it belongs to."""

_BY_NAME = {name.lower(): i for i, name in enumerate(CATEGORY_NAMES)}
_BY_SYNSET = {synset: i for i, synset in enumerate(SYNSET_IDS)}


def category_index(category: str | SupportsIndex) -> int:
    """Index 0..15 of a category given by name (any case), synset id, or index (numpy ints too)."""
    if isinstance(category, bool):
        raise TypeError("category must be a name, a synset id or an int, not bool")
    if not isinstance(category, str):
        index = as_index(category)
        if not 0 <= index < NUM_CATEGORIES:
            raise ValueError(f"category index {index} is outside 0..{NUM_CATEGORIES - 1}")
        return index
    key = category.strip()
    if key.lower() in _BY_NAME:
        return _BY_NAME[key.lower()]
    if key in _BY_SYNSET:
        return _BY_SYNSET[key]
    raise ValueError(f"unknown ShapeNetPart category {category!r}; known: {', '.join(CATEGORY_NAMES)}")


def part_range(category: str | SupportsIndex) -> range:
    """Global part ids of a category, e.g. `part_range("Chair") == range(12, 16)`."""
    c = category_index(category)
    return range(PART_OFFSETS[c], PART_OFFSETS[c] + PART_COUNTS[c])


def part_name(part_id: int) -> str:
    """'Chair/leg'-style name of a global part id, unique across the 50."""
    if not 0 <= part_id < NUM_PARTS:
        raise ValueError(f"part id {part_id} is outside 0..{NUM_PARTS - 1}")
    return f"{CATEGORY_NAMES[PART_CATEGORY[part_id]]}/{PART_NAMES[part_id]}"


__all__ = [
    "CATEGORY_NAMES",
    "CATEGORY_PARTS",
    "NUM_CATEGORIES",
    "NUM_PARTS",
    "PART_CATEGORY",
    "PART_COUNTS",
    "PART_NAMES",
    "PART_OFFSETS",
    "SYNSET_IDS",
    "category_index",
    "part_name",
    "part_range",
]
