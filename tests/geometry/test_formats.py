"""Each reader on small hand-made files: what comes out is exactly what went in."""

from __future__ import annotations

import io

import numpy as np
import pytest
import trimesh

from crosspoint.geometry import SUPPORTED_FORMATS, load
from tests.geometry.helpers import glb_bytes, gltf_bytes, gltf_document

RNG = np.random.default_rng(7)
CLOUD = RNG.random((40, 3)).astype(np.float32)
QUAD = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float32)
QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]])


def test_supported_formats() -> None:
    assert set(SUPPORTED_FORMATS) == {
        "obj",
        "stl",
        "ply",
        "off",
        "glb",
        "gltf",
        "pcd",
        "xyz",
        "txt",
        "npy",
        "npz",
    }


def test_array_and_list_sources() -> None:
    shape = load(CLOUD)
    assert shape.format == "array" and shape.faces is None
    assert np.array_equal(shape.vertices, CLOUD.astype(np.float64))
    assert np.array_equal(load(CLOUD.tolist()).vertices, shape.vertices)
    assert not shape.vertices.flags.writeable  # shared between requests: nobody may mutate it


def test_extra_columns_are_ignored() -> None:
    with_normals = np.hstack([CLOUD, RNG.random((40, 3))])
    assert np.array_equal(load(with_normals).vertices, CLOUD.astype(np.float64))


# --- PCD --------------------------------------------------------------------------------------


def _pcd_header(
    points: int, data: str, fields: str = "x y z", size: str = "4 4 4", kind: str = "F F F"
) -> bytes:
    count = " ".join("1" for _ in fields.split())
    return (
        f"# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS {fields}\nSIZE {size}\n"
        f"TYPE {kind}\nCOUNT {count}\nWIDTH {points}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\n"
        f"POINTS {points}\nDATA {data}\n"
    ).encode()


def test_pcd_ascii() -> None:
    body = "\n".join(" ".join(repr(float(v)) for v in row) for row in CLOUD)
    shape = load(_pcd_header(40, "ascii") + body.encode(), "pcd")
    assert np.array_equal(shape.vertices, CLOUD.astype(np.float64))


def test_pcd_binary_with_padding_and_colour_fields_and_nan() -> None:
    # PCL writes organized clouds with NaN for missing returns, "_" padding and packed rgb.
    row = np.dtype([("x", "<f4"), ("pad", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
    table = np.zeros(40, dtype=row)
    table["x"], table["y"], table["z"] = CLOUD.T
    table["x"][5] = np.nan
    header = _pcd_header(40, "binary", "x _ y z rgb", "4 4 4 4 4", "F F F F U")
    shape = load(header + table.tobytes(), "pcd")
    assert shape.dropped_nonfinite == 1
    assert np.array_equal(shape.vertices, np.delete(CLOUD, 5, axis=0).astype(np.float64))


def test_pcd_double_precision() -> None:
    cloud = CLOUD.astype(np.float64) + 1e6
    shape = load(_pcd_header(40, "binary", size="8 8 8") + cloud.tobytes(), "pcd")
    assert np.array_equal(shape.vertices, cloud)


# --- XYZ / TXT --------------------------------------------------------------------------------


def test_xyz_whitespace_comma_header_and_extra_columns() -> None:
    text = "X,Y,Z,R,G,B\n# a comment\n" + "\n".join(
        ",".join(repr(float(v)) for v in row) + ",255,0,0" for row in CLOUD
    )
    shape = load(text.encode(), "txt")
    assert np.array_equal(shape.vertices, CLOUD.astype(np.float64))
    spaced = "\n".join("  ".join(repr(float(v)) for v in row) + "\t7" for row in CLOUD)
    assert np.array_equal(load(spaced.encode(), "xyz").vertices, shape.vertices)


def test_xyz_nan_rows_counted() -> None:
    text = "0 0 0\nnan 1 1\n1 0 0\n0 1 0\n0 0 1\n"
    shape = load(text.encode(), "xyz")
    assert shape.num_vertices == 4 and shape.dropped_nonfinite == 1


# --- NPY / NPZ --------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["C", "F"])
def test_npy(order: str) -> None:
    stream = io.BytesIO()
    np.save(stream, np.asarray(CLOUD, order=order), allow_pickle=False)
    assert np.array_equal(load(stream.getvalue(), "npy").vertices, CLOUD.astype(np.float64))


def test_npz_points_key_or_only_array() -> None:
    stream = io.BytesIO()
    np.savez_compressed(stream, labels=np.arange(40), points=CLOUD)
    assert np.array_equal(load(stream.getvalue(), "npz").vertices, CLOUD.astype(np.float64))
    stream = io.BytesIO()
    np.savez(stream, CLOUD)
    assert np.array_equal(load(stream.getvalue(), "npz").vertices, CLOUD.astype(np.float64))


# --- meshes -----------------------------------------------------------------------------------


def test_gltf_embedded_with_node_transform() -> None:
    doc, _ = gltf_document(QUAD, QUAD_FACES, translation=(10.0, 0.0, -2.0))
    shape = load(gltf_bytes(doc), "gltf")
    assert shape.faces is not None and shape.faces.tolist() == QUAD_FACES.tolist()
    assert np.array_equal(shape.vertices, QUAD.astype(np.float64) + np.array([10.0, 0.0, -2.0]))


def test_glb() -> None:
    doc, blob = gltf_document(QUAD, QUAD_FACES)
    shape = load(glb_bytes(doc, blob), "glb")
    assert np.array_equal(shape.vertices, QUAD.astype(np.float64)) and shape.num_faces == 2


def test_gltf_points_primitive_is_a_point_cloud() -> None:
    doc, _ = gltf_document(CLOUD, mode=0)
    shape = load(gltf_bytes(doc), "gltf")
    assert shape.faces is None and np.array_equal(shape.vertices, CLOUD.astype(np.float64))


def test_obj_with_only_vertices_is_a_point_cloud() -> None:
    text = "".join(f"v {x!r} {y!r} {z!r}\n" for x, y, z in CLOUD.astype(np.float64))
    shape = load(text.encode(), "obj")
    assert shape.faces is None and np.array_equal(shape.vertices, CLOUD.astype(np.float64))


def test_stl_binary_and_ascii_merge_shared_corners() -> None:
    mesh = trimesh.Trimesh(QUAD, QUAD_FACES, process=False)
    for data in (trimesh.exchange.stl.export_stl(mesh), trimesh.exchange.stl.export_stl_ascii(mesh).encode()):
        shape = load(data, "stl")
        # 6 stored corners -> 4 vertices, in first-seen order, triangles unchanged.
        assert shape.num_vertices == 4 and shape.num_faces == 2
        np.testing.assert_allclose(shape.vertices[shape.faces], QUAD[QUAD_FACES], atol=1e-6)


def test_ply_binary_point_cloud() -> None:
    data = trimesh.PointCloud(CLOUD).export(file_type="ply")
    shape = load(data, "ply")
    assert shape.faces is None and np.array_equal(shape.vertices, CLOUD.astype(np.float64))


def test_off_with_quads() -> None:
    data = b"OFF\n4 1 0\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n"
    shape = load(data, "off")
    assert shape.num_vertices == 4 and shape.num_faces == 2
