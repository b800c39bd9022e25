"""prepare / to_model_frame / the sampling helpers: invariance, determinism, receipts."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import trimesh

from crosspoint.geometry import (
    UP_AXES,
    Receipt,
    Shape,
    deduplicate,
    farthest_point_sample,
    load,
    normalize_unit_sphere,
    prepare,
    to_model_frame,
    up_axis_rotation,
)
from crosspoint.geometry.limits import Limits
from crosspoint.geometry.shape import build_shape
from tests.geometry.helpers import MESHES_DIR, asymmetric_mesh, expect_error, glb_bytes, gltf_document

VERTICES, FACES = asymmetric_mesh()
MESH = build_shape(VERTICES, FACES, "array", Limits())
CLOUD = np.random.default_rng(1).normal(size=(3000, 3)) * [1.0, 2.0, 0.5] + [0.0, 1.0, 0.0]


def _mesh(vertices: np.ndarray, faces: np.ndarray) -> Shape:
    return build_shape(vertices, faces, "array", Limits())


def _copy_with_up_axis(vertices: np.ndarray, axis: str) -> np.ndarray:
    """The same object stored with `axis` up, 3.7x larger, somewhere else."""
    return 3.7 * (vertices @ up_axis_rotation(axis)) + np.array([12.0, -40.0, 5.5])


# --- frames -----------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", UP_AXES)
def test_up_axis_rotation_is_proper_and_maps_axis_to_plus_y(axis: str) -> None:
    rot = up_axis_rotation(axis)
    unit = np.zeros(3)
    unit["xyz".index(axis[1])] = 1.0 if axis[0] == "+" else -1.0
    np.testing.assert_array_equal(rot @ unit, [0.0, 1.0, 0.0])
    np.testing.assert_allclose(rot @ rot.T, np.eye(3))
    assert np.linalg.det(rot) == pytest.approx(1.0)


def test_axis_spellings_and_z_convention() -> None:
    for spelling in ("z", "+z", "Z", " +Z "):
        np.testing.assert_array_equal(up_axis_rotation(spelling), up_axis_rotation("+z"))
    # M1 of shared/data/README.md: how the z-up ModelNet files became the y-up training data.
    np.testing.assert_array_equal(up_axis_rotation("z"), [[-1, 0, 0], [0, 0, 1], [0, 1, 0]])
    np.testing.assert_array_equal(up_axis_rotation("y"), np.eye(3))


def test_normalize_unit_sphere() -> None:
    points, centroid, _ = normalize_unit_sphere(CLOUD.astype(np.float32))
    assert points.dtype == np.float32
    np.testing.assert_allclose(centroid, CLOUD.mean(axis=0), rtol=1e-6)
    assert np.linalg.norm(points, axis=1).max() == pytest.approx(1.0, abs=1e-6)
    expect_error("degenerate_geometry", normalize_unit_sphere, np.ones((5, 3)))


# --- invariance -------------------------------------------------------------------------------


@pytest.mark.parametrize("axis", UP_AXES)
def test_rotated_scaled_translated_mesh_normalizes_to_the_same_points(axis: str) -> None:
    original, _ = prepare(MESH, 1024, up_axis="y", seed=5)
    copy, receipt = prepare(_mesh(_copy_with_up_axis(VERTICES, axis), FACES), 1024, up_axis=axis, seed=5)
    assert receipt.up_axis == axis
    np.testing.assert_allclose(copy, original, atol=1e-5, rtol=0)


@pytest.mark.parametrize("axis", ["z", "-x"])
def test_rotated_scaled_translated_cloud_normalizes_to_the_same_points(axis: str) -> None:
    original, _ = prepare(CLOUD, 1024, seed=2)
    copy, _ = prepare(_copy_with_up_axis(CLOUD, axis), 1024, up_axis=axis, seed=2)
    np.testing.assert_allclose(copy, original, atol=1e-5, rtol=0)


def test_z_up_real_mesh_matches_its_y_up_original() -> None:
    path = MESHES_DIR / "bunny.ply"
    if not path.exists():
        pytest.skip(f"no {path}")
    shape = load(path)
    assert shape.faces is not None
    original, _ = prepare(shape, 1024, seed=0)
    copy, _ = prepare(_mesh(_copy_with_up_axis(shape.vertices, "z"), shape.faces), 1024, up_axis="z", seed=0)
    np.testing.assert_allclose(copy, original, atol=1e-5, rtol=0)


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_bit_identical_across_separate_loads() -> None:
    doc, blob = gltf_document(VERTICES, FACES)
    data = glb_bytes(doc, blob)
    first, first_receipt = prepare(load(data, "glb"), 1024, up_axis="z", seed=11)
    second, second_receipt = prepare(load(bytes(bytearray(data)), "glb"), 1024, up_axis="z", seed=11)
    assert first.tobytes() == second.tobytes()
    assert first_receipt == second_receipt


@pytest.mark.parametrize("source", ["mesh", "cloud"])
def test_different_seed_gives_different_points(source: str) -> None:
    shape = MESH if source == "mesh" else load(CLOUD)
    a, _ = prepare(shape, 512, seed=0)
    b, _ = prepare(shape, 512, seed=1)
    again, _ = prepare(shape, 512, seed=0)
    assert a.tobytes() == again.tobytes()
    assert not np.array_equal(a, b)


# --- output and receipt -----------------------------------------------------------------------


def test_output_is_unit_sphere_float32_and_distinct() -> None:
    points, receipt = prepare(MESH, 1024, seed=0)
    assert points.dtype == np.float32 and points.shape == (1024, 3) and points.flags.c_contiguous
    assert np.linalg.norm(points.astype(np.float64), axis=1).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(points.astype(np.float64).mean(axis=0), 0.0, atol=1e-6)
    assert len(deduplicate(points)) == 1024
    assert receipt.sampling == "surface" and receipt.candidates == 8192


def test_receipt_round_trips_through_json() -> None:
    _, receipt = prepare(MESH, 256, up_axis="-x", seed=3)
    data = json.loads(json.dumps(receipt.to_dict()))
    assert set(data) >= {
        "centroid", "scale", "up_axis", "rotation", "num_points", "requested_points", "seed",
        "source_format", "source_vertices", "source_faces", "dropped_nonfinite", "duplicates_removed", "sampling",
    }  # fmt: skip
    assert Receipt.from_dict(data) == receipt
    assert data["rotation"] == up_axis_rotation("-x").tolist()
    assert (data["num_points"], data["requested_points"], data["seed"]) == (256, 256, 3)


def test_to_model_frame_reproduces_prepared_points_exactly() -> None:
    # For a point cloud every output point is one of the input vertices mapped by the receipt.
    shape = load(CLOUD)
    points, receipt = prepare(shape, 1024, up_axis="z", seed=4)
    mapped = to_model_frame(shape.vertices, Receipt.from_dict(json.loads(json.dumps(receipt.to_dict()))))
    as_rows = {row.tobytes() for row in mapped}
    assert all(row.tobytes() in as_rows for row in points)


def test_to_model_frame_on_original_vertices_lies_on_the_surface() -> None:
    points, receipt = prepare(MESH, 2048, seed=0)
    mapped = to_model_frame(MESH.vertices, receipt)
    assert mapped.dtype == np.float32 and mapped.shape == MESH.vertices.shape
    nearest = np.sqrt(((mapped[:, None, :] - points[None, :, :]) ** 2).sum(-1)).min(axis=1)
    assert nearest.max() < 0.15  # every vertex has a sampled point nearby in the model frame


def test_duplicates_are_removed_and_counted() -> None:
    tiled = np.concatenate([CLOUD[:500], CLOUD[:500], CLOUD[:100]])
    points, receipt = prepare(tiled, 2048, seed=0)
    assert receipt.num_points == 500 and points.shape == (500, 3)
    assert receipt.duplicates_removed == 600 and receipt.candidates == 1100
    assert receipt.requested_points == 2048


def test_too_few_distinct_points() -> None:
    few = np.concatenate([CLOUD[:20]] * 10)
    err = expect_error("too_few_points", prepare, few, 1024)
    assert "20 distinct points" in str(err)
    points, receipt = prepare(few, 1024, min_points=16)
    assert points.shape == (20, 3) and receipt.num_points == 20
    points, _ = prepare(few, 8)  # asking for fewer than there are is always fine
    assert points.shape == (8, 3)


def test_mesh_without_area_uses_its_vertices() -> None:
    line = np.stack([np.linspace(0, 1, 100), np.linspace(0, 2, 100), np.zeros(100)], axis=1)
    faces = np.stack([np.arange(98), np.arange(1, 99), np.arange(2, 100)], axis=1)
    points, receipt = prepare(_mesh(line, faces), 64, seed=0)
    assert receipt.sampling == "points" and points.shape == (64, 3)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"up_axis": "w"}, "up_axis"),
        ({"up_axis": "xy"}, "up_axis"),
        ({"num_points": 0}, "num_points"),
        ({"num_points": 1}, "num_points"),
        ({"num_points": 1.5}, "num_points"),
        ({"seed": -1}, "seed"),
        ({"oversample": 0}, "oversample"),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], word: str) -> None:
    err = expect_error("invalid_argument", prepare, CLOUD, **kwargs)
    assert word in str(err)


# --- helpers training reuses ------------------------------------------------------------------


def test_deduplicate_after_float32_cast() -> None:
    points = np.array([[0.0, 1.0, 2.0], [-0.0, 1.0, 2.0], [0.0, 1.0 + 1e-12, 2.0], [3.0, 3.0, 3.0]])
    unique, index = deduplicate(points, return_index=True)
    assert index.tolist() == [0, 3] and unique.dtype == np.float64
    assert np.array_equal(unique, points[[0, 3]])


def _reference_fps(points: np.ndarray, count: int, start: int) -> np.ndarray:
    distance = np.full(len(points), np.inf)
    order = [start]
    for _ in range(count - 1):
        distance = np.minimum(distance, ((points - points[order[-1]]) ** 2).sum(axis=1))
        order.append(int(np.argmax(distance)))
    return np.array(order)


@pytest.mark.parametrize("size", [5, 40, 3000, 9000])
def test_farthest_point_sample_is_exact_fps(size: int) -> None:
    points = np.random.default_rng(size).random((size, 3)).astype(np.float32)
    count = min(size, 256)
    index = farthest_point_sample(points, count, seed=3)
    assert index.dtype == np.int64 and len(set(index.tolist())) == count
    assert np.array_equal(index, _reference_fps(points.astype(np.float64), count, int(index[0])))
    assert np.array_equal(index, farthest_point_sample(points, count, seed=3))


def test_farthest_point_sample_seed_changes_start() -> None:
    points = np.random.default_rng(0).random((5000, 3))
    starts = {int(farthest_point_sample(points, 16, seed=s)[0]) for s in range(8)}
    assert len(starts) > 4


def test_farthest_point_sample_rejects_bad_counts() -> None:
    expect_error("invalid_argument", farthest_point_sample, CLOUD, 0)
    expect_error("invalid_argument", farthest_point_sample, CLOUD[:10], 11)


@pytest.mark.slow
def test_prepare_speed_100k_faces() -> None:
    sphere = trimesh.creation.icosphere(subdivisions=6)
    torus = trimesh.creation.torus(major_radius=2, minor_radius=0.5, major_sections=136, minor_sections=68)
    mesh = trimesh.util.concatenate([sphere, torus])
    shape = _mesh(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    assert shape.num_faces > 100_000
    times = []
    for seed in range(21):
        # CPU time of this process: the machine is shared, wall time measures the neighbours.
        start = time.process_time()
        prepare(shape, 1024, seed=seed)
        times.append(time.process_time() - start)
    assert float(np.median(times)) < 0.030


def test_points_that_meet_only_in_the_final_frame_are_deduplicated() -> None:
    # Found by search: point 40 is ~1e-7 from point 0 and still distinct in the conditioned
    # float32 frame (centred on all 71 rows), but the two round together once the output is
    # centred on the 41 distinct points. The model must still see no tie.
    rng = np.random.default_rng(0)
    for _ in range(1503):
        base, noise = rng.random((40, 3)), rng.normal(size=3)
    rows = np.vstack([base, base[0] + noise * 1e-7, np.repeat(base[1:2], 30, axis=0)])
    points, receipt = prepare(rows, 64, seed=0)
    assert receipt.num_points == 40 and points.shape == (40, 3)
    assert receipt.duplicates_removed == 31
    assert len(deduplicate(points)) == 40
