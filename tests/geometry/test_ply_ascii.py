"""ASCII PLY re-encoded as binary (crosspoint/geometry/ply_ascii.py) gives the mesh trimesh's own ASCII
reader gives, value for value; anything outside the plain case is left to trimesh."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import trimesh

from crosspoint.geometry import load, prepare
from crosspoint.geometry.limits import Limits
from crosspoint.geometry.meshes import flatten_scene
from crosspoint.geometry.ply_ascii import ascii_ply_as_binary
from crosspoint.geometry.shape import Shape, build_shape


def before_and_after(data: bytes) -> tuple[Shape, Shape]:
    """The Shape read_mesh gave before the fast path (trimesh's ASCII reader on the bytes) and now."""
    scene = trimesh.load_scene(io.BytesIO(data), file_type="ply", process=False, skip_materials=True)
    before = build_shape(*flatten_scene(scene, Limits(), "PLY file"), "ply", Limits())
    return before, load(data, "ply")


def assert_same_mesh(data: bytes) -> None:
    before, after = before_and_after(data)
    assert after.vertices.dtype == before.vertices.dtype
    assert np.array_equal(after.vertices, before.vertices)
    assert np.array_equal(np.signbit(after.vertices), np.signbit(before.vertices))  # -0.0 kept
    assert (after.faces is None) == (before.faces is None)
    if before.faces is not None:
        assert np.array_equal(after.faces, before.faces)


def ply(header_props: str, vertices: str, faces: str = "", face_count: int = 0, newline: str = "\n") -> bytes:
    rows = [r for r in vertices.strip().splitlines()]
    text = f"ply\nformat ascii 1.0\ncomment made by a test\nelement vertex {len(rows)}\n{header_props}"
    if face_count:
        text += f"element face {face_count}\nproperty list uchar int vertex_indices\n"
    text += "end_header\n" + "\n".join(rows) + "\n" + faces.strip() + ("\n" if faces else "")
    return text.replace("\n", newline).encode()


XYZ = "property float x\nproperty float y\nproperty float z\n"
SQUARE = "0 0 0\n1 0 0\n1 1 0\n0 1 0\n0.5 0.5 1e-2\n"


@pytest.mark.parametrize("name", ["bunny.ply", "points_ascii.ply"])
def test_shared_ascii_files(meshes_dir: Path, name: str) -> None:
    data = (meshes_dir / name).read_bytes()
    assert ascii_ply_as_binary(data) is not None  # the fast path is taken
    assert_same_mesh(data)


def test_bunny_prepares_identically(meshes_dir: Path) -> None:
    before, after = before_and_after((meshes_dir / "bunny.ply").read_bytes())
    (old, old_receipt), (new, new_receipt) = prepare(before, 1024, "y", 0), prepare(after, 1024, "y", 0)
    assert np.array_equal(old, new) and old_receipt.to_dict() == new_receipt.to_dict()


@pytest.mark.parametrize(
    "data",
    [
        ply(XYZ, SQUARE, "3 0 1 2\n3 0 2 3\n3 0 1 4", 3),
        ply(XYZ, SQUARE, "4 0 1 2 3\n4 0 1 4 3", 2),  # quads: trimesh splits them
        ply(XYZ, SQUARE, "3 0 1 2\n3 0 2 3", 2, newline="\r\n"),
        ply(XYZ, "-0 -0.0 +1\n1.5e-05 -2E+3 .5\n3. 7 -8\n1e17 1 2"),  # signs, exponents, no faces
        ply(XYZ + "property uchar red\nproperty double quality\n", "0 0 0 255 0.1\n1 0 0 7 1e-9\n0 1 0 0 -3"),
        ply("property int x\nproperty short y\nproperty double z\n", "1 2 3\n-4 5 6.25\n7 8 9", "3 0 1 2", 1),
        ply(XYZ, "  0 0 0  \n\t1 0 0\n0 1 0", "3 0 1 2", 1),  # stray spaces and tabs
    ],
)
def test_synthetic_files_match_trimesh(data: bytes) -> None:
    assert ascii_ply_as_binary(data) is not None
    assert_same_mesh(data)


@pytest.mark.parametrize(
    "data",
    [
        ply(XYZ, SQUARE, "3 0 1 2\n4 0 1 2 3", 2),  # triangles and quads: lists of two lengths
        ply(XYZ, "0 0\n0 1 0 0\n1 0 0"),  # a row split over lines
        ply(XYZ, "0 0 0\n1 0 0\n0 1 0 9"),  # rows of different widths
        ply(XYZ, "0 0 0\n1 0 nan\n0 1 0"),  # not a plain number
        ply(XYZ, "0 0 0\n1 0 1.2.3\n0 1 0"),  # a token strtod cannot read to its end
        ply(XYZ, "0 0 0\n1 0 0\n0 1 0") + b"5 5 5\n",  # more rows than declared
        b"ply\nformat binary_little_endian 1.0\nelement vertex 0\nproperty float x\nend_header\n",
    ],
)
def test_other_files_are_left_to_trimesh(data: bytes) -> None:
    assert ascii_ply_as_binary(data) is None
