"""Procedural part-labelled shapes: taxonomy, determinism, label ranges, part coverage, frame and scale.

The frame checks compare against the 20 real ShapeNetPart shapes in ../shared/data (skipped when absent).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import trimesh

from crosspoint.data.procedural import LabeledMesh, ProceduralPartDataset, generate, sample_points
from crosspoint.data.procedural.preview import real_data_npz, render_grid
from crosspoint.data.shapenetpart_meta import (
    CATEGORY_NAMES,
    CATEGORY_PARTS,
    NUM_CATEGORIES,
    NUM_PARTS,
    PART_COUNTS,
    PART_NAMES,
    PART_OFFSETS,
    SYNSET_IDS,
    category_index,
    part_range,
)

CATEGORIES = list(range(NUM_CATEGORIES))
SEEDS = range(20)


@pytest.fixture(scope="module")
def real() -> dict[str, np.ndarray]:
    path = real_data_npz()
    if not path.exists():
        pytest.skip(f"real ShapeNetPart shapes not found at {path} (set CROSSPOINT_SHARED_DATA)")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def samples() -> dict[int, list[tuple[np.ndarray, np.ndarray]]]:
    """1024 points of seeds 0..19 for every category, shared by the statistical tests."""
    out = {}
    for c in CATEGORIES:
        out[c] = [sample_points(generate(c, s), 1024, s) for s in SEEDS]
    return out


# --- taxonomy ---------------------------------------------------------------------------------------


def test_taxonomy_numbering() -> None:
    assert NUM_CATEGORIES == 16 and NUM_PARTS == 50 and len(PART_NAMES) == 50
    assert PART_OFFSETS == (0, 4, 6, 8, 12, 16, 19, 22, 24, 28, 30, 36, 38, 41, 44, 47)
    assert PART_COUNTS == (4, 2, 2, 4, 4, 3, 3, 2, 4, 2, 6, 2, 3, 3, 3, 3)
    assert part_range("Chair") == range(12, 16)
    assert part_range(15) == range(47, 50)
    assert [PART_NAMES[i] for i in part_range("Airplane")] == ["body", "wing", "tail", "engine"]
    assert PART_NAMES[19] == "head" and PART_NAMES[24] == "base" and PART_NAMES[47] == "desktop"
    assert category_index("chair") == category_index("03001627") == category_index(np.int64(4)) == 4
    for bad in ("Sofa", 16, -1):
        with pytest.raises(ValueError):
            category_index(bad)


def test_taxonomy_matches_the_real_files(real: dict[str, np.ndarray]) -> None:
    assert tuple(str(n) for n in real["category_names"]) == CATEGORY_NAMES
    assert tuple(str(s) for s in real["synset_ids"]) == SYNSET_IDS
    assert tuple(int(o) for o in real["part_offset"]) == PART_OFFSETS
    assert tuple(int(c) for c in real["part_count"]) == PART_COUNTS
    listing = real_data_npz().parent / "synsetoffset2category.txt"
    rows = [line.split() for line in listing.read_text().splitlines() if line.strip()]
    assert [(name, synset) for name, synset in rows] == list(zip(CATEGORY_NAMES, SYNSET_IDS, strict=True))


# --- generation ------------------------------------------------------------------------------------


@pytest.mark.parametrize("category", CATEGORIES, ids=CATEGORY_NAMES)
def test_every_category_generates_labels_in_its_range(category: int) -> None:
    allowed = part_range(category)
    for seed in range(5):
        shape = generate(CATEGORY_NAMES[category], seed)
        assert isinstance(shape.mesh, trimesh.Trimesh) and shape.category == category
        assert shape.face_labels.dtype == np.int64 and shape.face_labels.shape == (len(shape.mesh.faces),)
        assert allowed.start <= shape.face_labels.min() and shape.face_labels.max() < allowed.stop
        v = np.asarray(shape.mesh.vertices)
        assert np.isfinite(v).all()
        lo, hi = v.min(0), v.max(0)
        # normalised like ShapeNetPart's files: bounding box centred, diagonal 1
        assert np.allclose((lo + hi) / 2, 0, atol=1e-9)
        assert np.linalg.norm(hi - lo) == pytest.approx(1.0)


@pytest.mark.parametrize("category", CATEGORIES, ids=CATEGORY_NAMES)
def test_same_seed_same_shape_other_seed_other_shape(category: int) -> None:
    a, b, c = generate(category, 7), generate(category, 7), generate(category, 8)
    assert np.array_equal(a.mesh.vertices, b.mesh.vertices)
    assert np.array_equal(a.mesh.faces, b.mesh.faces)
    assert np.array_equal(a.face_labels, b.face_labels)
    assert a.mesh.vertices.shape != c.mesh.vertices.shape or not np.allclose(a.mesh.vertices, c.mesh.vertices)


def test_seed_streams_differ_between_categories() -> None:
    a, b = generate("Chair", 0), generate("Table", 0)
    assert a.mesh.vertices.shape != b.mesh.vertices.shape or not np.allclose(a.mesh.vertices, b.mesh.vertices)


@pytest.mark.parametrize("category", CATEGORIES, ids=CATEGORY_NAMES)
def test_every_part_appears_often_enough(
    category: int, samples: dict[int, list[tuple[np.ndarray, np.ndarray]]]
) -> None:
    """Over 20 seeds each part shows up in >= 20 % of shapes and, when it does, holds >= 0.5 % of points."""
    labels = [lab for _, lab in samples[category]]
    report = []
    for part in part_range(category):
        shares = np.array([(lab == part).mean() for lab in labels])
        present = shares > 0
        mean_share = float(shares[present].mean()) if present.any() else 0.0
        report.append((PART_NAMES[part], float(present.mean()), mean_share))
    for name, presence, share in report:
        assert presence >= 0.2, (
            f"{CATEGORY_NAMES[category]}/{name} in only {presence:.0%} of shapes: {report}"
        )
        assert share >= 0.005, f"{CATEGORY_NAMES[category]}/{name} only {share:.2%} of points: {report}"


# --- sampling --------------------------------------------------------------------------------------


def test_sample_points_types_determinism_and_labels() -> None:
    shape = generate("Lamp", 3)
    p1, l1 = sample_points(shape, 2048, seed=5)
    p2, l2 = sample_points(shape, 2048, seed=5)
    p3, _ = sample_points(shape, 2048, seed=6)
    assert p1.dtype == np.float32 and p1.shape == (2048, 3) and l1.dtype == np.int64 and l1.shape == (2048,)
    assert np.array_equal(p1, p2) and np.array_equal(l1, l2) and not np.array_equal(p1, p3)
    assert set(np.unique(l1)) <= set(shape.face_labels.tolist())
    # each point lies on a face carrying its label
    tris = np.asarray(shape.mesh.vertices)[np.asarray(shape.mesh.faces)]
    for point, label in zip(p1[:100].astype(np.float64), l1[:100], strict=True):
        own = tris[shape.face_labels == label]
        nearest = trimesh.triangles.closest_point(own, np.repeat(point[None], len(own), axis=0))
        assert np.linalg.norm(nearest - point, axis=1).min() < 1e-5


def test_sampling_is_area_weighted() -> None:
    small = trimesh.creation.box([1.0, 1.0, 1.0])
    big = trimesh.creation.box([3.0, 3.0, 3.0])
    big.apply_translation([10.0, 0, 0])
    mesh = trimesh.Trimesh(
        np.vstack([small.vertices, big.vertices]), np.vstack([small.faces, big.faces + len(small.vertices)])
    )
    labels = np.repeat(np.array([0, 1], dtype=np.int64), [len(small.faces), len(big.faces)])
    _, lab = sample_points(LabeledMesh(mesh, labels, 0), 20000, seed=0)
    assert (lab == 0).mean() == pytest.approx(1 / 10, abs=0.01)  # areas 6 : 54


@pytest.mark.parametrize("category", CATEGORIES, ids=CATEGORY_NAMES)
def test_points_finite_in_range_and_sized_like_the_real_ones(
    category: int, samples: dict[int, list[tuple[np.ndarray, np.ndarray]]], real: dict[str, np.ndarray]
) -> None:
    points = [p for p, _ in samples[category]]
    for p in points:
        assert np.isfinite(p).all() and np.abs(p).max() <= 0.5 + 1e-6
    extent = np.mean([p.max(0) - p.min(0) for p in points], axis=0)
    rows = np.flatnonzero(real["category"] == category)
    real_extent = np.mean([np.ptp(real["points"][i].astype(np.float32), axis=0) for i in rows], axis=0)
    # same axis up and the same long axes: mean extents within 0.15 per axis (extents are ~0.05..0.97)
    assert np.abs(extent - real_extent).max() < 0.15, (CATEGORY_NAMES[category], extent, real_extent)


@pytest.mark.parametrize("category", CATEGORIES, ids=CATEGORY_NAMES)
def test_parts_are_laid_out_like_the_real_shape(
    category: int, samples: dict[int, list[tuple[np.ndarray, np.ndarray]]], real: dict[str, np.ndarray]
) -> None:
    """Where two parts of a real shape are clearly apart along an axis (> 0.2: the tail behind the body,
    the shade above the base, the hood in front), the procedural parts are apart the same way round."""
    gen_centres: dict[int, list[np.ndarray]] = {k: [] for k in part_range(category)}
    for p, lab in samples[category]:
        for k in part_range(category):
            if (lab == k).sum() >= 5:
                gen_centres[k].append(p[lab == k].mean(0))
    checked = 0
    for i in np.flatnonzero(real["category"] == category):
        pts, lab = real["points"][i].astype(np.float32), real["part_labels"][i].astype(np.int64)
        centres = {k: pts[lab == k].mean(0) for k in part_range(category) if (lab == k).sum() >= 10}
        for a in centres:
            for b in centres:
                if a >= b or not gen_centres[a] or not gen_centres[b]:
                    continue
                d_real = centres[a] - centres[b]
                d_gen = np.mean(gen_centres[a], 0) - np.mean(gen_centres[b], 0)
                for axis in range(3):
                    if abs(d_real[axis]) > 0.2:
                        checked += 1
                        assert np.sign(d_gen[axis]) == np.sign(d_real[axis]), (
                            f"{CATEGORY_NAMES[category]}: {PART_NAMES[a]} vs {PART_NAMES[b]} along "
                            f"{'xyz'[axis]}: real {d_real[axis]:+.2f}, procedural {d_gen[axis]:+.2f}"
                        )
    if len(CATEGORY_PARTS[CATEGORY_NAMES[category]]) > 1 and category != CATEGORY_NAMES.index("Skateboard"):
        assert (
            checked > 0
        )  # every category but the board (wheels sit right under the deck) has a clear layout


def test_generation_is_fast() -> None:
    start = time.perf_counter()
    for c in CATEGORIES:
        for s in range(3):
            generate(c, 100 + s)
    per_shape = (time.perf_counter() - start) / (3 * NUM_CATEGORIES)
    assert per_shape < 0.05, f"{per_shape * 1000:.1f} ms per shape"


# --- dataset ---------------------------------------------------------------------------------------


def test_dataset_items_are_pure_functions_of_seed_and_index() -> None:
    ds = ProceduralPartDataset(40, num_points=512, seed=3)
    assert len(ds) == 40
    item = ds[5]
    assert item["points"].dtype == np.float32 and item["points"].shape == (512, 3)
    assert item["part_labels"].dtype == np.int64 and item["part_labels"].shape == (512,)
    assert item["category"] == 5 % NUM_CATEGORIES
    assert set(np.unique(item["part_labels"])) <= set(part_range(item["category"]))
    again = ProceduralPartDataset(1000, num_points=512, seed=3)[5]  # another instance, another length
    assert np.array_equal(item["points"], again["points"])
    assert np.array_equal(item["part_labels"], again["part_labels"])
    assert not np.array_equal(item["points"], ProceduralPartDataset(40, num_points=512, seed=4)[5]["points"])
    assert np.array_equal(ds[-1]["points"], ds[39]["points"])
    with pytest.raises(IndexError):
        ds[40]
    assert [ds[i]["category"] for i in range(16)] == CATEGORIES


def test_dataset_category_subset() -> None:
    ds = ProceduralPartDataset(6, num_points=256, categories=["Mug", "table"])
    assert [ds[i]["category"] for i in range(6)] == [11, 15, 11, 15, 11, 15]
    with pytest.raises(ValueError):
        ProceduralPartDataset(4, categories=[])


def test_module_is_torch_free() -> None:
    code = "import sys, crosspoint.data.procedural; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_render_grid_writes_a_png(tmp_path: Path) -> None:
    image = pytest.importorskip("PIL.Image")  # Pillow comes with the training extras (tensorboard)

    out = render_grid(tmp_path / "grid.png", per_category=2, seed=0, categories=[0, 4], size=64)
    with image.open(out) as img:
        assert img.format == "PNG" and img.width >= 150 + 2 * 64 and img.height >= 2 * 64
