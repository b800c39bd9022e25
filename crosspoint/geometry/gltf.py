"""glTF / GLB checks, done on the JSON before trimesh reads any buffer.

Order matters: object counts and required extensions come first (cheap, before any walk), then
external URIs are refused (open3d followed a `.gltf` URI to /etc/passwd in
a probe, and a URI might name a device or a huge file), then every buffer, bufferView and
accessor size is checked against the bytes actually present, then the vertex/face totals the
scene would build (meshes x node instances) against `Limits`.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from crosspoint.geometry.errors import ExternalReferenceError, ParseError, UnsupportedExtensionError
from crosspoint.geometry.limits import Limits, check_limit, human_bytes

_GLB_MAGIC = b"glTF"
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942
_COMPONENT_BYTES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}
_TYPE_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_MODE_TRIANGLES, _MODE_STRIP, _MODE_FAN = 4, 5, 6
# Required extensions that leave positions and indices as plain accessors (materials, textures, lights):
# a file that requires one of these still gives the right points. Any other required extension (Draco or
# meshopt compression, quantization, GPU instancing) changes what the geometry is, and the glTF spec says a
# loader without it must refuse the file rather than read its fallback.
_HARMLESS_EXTENSION_PREFIXES = ("KHR_materials_", "KHR_texture_", "EXT_texture_", "KHR_lights_")
# Top-level arrays and their bound: objects trimesh builds one by one.
_COUNTED = ("nodes", "meshes", "accessors", "bufferViews", "buffers", "materials", "textures", "images")


def _parse_glb(data: bytes) -> tuple[Any, int | None]:
    """Return (JSON document, BIN chunk length or None)."""
    if len(data) < 20 or data[:4] != _GLB_MAGIC:
        raise ParseError("the GLB file does not start with the 'glTF' magic and a 12-byte header")
    version, length = struct.unpack_from("<II", data, 4)
    if version != 2:
        raise ParseError(f"the GLB file is version {version}; only glTF 2.0 is supported")
    if length > len(data):
        raise ParseError(
            f"the GLB header declares {human_bytes(length)} but the file holds {human_bytes(len(data))}"
        )
    json_len, json_type = struct.unpack_from("<II", data, 12)
    if json_type != _CHUNK_JSON or 20 + json_len > length:
        raise ParseError("the GLB file's first chunk is not a complete JSON chunk")
    doc = _parse_json(data[20 : 20 + json_len], "GLB")
    bin_len = None
    offset = 20 + json_len
    if offset + 8 <= length:
        chunk_len, chunk_type = struct.unpack_from("<II", data, offset)
        if chunk_type == _CHUNK_BIN:
            if offset + 8 + chunk_len > length:
                raise ParseError(
                    f"the GLB binary chunk declares {human_bytes(chunk_len)} but only "
                    f"{human_bytes(length - offset - 8)} follow"
                )
            bin_len = chunk_len
    return doc, bin_len


def _parse_json(raw: bytes, source: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8").rstrip(" \x00"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ParseError(f"the {source} JSON cannot be read: {exc}") from exc


def check_structure(doc: dict[str, Any], limits: Limits) -> None:
    """Object counts and required extensions, checked before anything walks the document."""
    for key in _COUNTED:
        value = doc.get(key)
        if isinstance(value, list):
            limit = limits.max_parts if key in ("nodes", "meshes") else limits.max_objects
            check_limit(len(value), limit, key, "glTF file")
    required = doc.get("extensionsRequired", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        raise ParseError("the glTF 'extensionsRequired' entry is not a list of names")
    unknown = [name for name in required if not name.startswith(_HARMLESS_EXTENSION_PREFIXES)]
    if unknown:
        raise UnsupportedExtensionError(
            f"the glTF file requires the extension(s) {', '.join(n[:64] for n in unknown[:5])}, which this "
            "reader does not support; export it without them (e.g. without Draco or meshopt compression)"
        )


def refuse_external_uris(doc: Any) -> None:
    """Any `uri` that is not an embedded `data:` URI, anywhere in the document, is refused."""
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "uri" and not (isinstance(value, str) and value[:5].lower() == "data:"):
                    raise ExternalReferenceError(
                        f"the glTF file refers to an external file {str(value)[:200]!r} (at {where or '/'}); "
                        "only self-contained files are accepted: GLB, or glTF with data: URIs"
                    )
                stack.append((value, f"{where}/{key}"))
        elif isinstance(node, list):
            stack.extend((value, f"{where}/{i}") for i, value in enumerate(node))


def _data_uri_size(uri: str, where: str) -> int:
    head, sep, payload = uri.partition(",")
    if not sep or not head.lower().endswith(";base64"):
        raise ParseError(f"{where} is a data: URI that is not base64; only base64 data: URIs are supported")
    payload = payload.strip()
    return len(payload) * 3 // 4 - (len(payload) - len(payload.rstrip("=")))


def _get_int(obj: Any, key: str, where: str, default: int | None = None) -> int:
    value = obj.get(key, default) if isinstance(obj, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ParseError(f"the glTF {where} has no valid '{key}' (found {value!r})")
    return value


def _items(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ParseError(f"the glTF '{key}' entry is not a list of objects")
    return value


def _check_buffers(doc: dict[str, Any], bin_len: int | None) -> list[int]:
    sizes = []
    for i, buf in enumerate(_items(doc, "buffers")):
        declared = _get_int(buf, "byteLength", f"buffer {i}")
        if "uri" in buf:
            held = _data_uri_size(buf["uri"], f"glTF buffer {i}")
        elif i == 0 and bin_len is not None:
            held = bin_len
        else:
            raise ParseError(f"the glTF buffer {i} has no data (no URI and no GLB binary chunk)")
        if declared > held:
            raise ParseError(
                f"the glTF buffer {i} declares {human_bytes(declared)} but holds {human_bytes(held)}"
            )
        sizes.append(declared)
    return sizes


def _check_views(doc: dict[str, Any], buffer_sizes: list[int]) -> list[tuple[int, int]]:
    """Return (byteLength, byteStride or 0) per bufferView."""
    views = []
    for i, view in enumerate(_items(doc, "bufferViews")):
        where = f"bufferView {i}"
        buf = _get_int(view, "buffer", where)
        if buf >= len(buffer_sizes):
            raise ParseError(f"the glTF {where} uses buffer {buf}, which does not exist")
        end = _get_int(view, "byteOffset", where, 0) + _get_int(view, "byteLength", where)
        if end > buffer_sizes[buf]:
            raise ParseError(
                f"the glTF {where} ends at byte {end} but buffer {buf} holds {human_bytes(buffer_sizes[buf])}"
            )
        stride = _get_int(view, "byteStride", where, 0)
        views.append((_get_int(view, "byteLength", where), stride))
    return views


def _check_accessors(doc: dict[str, Any], views: list[tuple[int, int]], limits: Limits) -> list[int]:
    """Return each accessor's count once its bytes are known to exist."""
    counts = []
    for i, acc in enumerate(_items(doc, "accessors")):
        where = f"accessor {i}"
        if "sparse" in acc:
            raise ParseError(f"the glTF {where} is sparse; sparse accessors are not supported")
        count = _get_int(acc, "count", where)
        kind, comp = acc.get("type"), acc.get("componentType")
        if kind not in _TYPE_COMPONENTS or comp not in _COMPONENT_BYTES:
            raise ParseError(f"the glTF {where} has an unknown type {kind!r} / componentType {comp!r}")
        item = _TYPE_COMPONENTS[kind] * _COMPONENT_BYTES[comp]
        if "bufferView" in acc:
            index = _get_int(acc, "bufferView", where)
            if index >= len(views):
                raise ParseError(f"the glTF {where} uses bufferView {index}, which does not exist")
            length, stride = views[index]
            needed = (
                _get_int(acc, "byteOffset", where, 0) + (stride or item) * (count - 1) + item if count else 0
            )
            if needed > length:
                raise ParseError(
                    f"the glTF {where} declares {count} {kind} items, which needs {human_bytes(needed)}, "
                    f"but its bufferView holds {human_bytes(length)}"
                )
        else:
            # No bufferView means trimesh allocates `count` zeros: bound it by the limits instead.
            check_limit(count, limits.max_elements, "items in one buffer-less accessor", "glTF file")
        counts.append(count)
    return counts


