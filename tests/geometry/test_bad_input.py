"""Bad input gets the right typed error, fast, without a big allocation."""

from __future__ import annotations

import contextlib
import io
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trimesh

from crosspoint.geometry import ERROR_CODES, GeometryError, Limits, load
from tests.geometry.helpers import expect_error, glb_bytes, gltf_bytes, gltf_document

TRIANGLE = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _small_alloc_error(code: str, data: bytes, fmt: str, limits: Limits | None = None) -> GeometryError:
    """The error must come in well under a second with under 16 MB allocated (the bomb is never built)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        err = expect_error(code, load, data, fmt, **({"limits": limits} if limits else {}))
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert peak < 16 * 2**20, f"peak allocation {peak} bytes"
    return err


def _binary_stl(triangles: int) -> bytes:
    mesh = trimesh.creation.icosphere(subdivisions=2)
    data: bytes = trimesh.exchange.stl.export_stl(mesh)
    assert len(data) == 84 + 50 * len(mesh.faces)
    return data[:80] + triangles.to_bytes(4, "little") + data[84:]


# --- declared counts vs bytes -----------------------------------------------------------------


def test_ply_declaring_a_billion_vertices_fails_fast() -> None:
    header = (
        b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000\n"
        b"property float x\nproperty float y\nproperty float z\nend_header\n"
    )
    data = header + bytes(1300 - len(header))
    err = _small_alloc_error("parse_error", data, "ply")
    assert "1000000000 vertices" in str(err) and f"{1300 - len(header)} bytes" in str(err)


def test_ascii_ply_declaring_huge_face_count_fails_fast() -> None:
    data = (
        b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
        b"element face 4000000000\nproperty list uchar int vertex_indices\nend_header\n"
        b"0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"
    )
    err = _small_alloc_error("parse_error", data, "ply")
    assert "4000000000 faces" in str(err)


def test_ply_within_bytes_but_over_limits() -> None:
    data = (
        b"ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
        b"end_header\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n"
    )
    assert load(data, "ply").num_vertices == 4
    _small_alloc_error("limit_exceeded", data, "ply", Limits(max_vertices=3))


def test_truncated_binary_stl() -> None:
    data = _binary_stl(320)
    assert load(data, "stl").num_faces == 320
    err = _small_alloc_error("parse_error", data[:5000], "stl")
    assert "320 triangles" in str(err) and "5000 bytes" in str(err)


def test_binary_stl_declaring_more_triangles_than_present() -> None:
    err = _small_alloc_error("parse_error", _binary_stl(4_000_000_000), "stl")
    assert "4000000000 triangles" in str(err)


def test_binary_stl_over_face_limit() -> None:
    _small_alloc_error("limit_exceeded", _binary_stl(320), "stl", Limits(max_faces=100))


def test_off_declaring_huge_counts() -> None:
    err = _small_alloc_error("parse_error", b"OFF\n900000000 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n", "off")
    assert "900000000 vertices" in str(err)


def test_npy_header_declaring_huge_shape() -> None:
    stream = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        stream, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 3)}
    )
    err = _small_alloc_error("parse_error", stream.getvalue() + bytes(1000), "npy")
    assert "(1000000000, 3)" in str(err)


def test_pcd_declaring_huge_point_count() -> None:
    header = (
        b"VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
        b"WIDTH 1000000000\nHEIGHT 1\nPOINTS 1000000000\nDATA binary\n"
    )
    err = _small_alloc_error("parse_error", header + bytes(1200), "pcd")
    assert "1000000000 points" in str(err)


def test_gltf_accessor_count_beyond_its_buffer() -> None:
    doc, _ = gltf_document(TRIANGLE, np.array([[0, 1, 2]]))
    doc["accessors"][0]["count"] = 10**9
    err = _small_alloc_error("parse_error", gltf_bytes(doc), "gltf")
    assert "accessor 0" in str(err)


def test_gltf_bufferless_accessor_bomb() -> None:
    doc, _ = gltf_document(TRIANGLE)
    doc["accessors"].append({"componentType": 5126, "count": 10**9, "type": "MAT4"})
    _small_alloc_error("limit_exceeded", gltf_bytes(doc), "gltf")


def test_gltf_buffer_longer_than_its_data() -> None:
    doc, _ = gltf_document(TRIANGLE)
    doc["buffers"][0]["byteLength"] = 10**9
    _small_alloc_error("parse_error", gltf_bytes(doc), "gltf")


def test_gltf_instancing_counts_against_limits() -> None:
    doc, _ = gltf_document(TRIANGLE, np.array([[0, 1, 2]]))
    doc["nodes"] = [{"children": list(range(1, 2001))}] + [{"mesh": 0} for _ in range(2000)]
    _small_alloc_error("limit_exceeded", gltf_bytes(doc), "gltf", Limits(max_vertices=5000))


def test_gltf_node_with_two_parents_is_refused() -> None:
    doc, _ = gltf_document(TRIANGLE, np.array([[0, 1, 2]]))
    doc["nodes"] = [{"children": [2]}, {"children": [2]}, {"mesh": 0}]
    doc["scenes"] = [{"nodes": [0, 1]}]
    expect_error("parse_error", load, gltf_bytes(doc), "gltf")


def test_truncated_glb() -> None:
    doc, blob = gltf_document(TRIANGLE, np.array([[0, 1, 2]]))
    data = glb_bytes(doc, blob)
    assert load(data, "glb").num_faces == 1
    expect_error("parse_error", load, data[: len(data) - 10], "glb")


def test_npz_member_over_byte_limit() -> None:
    stream = io.BytesIO()
    np.savez_compressed(stream, points=np.zeros((100_000, 3)))
    _small_alloc_error("limit_exceeded", stream.getvalue(), "npz", Limits(max_bytes=1_000_000))


# --- external references ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "TestScene.bin",
        "/etc/passwd",
        "file:///etc/passwd",
        "../../secret.bin",
        "http://example.com/a.bin",
        "/dev/zero",
    ],
)
def test_gltf_external_buffer_uri_is_refused(uri: str) -> None:
    # /dev/zero would never end if anything tried to read it: refusal happens before any read.
    doc, _ = gltf_document(TRIANGLE, uri=uri)
    err = expect_error("external_reference", load, gltf_bytes(doc), "gltf")
    assert uri in str(err)


def test_gltf_external_image_uri_is_refused_even_with_embedded_buffers() -> None:
    doc, _ = gltf_document(TRIANGLE)
    doc["images"] = [{"uri": "texture.png"}]
    expect_error("external_reference", load, gltf_bytes(doc), "gltf")


def test_glb_with_external_uri_in_json_is_refused() -> None:
    doc, blob = gltf_document(TRIANGLE)
    doc["images"] = [{"uri": "/etc/hostname"}]
    expect_error("external_reference", load, glb_bytes(doc, blob), "glb")


# --- empty, non-finite, degenerate ------------------------------------------------------------


def test_nan_rows_are_dropped_and_counted() -> None:
    points = np.random.default_rng(0).random((50, 3))
    points[[3, 7, 11]] = np.nan
    points[20, 1] = np.inf
    shape = load(points)
    assert shape.num_vertices == 46 and shape.dropped_nonfinite == 4 and shape.source_vertices == 50
    assert np.array_equal(shape.vertices, points[np.isfinite(points).all(axis=1)])


def test_faces_using_nan_vertices_are_dropped() -> None:
    data = (
        b"ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
        b"element face 2\nproperty list uchar int vertex_indices\nend_header\n"
        b"0 0 0\n1 0 0\nnan 1 0\n0 0 1\n3 0 1 2\n3 0 1 3\n"
    )
    shape = load(data, "ply")
    assert (shape.dropped_nonfinite, shape.dropped_faces, shape.source_faces) == (1, 1, 2)
    assert shape.faces is not None and shape.faces.tolist() == [[0, 1, 2]]
    assert shape.vertices.tolist() == [[0, 0, 0], [1, 0, 0], [0, 0, 1]]


def test_all_nan_is_empty() -> None:
    err = expect_error("empty_geometry", load, np.full((10, 3), np.nan))
    assert "NaN" in str(err)


@pytest.mark.parametrize("data", [np.zeros((0, 3)), [], b""])
def test_empty_input(data: Any) -> None:
    if isinstance(data, bytes):
        expect_error("empty_geometry", load, b"", "xyz")
    else:
        expect_error("empty_geometry", load, data)


def test_identical_points_are_degenerate() -> None:
    err = expect_error("degenerate_geometry", load, np.tile([[1.0, 2.0, 3.0]], (100, 1)))
    assert "zero extent" in str(err)


def test_two_distinct_points_are_too_few() -> None:
    expect_error("too_few_points", load, [[0, 0, 0], [1, 1, 1], [0, 0, 0]])


def test_absurd_coordinates_are_refused() -> None:
    expect_error("limit_exceeded", load, [[0, 0, 0], [1e300, 0, 0], [0, 1, 0]])


@pytest.mark.parametrize("bad", [[[1, 2]], [[1, 2, "x"]], np.zeros((4, 3, 2)), [[1, 2, 3], [4, 5]]])
def test_arrays_of_the_wrong_shape(bad: Any) -> None:
    expect_error("parse_error", load, bad)


# --- formats ----------------------------------------------------------------------------------


def test_bytes_without_format() -> None:
    err = expect_error("unsupported_format", load, b"v 0 0 0\n")
    assert "format" in str(err)


@pytest.mark.parametrize("name", ["model.fbx", "model.3mf", "noextension", "archive.zip"])
def test_unknown_extension(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    expect_error("unsupported_format", load, path)


def test_unknown_declared_format() -> None:
    expect_error("unsupported_format", load, b"solid x\nendsolid x\n", "dae")


def test_declared_format_overrides_extension(tmp_path: Path) -> None:
    path = tmp_path / "mesh.bin"
    path.write_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert load(path, format="OBJ").num_faces == 1


def test_upper_case_extension(tmp_path: Path) -> None:
    path = tmp_path / "CUBE.OBJ"
    path.write_bytes(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert load(path).format == "obj"


def test_content_that_does_not_match_the_format() -> None:
    ply = b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    expect_error("parse_error", load, ply + b"0 0 0\n1 0 0\n0 1 0\n" + bytes(200), "stl")
    expect_error("parse_error", load, b"\x00\x01\x02garbage", "ply")
    expect_error("parse_error", load, b"not json", "gltf")


def test_npy_with_pickled_objects_is_refused_without_unpickling() -> None:
    stream = io.BytesIO()
    np.save(stream, np.array([{"a": 1}, None, 3], dtype=object), allow_pickle=True)
    err = expect_error("parse_error", load, stream.getvalue(), "npy")
    assert "object" in str(err)


def test_npz_with_several_arrays_and_no_points_key() -> None:
    stream = io.BytesIO()
    np.savez(stream, a=np.zeros((5, 3)), b=np.ones((5, 3)))
    expect_error("parse_error", load, stream.getvalue(), "npz")


def test_pcd_compressed_is_unsupported() -> None:
    data = b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 3\nHEIGHT 1\nPOINTS 3\nDATA binary_compressed\n"
    expect_error("unsupported_format", load, data + bytes(64), "pcd")


def test_pcd_points_disagreeing_with_width_height() -> None:
    data = b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 3\nHEIGHT 2\nPOINTS 3\nDATA ascii\n0 0 0\n1 0 0\n0 1 0\n"
    expect_error("parse_error", load, data, "pcd")


def test_xyz_with_too_few_columns() -> None:
    expect_error("parse_error", load, b"0 0 0\n1 0\n0 1 0\n", "xyz")


def test_obj_face_with_out_of_range_index() -> None:
    expect_error("parse_error", load, b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "obj")


def test_obj_over_vertex_limit_is_refused_before_parsing() -> None:
    data = b"".join(b"v %d 0 0\n" % i for i in range(100))
    _small_alloc_error("limit_exceeded", data, "obj", Limits(max_vertices=50))


def test_byte_limit_for_bytes_and_paths(tmp_path: Path) -> None:
    data = b"0 0 0\n1 0 0\n0 1 0\n" * 100
    expect_error("limit_exceeded", load, data, "xyz", limits=Limits(max_bytes=1000))
    path = tmp_path / "big.xyz"
    path.write_bytes(data)
    expect_error("limit_exceeded", load, path, limits=Limits(max_bytes=1000))


def test_unsupported_source_type() -> None:
    expect_error("unsupported_format", load, 42)


def test_codes_are_stable_and_distinct() -> None:
    expected = {
        "unsupported_format",
        "parse_error",
        "empty_geometry",
        "degenerate_geometry",
        "too_few_points",
        "limit_exceeded",
        "external_reference",
        "unsupported_extension",
        "invalid_argument",
    }
    assert expected == ERROR_CODES


def test_error_to_dict_is_json_ready() -> None:
    err = expect_error("empty_geometry", load, np.zeros((0, 3)))
    assert json.loads(json.dumps(err.to_dict())) == {"code": "empty_geometry", "message": str(err)}


def _samples() -> dict[str, bytes]:
    """One small valid file per format, built here so the fuzz test needs no shared data."""
    mesh = trimesh.creation.icosphere(subdivisions=1)
    doc, blob = gltf_document(np.asarray(mesh.vertices), np.asarray(mesh.faces))
    cloud = np.asarray(mesh.vertices, dtype=np.float32)
    npy, npz = io.BytesIO(), io.BytesIO()
    np.save(npy, cloud)
    np.savez_compressed(npz, points=cloud)
    pcd_header = "FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\nWIDTH 42\nHEIGHT 1\nPOINTS 42\n"
    return {
        "stl": trimesh.exchange.stl.export_stl(mesh),
        "ply": trimesh.exchange.ply.export_ply(mesh, encoding="binary"),
        "obj": trimesh.exchange.obj.export_obj(mesh).encode(),
        "off": trimesh.exchange.off.export_off(mesh).encode(),
        "glb": glb_bytes(doc, blob),
        "gltf": gltf_bytes(doc),
        "pcd": (pcd_header + "DATA binary\n").encode() + cloud.tobytes(),
        "xyz": "\n".join(" ".join(map(str, row)) for row in cloud).encode(),
        "npy": npy.getvalue(),
        "npz": npz.getvalue(),
    }


@pytest.mark.parametrize("fmt", ["stl", "ply", "obj", "off", "glb", "gltf", "pcd", "xyz", "npy", "npz"])
def test_mangled_files_only_raise_geometry_errors(fmt: str) -> None:
    # Truncations, flipped bytes and inflated numbers: load may succeed or raise a GeometryError,
    # never a raw KeyError/IndexError/struct.error from a parser.
    data = _samples()[fmt]
    assert load(data, fmt).num_vertices > 0
    rng = np.random.default_rng(sum(fmt.encode()))
    for trial in range(40):
        mangled = bytearray(data)
        if trial % 3 == 0:
            mangled = mangled[: int(rng.integers(len(mangled)))]
        elif trial % 3 == 1:
            for at in rng.integers(len(mangled), size=int(rng.integers(1, 8))):
                mangled[at] = int(rng.integers(256))
        else:
            digits = [i for i, c in enumerate(mangled[:2000]) if 48 <= c <= 57] or [0]
            at = digits[int(rng.integers(len(digits)))]
            mangled[at : at + 1] = b"999999999"
        with contextlib.suppress(GeometryError):
            load(bytes(mangled), fmt)
