"""glTF structure limits (node depth and count, meshes, accessors) and `extensionsRequired`, checked
on the JSON before any work: each refusal costs well under the seconds of CPU the walk used to."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from crosspoint.geometry import Limits, load
from tests.geometry.helpers import expect_error, glb_bytes, gltf_bytes, gltf_document

TRIANGLE = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def quick_error(code: str, data: bytes, fmt: str, limits: Limits | None = None) -> str:
    # CPU time of this process, not wall time: a loaded CI machine stretched a 0.3 s refusal past 1 s of
    # wall clock. Before the structure checks these inputs cost 8-20 s of CPU.
    started = time.process_time()
    error = expect_error(code, load, data, fmt, **({"limits": limits} if limits else {}))
    assert time.process_time() - started < 2.0
    return str(error)


def chain(length: int) -> dict[str, Any]:
    doc, _ = gltf_document(TRIANGLE)
    doc["nodes"] = [{"children": [i + 1]} for i in range(length - 1)] + [{"mesh": 0}]
    return doc


def test_a_deep_node_chain_is_refused_before_work() -> None:
    # 5,000 nested nodes burned 20 s of parse-worker CPU before the parse timeout.
    message = quick_error("limit_exceeded", gltf_bytes(chain(5000)), "gltf")
    assert "levels of nested nodes" in message
    assert load(gltf_bytes(chain(50)), "gltf").num_vertices == 3  # a normal hierarchy still loads


def test_node_cycles_are_refused() -> None:
    doc, _ = gltf_document(TRIANGLE)
    doc["nodes"] = [{"mesh": 0}, {"children": [2]}, {"children": [1]}]  # 1 -> 2 -> 1, one parent each
    assert "cycle" in quick_error("parse_error", gltf_bytes(doc), "gltf")


def test_object_counts_are_refused_before_work() -> None:
    doc, _ = gltf_document(TRIANGLE)
    doc["meshes"] = doc["meshes"] + [{"primitives": []}] * 100_000  # took 8 s
    assert "meshes" in quick_error("limit_exceeded", gltf_bytes(doc), "gltf")
    doc, _ = gltf_document(TRIANGLE)
    doc["accessors"] = doc["accessors"] * 50
    assert "accessors" in quick_error("limit_exceeded", gltf_bytes(doc), "gltf", Limits(max_objects=40))
    doc, _ = gltf_document(TRIANGLE)
    doc["nodes"] = doc["nodes"] + [{}] * 20
    quick_error("limit_exceeded", gltf_bytes(doc), "gltf", Limits(max_parts=10))


def test_required_extensions_are_honoured() -> None:
    # The file's fallback triangle was answered 200; the spec says a loader lacking a required extension refuses.
    doc, blob = gltf_document(TRIANGLE)
    doc["extensionsUsed"] = doc["extensionsRequired"] = ["KHR_draco_mesh_compression"]
    message = quick_error("unsupported_extension", glb_bytes(doc, blob), "glb")
    assert "KHR_draco_mesh_compression" in message
    doc["extensionsRequired"] = ["EXT_meshopt_compression", "KHR_texture_transform"]
    assert "KHR_texture_transform" not in quick_error("unsupported_extension", gltf_bytes(doc), "gltf")
    # Extensions that only touch materials or textures leave the points as they are.
    doc["extensionsUsed"] = doc["extensionsRequired"] = ["KHR_texture_transform", "KHR_materials_unlit"]
    assert load(gltf_bytes(doc), "gltf").num_vertices == 3
    doc["extensionsRequired"] = "KHR_draco_mesh_compression"
    quick_error("parse_error", gltf_bytes(doc), "gltf")