def _mesh_totals(doc: dict[str, Any], counts: list[int]) -> list[tuple[int, int, int]]:
    """(vertices, triangles, primitives) per mesh, from accessor counts."""

    def count_of(index: Any, where: str) -> int:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(counts):
            raise ParseError(f"the glTF {where} uses accessor {index!r}, which does not exist")
        return counts[index]

    totals = []
    for m, mesh in enumerate(_items(doc, "meshes")):
        prims = mesh.get("primitives", [])
        if not isinstance(prims, list) or not all(isinstance(p, dict) for p in prims):
            raise ParseError(f"the glTF mesh {m} has no list of primitives")
        verts = tris = 0
        for p, prim in enumerate(prims):
            attrs = prim.get("attributes", {})
            if not isinstance(attrs, dict):
                raise ParseError(f"the glTF mesh {m} primitive {p} has invalid attributes")
            n = count_of(attrs["POSITION"], f"mesh {m} primitive {p}") if "POSITION" in attrs else 0
            corners = count_of(prim["indices"], f"mesh {m} primitive {p}") if "indices" in prim else n
            mode = prim.get("mode", _MODE_TRIANGLES)
            verts += n
            if mode == _MODE_TRIANGLES:
                tris += corners // 3
            elif mode in (_MODE_STRIP, _MODE_FAN):
                tris += max(corners - 2, 0)
        totals.append((verts, tris, len(prims)))
    return totals


