"""Shared-data location and small geometry builders for the geometry tests.

The real files live in ../shared/data next to the repository (override with
CROSSPOINT_SHARED_DATA); tests that need them skip cleanly when they are absent.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crosspoint.geometry import GeometryError


def shared_data_dir() -> Path:
    override = os.environ.get("CROSSPOINT_SHARED_DATA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


SHARED_DATA = shared_data_dir()
MESHES_DIR = SHARED_DATA / "meshes"
MODELNET_NPZ = SHARED_DATA / "modelnet40_partial" / "modelnet40_partial_2048.npz"


def mesh_file_names() -> list[str]:
    """Every loadable-looking file in shared/data/meshes (sidecars .mtl/.bin are not uploads)."""
    if not MESHES_DIR.is_dir():
        return []
    return sorted(p.name for p in MESHES_DIR.iterdir() if p.suffix.lower() not in (".mtl", ".bin"))


def require_meshes() -> Path:
    if not MESHES_DIR.is_dir():
        pytest.skip(f"shared meshes not found at {MESHES_DIR} (set CROSSPOINT_SHARED_DATA)")
    return MESHES_DIR


def expect_error(code: str, func: Any, *args: Any, **kwargs: Any) -> GeometryError:
    """Call and require a GeometryError with this code (not just any exception)."""
    with pytest.raises(GeometryError) as info:
        func(*args, **kwargs)
    assert info.value.code == code, f"expected {code}, got {info.value.code}: {info.value}"
    assert str(info.value), "an error must say what was wrong"
    return info.value


def asymmetric_mesh() -> tuple[np.ndarray, np.ndarray]:
    """A lumpy closed mesh with no symmetry (so FPS and normalization have no ties to hide behind)."""
    import trimesh

    sphere = trimesh.creation.icosphere(subdivisions=3)
    v = sphere.vertices * (
        1.0 + 0.3 * np.sin(3.0 * sphere.vertices[:, :1]) + 0.2 * sphere.vertices[:, 1:2] ** 2
    )
    v = v * np.array([1.0, 1.7, 0.6]) + np.array([0.3, -0.2, 0.1])
    return np.asarray(v, dtype=np.float64), np.asarray(sphere.faces, dtype=np.int64)


def gltf_document(
    positions: np.ndarray,
    indices: np.ndarray | None = None,
    *,
    mode: int = 4,
    translation: tuple[float, float, float] | None = None,
    uri: str | None = "embed",
) -> tuple[dict[str, Any], bytes]:
    """A minimal glTF 2.0 document and its single buffer (embedded as a data: URI by default)."""
    pos = np.ascontiguousarray(positions, dtype=np.float32)
    blob = pos.tobytes()
    accessors: list[dict[str, Any]] = [
        {"bufferView": 0, "componentType": 5126, "count": len(pos), "type": "VEC3"}
    ]
    views: list[dict[str, Any]] = [{"buffer": 0, "byteOffset": 0, "byteLength": len(blob)}]
    primitive: dict[str, Any] = {"attributes": {"POSITION": 0}, "mode": mode}
    if indices is not None:
        idx = np.ascontiguousarray(indices, dtype=np.uint32).ravel().tobytes()
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(idx)})
        accessors.append({"bufferView": 1, "componentType": 5125, "count": len(idx) // 4, "type": "SCALAR"})
        primitive["indices"] = 1
        blob += idx
    buffer: dict[str, Any] = {"byteLength": len(blob)}
    if uri == "embed":
        buffer["uri"] = "data:application/octet-stream;base64," + base64.b64encode(blob).decode()
    elif uri is not None:
        buffer["uri"] = uri
    node: dict[str, Any] = {"mesh": 0}
    if translation is not None:
        node["translation"] = list(translation)
    doc = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [node],
        "meshes": [{"primitives": [primitive]}],
        "buffers": [buffer],
        "bufferViews": views,
        "accessors": accessors,
    }
    return doc, blob


def gltf_bytes(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def glb_bytes(doc: dict[str, Any], blob: bytes) -> bytes:
    """Pack a document (buffer 0 without URI) and its binary chunk as GLB."""
    doc = json.loads(json.dumps(doc))
    doc["buffers"][0].pop("uri", None)
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    blob += b"\x00" * (-len(blob) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(blob), 0x004E4942) + blob
    return b"glTF" + struct.pack("<II", 2, 12 + len(body)) + body
