"""Mesh formats through trimesh: OBJ, STL, PLY, OFF, GLB, glTF.

The bytes are always handed to trimesh as an in-memory stream with no resolver, so it cannot
open anything beside the file (OBJ `mtllib`, textures, glTF buffers), and with
`skip_materials=True`, so no texture image is ever decoded. `process=False` keeps the file's
vertices in file order: part labels are mapped back onto exactly these vertices.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import trimesh

from crosspoint.geometry import gltf, preflight
from crosspoint.geometry.errors import EmptyGeometryError, GeometryError, ParseError
from crosspoint.geometry.limits import Limits, check_limit
from crosspoint.geometry.ply_ascii import ascii_ply_as_binary

MESH_FORMATS = ("obj", "stl", "ply", "off", "glb", "gltf")

_PREFLIGHT: dict[str, Callable[[bytes, Limits], None]] = {
    "obj": preflight.check_obj,
    "stl": preflight.check_stl,
    "ply": preflight.check_ply,
    "off": preflight.check_off,
    "glb": lambda data, limits: gltf.check_gltf(data, "glb", limits),
    "gltf": lambda data, limits: gltf.check_gltf(data, "gltf", limits),
}


def _placed(vertices: np.ndarray, transform: np.ndarray) -> np.ndarray:
    verts = np.asarray(vertices, dtype=np.float64)
    if np.array_equal(transform, np.eye(4)):
        return verts.copy()  # keep the file's exact values (no -0.0 or rounding from a no-op)
    return verts @ transform[:3, :3].T + transform[:3, 3]


def _scene_parts(scene: trimesh.Scene) -> list[tuple[trimesh.parent.Geometry, np.ndarray]]:
    graph = scene.graph
    parts = []
    for node in graph.nodes_geometry:
        transform, name = graph[node]
        parts.append((scene.geometry[name], np.asarray(transform, dtype=np.float64)))
    if not parts:
        # Geometry that no node places (e.g. a glTF without scenes): take it as is.
        parts = [(geom, np.eye(4)) for geom in scene.geometry.values()]
    return parts


def flatten_scene(scene: trimesh.Scene, limits: Limits, source: str) -> tuple[np.ndarray, np.ndarray | None]:
    """One vertex array (+ faces) from every placed mesh, transforms applied.

    If the scene holds any triangles, point clouds and lines in it are ignored (they have no
    surface to sample); a scene of only point clouds gives their points and faces=None.
    """
    parts = _scene_parts(scene)
    meshes = [(g, t) for g, t in parts if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    clouds = [(g, t) for g, t in parts if isinstance(g, trimesh.PointCloud | trimesh.Trimesh)]
    chosen = meshes or clouds
    check_limit(len(chosen), limits.max_parts, "placed parts", source)
    check_limit(sum(len(g.vertices) for g, _ in chosen), limits.max_vertices, "vertices", source)
    if not chosen or not sum(len(g.vertices) for g, _ in chosen):
        raise EmptyGeometryError(f"the {source} holds no triangles and no points")
    vertices = np.concatenate([_placed(g.vertices, t) for g, t in chosen])
    if not meshes:
        return vertices, None
    check_limit(sum(len(g.faces) for g, _ in meshes), limits.max_faces, "faces", source)
    offsets = np.cumsum([0] + [len(g.vertices) for g, _ in meshes[:-1]])
    faces = np.concatenate(
        [np.asarray(g.faces, dtype=np.int64) + o for (g, _), o in zip(meshes, offsets, strict=True)]
    )
    return vertices, faces


def merge_identical_vertices(
    vertices: np.ndarray, faces: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Merge bit-identical vertices, first occurrence order kept (STL stores every corner per triangle)."""
    if faces is None or not len(vertices):
        return vertices, faces
    keys = np.ascontiguousarray(vertices + 0.0).view(np.dtype((np.void, vertices.dtype.itemsize * 3))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    return vertices[first[order]], rank[inverse.ravel()][faces]


def read_mesh(data: bytes, format: str, limits: Limits) -> tuple[np.ndarray, np.ndarray | None]:
    """Vertices (input frame) and triangles, or faces=None for a point-only file."""
    source = f"{format.upper()} file"
    _PREFLIGHT[format](data, limits)
    if format == "ply":
        data = ascii_ply_as_binary(data) or data  # same mesh, read ~10x faster (ply_ascii.py)
    try:
        scene = trimesh.load_scene(io.BytesIO(data), file_type=format, process=False, skip_materials=True)
        vertices, faces = flatten_scene(scene, limits, source)
    except (GeometryError, MemoryError):
        raise
    except Exception as exc:
        # trimesh raises whatever its parser hit (KeyError, IndexError, struct.error, ...).
        raise ParseError(f"the {source} cannot be read: {type(exc).__name__}: {str(exc)[:200]}") from exc
    if format == "stl":
        vertices, faces = merge_identical_vertices(vertices, faces)
    return vertices, faces