def _check_depth(nodes: list[dict[str, Any]], parent: dict[int, int], max_depth: int) -> None:
    """Level by level from the roots (nodes without a parent); a node never reached is on a cycle."""
    frontier = [i for i in range(len(nodes)) if i not in parent]
    reached, level = 0, 0
    while frontier:
        level += 1
        check_limit(level, max_depth, "levels of nested nodes", "glTF file")
        reached += len(frontier)
        frontier = [child for i in frontier for child in nodes[i].get("children", [])]
    if reached < len(nodes):
        raise ParseError("the glTF node graph has a cycle; it must be a tree")


def _scene_mesh_instances(doc: dict[str, Any], num_meshes: int, max_depth: int) -> list[int]:
    """Mesh index of every node instance in the scene trimesh loads (the node graph must be a tree,
    at most `max_depth` nodes deep)."""
    nodes = _items(doc, "nodes")
    parent: dict[int, int] = {}
    for i, node in enumerate(nodes):
        children = node.get("children", [])
        if not isinstance(children, list):
            raise ParseError(f"the glTF node {i} has invalid children")
        for child in children:
            if isinstance(child, bool) or not isinstance(child, int) or not 0 <= child < len(nodes):
                raise ParseError(f"the glTF node {i} has a child {child!r} that does not exist")
            if child in parent:
                # A DAG would be instanced once per path: exponential growth from a small file.
                raise ParseError(f"the glTF node {child} has two parents; the node graph must be a tree")
            parent[child] = i
    _check_depth(nodes, parent, max_depth)
    scenes = _items(doc, "scenes")
    if not scenes:
        return list(range(num_meshes))
    index = doc.get("scene", 0)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(scenes):
        raise ParseError(f"the glTF default scene {index!r} does not exist")
    roots = scenes[index].get("nodes", [])
    if not isinstance(roots, list):
        raise ParseError("the glTF scene's 'nodes' entry is not a list")
    stack = list(roots)
    seen: set[int] = set()
    instances = []
    while stack:
        i = stack.pop()
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(nodes) or i in seen:
            raise ParseError(f"the glTF scene lists node {i!r} twice or it does not exist")
        seen.add(i)
        if "mesh" in nodes[i]:
            mesh = _get_int(nodes[i], "mesh", f"node {i}")
            if mesh >= num_meshes:
                raise ParseError(f"the glTF node {i} uses mesh {mesh}, which does not exist")
            instances.append(mesh)
        stack.extend(nodes[i].get("children", []))
    return instances


def check_gltf(data: bytes, format: str, limits: Limits) -> None:
    """Refuse external URIs, inconsistent sizes, and scenes over the limits; reads no buffer data."""
    if format == "glb":
        doc, bin_len = _parse_glb(data)
    else:
        doc, bin_len = _parse_json(data, "glTF"), None
    if not isinstance(doc, dict):
        raise ParseError("the glTF JSON is not an object")
    check_structure(doc, limits)
    refuse_external_uris(doc)
    views = _check_views(doc, _check_buffers(doc, bin_len))
    counts = _check_accessors(doc, views, limits)
    totals = _mesh_totals(doc, counts)
    instances = _scene_mesh_instances(doc, len(totals), limits.max_node_depth)
    check_limit(len(doc.get("nodes", [])), limits.max_parts, "nodes", "glTF file")
    check_limit(sum(totals[m][2] for m in instances), limits.max_parts, "placed primitives", "glTF scene")
    check_limit(sum(totals[m][0] for m in instances), limits.max_vertices, "placed vertices", "glTF scene")
    check_limit(sum(totals[m][1] for m in instances), limits.max_faces, "placed triangles", "glTF scene")
