"""Every file in ../shared/data/meshes: loads (or gets its contracted typed error) and prepares."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from crosspoint.geometry import load, prepare
from tests.geometry.helpers import MESHES_DIR, expect_error, mesh_file_names

# The contract for the files that must not load.
EXPECTED_ERRORS = {
    "TestScene.gltf": "external_reference",  # buffer uri "TestScene.bin"
    "Mesh_PrimitiveMode_04.gltf": "external_reference",  # buffer uri "Mesh_PrimitiveMode_04.bin"
    "empty.obj": "empty_geometry",
    "empty.stl": "empty_geometry",
}

# (vertices, faces) as loaded: file order kept (process=False), STL corners merged when bit-identical.
# A change here changes every prepared point cloud, so it must be deliberate.
EXPECTED_COUNTS = {
    "20mm-xyz-cube.stl": (132, 260),
    "BoxTextured.glb": (24, 12),
    "ballA.off": (1900, 3796),
    "bunny.ply": (8171, 16301),
    "chair_model.obj": (11250, 12756),
    "comments.off": (8, 12),
    "cube.OBJ": (8, 12),
    "cube.glb": (8, 12),
    "featuretype.STL": (2010, 3476),
    "fuze.obj": (664, 1000),
    "fuze.ply": (664, 1000),
    "fuze_ascii.ply": (664, 1000),
    "monkey.glb": (1966, 968),
    "points_ascii.ply": (5, 0),
    "points_bin.ply": (5, 0),
    "points_cloudcompare.xyz": (101, 0),
    "quadknot.obj": (2879, 2880),
    "rabbit.obj": (732, 1252),
    "soup.stl": (300, 100),
    "suzanne.ply": (1966, 968),
    "teapot.stl": (480, 894),
    "textured_tetrahedron.obj": (6, 4),
    "tube.obj": (128, 120),
    "unit_sphere.STL": (642, 1280),
    "whitespace.off": (8, 12),
}

_MISSING = [pytest.param("missing", marks=pytest.mark.skip(reason=f"no {MESHES_DIR}"))]
FILES = mesh_file_names() or _MISSING
LOADABLE = [name for name in mesh_file_names() if name not in EXPECTED_ERRORS] or _MISSING


def test_every_file_has_an_expectation() -> None:
    names = mesh_file_names()
    if not names:
        pytest.skip(f"no {MESHES_DIR}")
    assert sorted(names) == sorted(EXPECTED_COUNTS.keys() | EXPECTED_ERRORS.keys())


@pytest.mark.parametrize("name", FILES)
def test_load_shared_file(name: str) -> None:
    path = MESHES_DIR / name
    if name in EXPECTED_ERRORS:
        expect_error(EXPECTED_ERRORS[name], load, path)
        return
    shape = load(path)
    assert shape.format == path.suffix.lower()[1:]
    assert (shape.num_vertices, shape.num_faces) == EXPECTED_COUNTS[name]
    assert shape.vertices.dtype == np.float64 and shape.vertices.shape[1] == 3
    assert np.isfinite(shape.vertices).all()
    if shape.faces is not None:
        assert shape.faces.dtype == np.int64 and shape.faces.min() >= 0
        assert shape.faces.max() < shape.num_vertices
    # Same bytes through the bytes API give the same shape.
    again = load(path.read_bytes(), format=path.suffix)
    assert np.array_equal(again.vertices, shape.vertices)
    # trimesh on its own (scene transforms applied by trimesh itself) spans the same box.
    reference = np.asarray(_trimesh_reference(path).vertices)
    np.testing.assert_allclose(shape.vertices.min(0), reference.min(0), atol=1e-9)
    np.testing.assert_allclose(shape.vertices.max(0), reference.max(0), atol=1e-9)


def _trimesh_reference(path: Path) -> trimesh.Trimesh | trimesh.PointCloud:
    loaded = trimesh.load(str(path), process=False)
    return loaded.to_mesh() if isinstance(loaded, trimesh.Scene) else loaded


@pytest.mark.parametrize("name", LOADABLE)
def test_prepare_shared_file(name: str) -> None:
    shape = load(MESHES_DIR / name)
    if shape.num_vertices < 32 and shape.faces is None:
        expect_error("too_few_points", prepare, shape)
        return
    points, receipt = prepare(shape, num_points=1024, seed=0)
    expected = 1024 if shape.faces is not None else min(1024, shape.num_vertices)
    assert points.shape == (expected, 3) and points.dtype == np.float32
    assert receipt.num_points == expected and receipt.requested_points == 1024
    assert receipt.sampling == ("surface" if shape.faces is not None else "points")
    assert abs(float(np.linalg.norm(points, axis=1).max()) - 1.0) < 1e-6
    np.testing.assert_allclose(points.astype(np.float64).mean(axis=0), 0.0, atol=1e-6)
    assert len(np.unique(points, axis=0)) == len(points)


def _embedded_copy(name: str) -> bytes:
    """The external-buffer glTF with its .bin inlined as a data: URI: the form we do accept."""
    doc = json.loads((MESHES_DIR / name).read_text())
    for buffer in doc["buffers"]:
        blob = (MESHES_DIR / buffer["uri"]).read_bytes()
        buffer["uri"] = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    return json.dumps(doc).encode()


@pytest.mark.parametrize("name", ["TestScene.gltf", "Mesh_PrimitiveMode_04.gltf"])
def test_external_gltf_loads_once_embedded(name: str, meshes_dir: object) -> None:
    shape = load(_embedded_copy(name), format="gltf")
    # trimesh, allowed to read the sidecar .bin from disk, builds the same scene.
    reference = _trimesh_reference(MESHES_DIR / name)
    assert shape.num_vertices == len(reference.vertices)
    assert shape.num_faces == len(reference.faces)
    np.testing.assert_allclose(
        np.sort(shape.vertices, axis=0), np.sort(reference.vertices, axis=0), atol=1e-9
    )
