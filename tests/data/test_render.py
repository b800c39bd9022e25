"""2D views: determinism, coverage (splats close the surface), cameras, meshes, and the on-disk ViewStore."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import trimesh

from crosspoint.data import PointCloudSet, shared_data_dir
from crosspoint.data.modelnet import default_modelnet40_npz
from crosspoint.data.prepared import prepare_many
from crosspoint.render import ViewStore, render_mesh, render_points, view_angles
from crosspoint.render.splat import BACKGROUND

MESHES = shared_data_dir() / "meshes"


def _covered(image: np.ndarray) -> np.ndarray:
    return (image != BACKGROUND).any(axis=-1)


def fibonacci_sphere(n: int = 1024) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi, theta = np.arccos(1 - 2 * i / n), np.pi * (1 + 5**0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.cos(phi), np.sin(theta) * np.sin(phi)], 1).astype(
        np.float32
    )


@pytest.fixture(scope="module")
def few_shapes() -> PointCloudSet:
    """Five real ModelNet40 rows, prepared like the loader does (without preparing all 12k rows)."""
    with np.load(default_modelnet40_npz()) as f:
        rows = [0, 3000, 6000, 9000, 12000]
        ids = [str(s) for s in f["shape_ids"][rows]]
        points, counts = f["points"], f["n_points"]  # each f[...] decompresses the whole member
        raw = [points[i, : counts[i]] for i in rows]
        labels = f["labels"][rows].astype(np.int64)
        names = [str(c) for c in f["class_names"]]
    return PointCloudSet(prepare_many(raw, ids, 1024), labels, names, ids)


def test_render_points_is_deterministic_and_non_empty(few_shapes: PointCloudSet) -> None:
    pts = few_shapes.points[1]
    a = render_points(pts, views=3, seed=5)
    assert a.shape == (3, 224, 224, 3) and a.dtype == np.uint8
    assert np.array_equal(a, render_points(pts, views=3, seed=5))
    assert not np.array_equal(a, render_points(pts, views=3, seed=6))
    for view in a:
        assert 0.02 < _covered(view).mean() < 0.9
        assert len(np.unique(view.reshape(-1, 3), axis=0)) > 20  # shaded, not a flat silhouette
        border = np.concatenate([view[0], view[-1], view[:, 0], view[:, -1]])
        assert _covered(border).mean() < 0.02  # the unit sphere fits the frame (splats may touch it)


def test_view_v_does_not_depend_on_how_many_views(few_shapes: PointCloudSet) -> None:
    pts = few_shapes.points[2]
    assert np.array_equal(render_points(pts, views=4, seed=9)[:2], render_points(pts, views=2, seed=9))
    az = [view_angles(9, v)[0] for v in range(64)]
    el = np.degrees([view_angles(9, v)[1] for v in range(64)])
    assert min(az) >= 0 and max(az) < 2 * np.pi and np.ptp(az) > np.pi
    assert el.min() >= 10 and el.max() <= 40


def test_splats_close_the_surface_of_a_1024_point_sphere() -> None:
    view = render_points(fibonacci_sphere(), views=1, seed=0, size=224)[0]
    covered = _covered(view)
    ys, xs = np.nonzero(covered)
    cy, cx = ys.mean(), xs.mean()
    radius = np.sqrt(covered.sum() / np.pi)
    yy, xx = np.mgrid[:224, :224]
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 < (0.9 * radius) ** 2
    assert covered[inside].mean() > 0.999  # no holes inside the silhouette
    # Lambert shading: lit from the upper left, so the upper-left quadrant is brighter than the lower right
    upper_left = view[(yy < cy) & (xx < cx) & inside].mean()
    lower_right = view[(yy > cy) & (xx > cx) & inside].mean()
    assert upper_left > lower_right + 10


def test_up_axis_stands_a_z_up_pole_upright() -> None:
    pole = trimesh.creation.cylinder(radius=0.05, height=1.0)  # along z
    pts = np.asarray(pole.sample(2000, seed=0), dtype=np.float32)

    def extents(up: str) -> list[tuple[int, int]]:
        views = render_points(pts, views=4, seed=1, up_axis=up)
        return [(int(np.ptp(ys)), int(np.ptp(xs))) for ys, xs in (np.nonzero(_covered(v)) for v in views)]

    assert all(h > 2 * w for h, w in extents("z"))  # upright from every side
    assert any(w > 2 * h for h, w in extents("y"))  # lying down: wide from some side


def test_render_mesh_shared_chair() -> None:
    views = render_mesh(MESHES / "chair_model.obj", views=2, seed=3, size=128)
    assert views.shape == (2, 128, 128, 3) and views.dtype == np.uint8
    assert all(0.02 < _covered(v).mean() < 0.9 for v in views)
    assert np.array_equal(
        views, render_mesh(trimesh.load(MESHES / "chair_model.obj"), views=2, seed=3, size=128)
    )


def test_render_mesh_rejects_a_point_cloud_file() -> None:
    with pytest.raises(TypeError):
        render_mesh(np.zeros((10, 3)), views=1)


def test_view_store_get_caches_and_survives_a_new_instance(tmp_path: Path, few_shapes: PointCloudSet) -> None:
    store = ViewStore(tmp_path, size=64, views_per_object=2)
    sid, pts = few_shapes.shape_ids[0], few_shapes.points[0]
    views = store.get(sid, pts)
    assert views.shape == (2, 64, 64, 3)
    again = ViewStore(tmp_path, size=64, views_per_object=2)
    again.render = None  # type: ignore[assignment]  # a cache hit must not render
    assert np.array_equal(again.get(sid, pts), views)
    # the key covers the geometry: new points under the same id are rendered again
    assert again.lookup(sid, pts * 0.5) is None
    # different settings live in a different folder
    assert ViewStore(tmp_path, size=64, views_per_object=3).root != store.root


def test_view_store_prefill_writes_chunks_and_is_picklable(tmp_path: Path, few_shapes: PointCloudSet) -> None:
    store = ViewStore(tmp_path, size=48, views_per_object=2, chunk_size=2)
    assert store.prefill(few_shapes) == 5
    assert len(list(store.root.glob("chunk-*.npz"))) == 3
    assert store.prefill(few_shapes) == 0  # everything cached
    clone = pickle.loads(pickle.dumps(store))  # what a DataLoader worker receives
    clone.render = None
    for sid, pts in zip(few_shapes.shape_ids, few_shapes.points, strict=True):
        assert np.array_equal(clone.get(sid, pts), store.render(sid, pts))


def test_view_store_prefill_with_worker_processes(tmp_path: Path, few_shapes: PointCloudSet) -> None:
    subset = few_shapes.subset([0, 1, 2])
    store = ViewStore(tmp_path, size=32, views_per_object=1, chunk_size=1)
    assert store.prefill(subset, workers=2) == 3
    fresh = ViewStore(tmp_path, size=32, views_per_object=1)
    assert all(fresh.lookup(s, p) is not None for s, p in zip(subset.shape_ids, subset.points, strict=True))
