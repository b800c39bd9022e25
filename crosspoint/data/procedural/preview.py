"""Picture grids of procedural (and real) part-labelled shapes, coloured by part.

    .venv/bin/python -m crosspoint.data.procedural.preview   # writes docs/images/procedural_*.png

A small orthographic point splatter with a z-buffer in numpy; Pillow (already installed with the
serving set) only writes the PNG and the text, so the preview needs no plotting library.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from crosspoint.data.shapenetpart_meta import CATEGORY_NAMES, CATEGORY_PARTS, PART_CATEGORY, PART_OFFSETS

# category-local part index -> colour (tab10-like, readable on white)
PALETTE = np.array(
    [[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75]],
    dtype=np.float64,
)


def real_data_npz() -> Path:
    """The 20 real shapes in the shared data folder (`$CROSSPOINT_SHARED_DATA` overrides it)."""
    from crosspoint.data.prepared import shared_data_dir

    return shared_data_dir() / "shapenetpart_partial" / "shapenetpart_partial_2048.npz"


def splat(
    points: np.ndarray,
    labels: np.ndarray,
    size: int = 180,
    azimuth: float = -35.0,
    elevation: float = 25.0,
    half_extent: float = 0.55,
) -> np.ndarray:
    """RGB image [size, size, 3] of points seen from the front-right, above; labels are global ids."""
    az, el = np.radians(azimuth), np.radians(elevation)
    ry = np.array([[np.cos(az), 0, np.sin(az)], [0, 1, 0], [-np.sin(az), 0, np.cos(az)]])
    rx = np.array([[1, 0, 0], [0, np.cos(el), -np.sin(el)], [0, np.sin(el), np.cos(el)]])
    p = points.astype(np.float64) @ (rx @ ry).T
    scale = (size - 1) / (2 * half_extent)
    col = np.round((p[:, 0] + half_extent) * scale).astype(np.int64)
    row = np.round((half_extent - p[:, 1]) * scale).astype(np.int64)
    depth = p[:, 2]  # larger is nearer the viewer
    local = labels - np.asarray(PART_OFFSETS)[np.asarray(PART_CATEGORY)[labels]]
    shade = 0.55 + 0.45 * (depth - depth.min()) / max(float(np.ptp(depth)), 1e-6)
    colour = PALETTE[local % len(PALETTE)] * shade[:, None]
    # 2x2 splats, nearest point wins each pixel
    offs = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    rr = (row[:, None] + offs[None, :, 0]).ravel()
    cc = (col[:, None] + offs[None, :, 1]).ravel()
    dd = np.repeat(depth, len(offs))
    cl = np.repeat(colour, len(offs), axis=0)
    ok = (rr >= 0) & (rr < size) & (cc >= 0) & (cc < size)
    rr, cc, dd, cl = rr[ok], cc[ok], dd[ok], cl[ok]
    pix = rr * size + cc
    order = np.lexsort((-dd, pix))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pix[order][1:] != pix[order][:-1]
    win = order[first]
    img = np.full((size * size, 3), 255.0)
    img[pix[win]] = cl[win]
    return img.reshape(size, size, 3).astype(np.uint8)


def _label_cell(category: int, width: int, height: int, note: str = "") -> np.ndarray:
    from PIL import Image, ImageDraw

    cell = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(cell)
    draw.text((6, 8), CATEGORY_NAMES[category] + note, fill=(0, 0, 0))
    for i, name in enumerate(CATEGORY_PARTS[CATEGORY_NAMES[category]]):
        colour = tuple(int(c) for c in PALETTE[i % len(PALETTE)])
        draw.rectangle((8, 32 + 16 * i, 18, 42 + 16 * i), fill=colour)
        draw.text((24, 31 + 16 * i), f"{PART_OFFSETS[category] + i} {name}", fill=(0, 0, 0))
    return np.asarray(cell)


def _save(rows: list[list[np.ndarray]], path: str | Path, title: str) -> Path:
    from PIL import Image, ImageDraw

    blocks = [np.concatenate(r, axis=1) for r in rows]
    width = max(b.shape[1] for b in blocks)
    blocks = [np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in blocks]
    body = np.concatenate(blocks, axis=0)
    head = Image.new("RGB", (width, 24), "white")
    ImageDraw.Draw(head).text((6, 6), title, fill=(0, 0, 0))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([np.asarray(head), body], axis=0)).save(out, optimize=True)
    return out


def render_grid(
    path: str | Path = "docs/images/procedural_grid.png",
    per_category: int = 4,
    seed: int = 0,
    categories: Sequence[int] | None = None,
    num_points: int = 2048,
    size: int = 180,
) -> Path:
    """One PNG: a row per category, `per_category` procedural examples (seeds seed, seed+1, ...)."""
    from crosspoint.data.procedural import generate, sample_points

    rows = []
    for c in categories if categories is not None else range(len(CATEGORY_NAMES)):
        row = [_label_cell(c, 150, size)]
        for k in range(per_category):
            shape = generate(c, seed + k)
            pts, lab = sample_points(shape, num_points, seed + k)
            row.append(splat(pts, lab, size))
        rows.append(row)
    title = (
        f"procedural ShapeNetPart shapes, {num_points} points each, seeds {seed}..{seed + per_category - 1}"
    )
    return _save(rows, path, title)


def render_vs_real(
    path: str | Path = "docs/images/procedural_vs_real.png",
    real_npz: str | Path | None = None,
    per_category: int = 3,
    seed: int = 0,
    size: int = 180,
) -> Path:
    """Each category's real shapes (left, up to 3) next to procedural ones (right), same style."""
    from crosspoint.data.procedural import generate, sample_points

    data = np.load(Path(real_npz) if real_npz else real_data_npz())
    real_pts = data["points"].astype(np.float32)
    real_lab = data["part_labels"].astype(np.int64)
    real_cat = data["category"].astype(np.int64)
    blank = np.full((size, size, 3), 255, dtype=np.uint8)
    gap = np.full((size, 12, 3), 200, dtype=np.uint8)
    rows = []
    for c in range(len(CATEGORY_NAMES)):
        idx = np.flatnonzero(real_cat == c)[:3]
        real = [splat(real_pts[i], real_lab[i], size) for i in idx]
        real += [blank] * (3 - len(real))
        fake = []
        for k in range(per_category):
            shape = generate(c, seed + k)
            pts, lab = sample_points(shape, 2048, seed + k)
            fake.append(splat(pts, lab, size))
        rows.append([_label_cell(c, 150, size), *real, gap, *fake])
    return _save(rows, path, "left: the real ShapeNetPart shapes we have (2048 points); right: procedural")


if __name__ == "__main__":
    print(render_grid())
    print(render_vs_real())
