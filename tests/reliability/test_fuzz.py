"""Seeded fuzzing of every upload format and of the JSON / query surface, against the real gateway.

Every answer must be JSON; an error must be a 4xx with `{"error": {"code", "message"}}` (no 5xx),
name no path or address of this machine and carry no traceback; no request may take 30 s. The default
suite runs a few cases per target; `pytest -m slow tests/reliability/test_fuzz.py` runs 10,000 in all
and also holds the gateway + parse workers under 2 GiB of resident memory.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.geometry.helpers import glb_bytes, gltf_bytes, gltf_document
from tests.server.helpers import MESHES, REPO_ROOT, npy_bytes

# The slow run's size; CROSSPOINT_FUZZ_CASES runs a stated smaller one on a shared machine.
SLOW_TOTAL = int(os.environ.get("CROSSPOINT_FUZZ_CASES", "10000"))
_OBSERVERS: list[Callable[[], None]] = []  # called after each answer (the slow test samples memory)
ENDPOINTS = ("embed", "classify", "segment", "embed:batch", "classify:batch", "segment:batch")
_LEAKS = (
    re.compile(r"(?<![\w.])/(?:work|tmp|home|root|usr|opt|var|etc|proc|dev|srv|mnt)/"),
    re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}:\d{2,5}"),
    re.compile(r"Traceback|File \""),
)


def _pcd(binary: bool) -> bytes:
    points = np.random.default_rng(1).standard_normal((40, 3)).astype(np.float32)
    head = (
        "# .PCD v0.7\nVERSION 0.7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nCOUNT 1 1 1\n"
        f"WIDTH {len(points)}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {len(points)}\n"
    )
    if binary:
        return (head + "DATA binary\n").encode() + points.tobytes()
    return (
        head + "DATA ascii\n" + "\n".join(" ".join(f"{v:.4f}" for v in p) for p in points) + "\n"
    ).encode()


def _npz() -> bytes:
    stream = io.BytesIO()
    np.savez(stream, points=np.random.default_rng(2).standard_normal((60, 3)))
    return stream.getvalue()


def seed_files() -> dict[str, list[bytes]]:
    """Small valid files of every format: the fuzzer mutates these (shared meshes where we have them)."""
    tetra = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3], [1, 2, 4]])
    doc, blob = gltf_document(tetra, faces)
    cloud = np.random.default_rng(3).standard_normal((50, 3))
    files: dict[str, list[bytes]] = {
        "gltf": [gltf_bytes(doc)],
        "glb": [glb_bytes(doc, blob)],
        "pcd": [_pcd(False), _pcd(True)],
        "npy": [npy_bytes(cloud.astype(np.float32))],
        "npz": [_npz()],
        "txt": ["\n".join(" ".join(map(str, p)) for p in cloud.round(4)).encode()],
    }
    shared = {
        "obj": ["cube.OBJ", "textured_tetrahedron.obj"],
        "stl": ["soup.stl", "20mm-xyz-cube.stl"],
        "ply": ["points_ascii.ply", "points_bin.ply"],
        "off": ["comments.off", "whitespace.off"],
        "glb": ["cube.glb"],
        "xyz": ["points_cloudcompare.xyz"],
    }
    for fmt, names in shared.items():
        files.setdefault(fmt, []).extend((MESHES / n).read_bytes() for n in names if (MESHES / n).is_file())
    files.setdefault("xyz", files["txt"])
    return files


def mutate(data: bytes, draw: Callable[[Any], Any]) -> bytes:
    """A few random edits of the kinds that break readers: flips, cuts, splices, huge or odd numbers."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "truncate", "duplicate", "number"]))
        at = draw(st.integers(0, max(0, len(out) - 1)))
        if kind == "flip" and out:
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del out[at : at + draw(st.integers(1, 64))]
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "truncate":
            del out[at:]
        elif kind == "duplicate":
            out[at:at] = out[at : at + draw(st.integers(1, 512))] * draw(st.integers(1, 8))
        else:
            number = draw(
                st.sampled_from([b"999999999", b"-1", b"nan", b"inf", b"1e308", b"0", b"4294967295"])
            )
            out[at:at] = number
    return bytes(out)


def query() -> st.SearchStrategy[dict[str, str]]:
    value = st.one_of(
        st.integers(-(2**40), 2**40).map(str),
        st.sampled_from(
            ["y", "z", "-x", "auto", "AUTO", "Chair", "airplane", "", "1e9", "nan", "true", "../x"]
        ),
        st.text(max_size=12),
    )
    keys = st.sampled_from(
        ["num_points", "seed", "up_axis", "top_k", "category", "format", "include_projection"]
    )
    return st.dictionaries(keys, value, max_size=4)


def check_answer(response: Any, elapsed: float) -> None:
    assert elapsed < 30.0, f"{elapsed:.1f} s"
    assert response.status_code < 500, response.text[:500]
    body = response.json()  # every answer is JSON
    if response.status_code >= 400:
        error = body["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str) and error["message"]
    text = response.text
    assert str(REPO_ROOT) not in text
    for pattern in _LEAKS:
        assert not pattern.search(text), pattern.search(text)
    for observe in _OBSERVERS:
        observe()


def post(client: TestClient, url: str, **kwargs: Any) -> None:
    started = time.monotonic()
    response = client.post(url, **kwargs)
    check_answer(response, time.monotonic() - started)


def fuzz_uploads(client: TestClient, examples: int) -> None:
    files = seed_files()

    @seed(19)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        fmt = data.draw(st.sampled_from(sorted(files)), label="format")
        upload = mutate(data.draw(st.sampled_from(files[fmt])), data.draw)
        endpoint = data.draw(st.sampled_from(ENDPOINTS))
        params = data.draw(query())
        name = data.draw(st.sampled_from([f"f.{fmt}", f"F.{fmt.upper()}", "noext", f"x.{fmt}.exe"]))
        field = "files" if endpoint.endswith(":batch") else "file"
        post(client, f"/v1/{endpoint}", params=params, files=[(field, (name, upload))])

    run()


def fuzz_json(client: TestClient, examples: int) -> None:
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=False),
        st.text(max_size=8),
    )
    documents = st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=40,
    )
    points = st.lists(
        st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=3, max_size=3), min_size=0, max_size=80
    )
    bodies = st.one_of(
        documents,
        points.map(lambda p: {"points": p}),
        st.lists(points.map(lambda p: {"points": p}), max_size=5).map(lambda items: {"items": items}),
    )

    @seed(19)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(body=bodies, endpoint=st.sampled_from(ENDPOINTS), params=query(),
           kind=st.sampled_from(["application/json", "text/plain", "application/x-npy", "application/octet-stream", ""]))  # fmt: skip
    def run(body: Any, endpoint: str, params: dict[str, str], kind: str) -> None:
        headers = {"Content-Type": kind} if kind else {}
        post(client, f"/v1/{endpoint}", params=params, content=json.dumps(body).encode(), headers=headers)
        started = time.monotonic()
        response = client.get(f"/v1/models/{quote(params.get('category', 'embed'), safe='')}")
        check_answer(response, time.monotonic() - started)

    run()


def test_fuzz_uploads(client: TestClient) -> None:
    fuzz_uploads(client, 40)


def test_fuzz_json_and_queries(client: TestClient) -> None:
    fuzz_json(client, 30)


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@pytest.mark.slow
def test_fuzz_10000_cases_within_memory(client: TestClient) -> None:
    peak = 0
    pool = client.app.state.pool  # type: ignore[attr-defined]

    def sample() -> None:
        nonlocal peak
        peak = max(peak, rss_bytes(os.getpid()) + sum(rss_bytes(pid) for pid in pool.pids))

    _OBSERVERS.append(sample)
    try:
        fuzz_uploads(client, SLOW_TOTAL * 7 // 10)
        fuzz_json(client, SLOW_TOTAL - SLOW_TOTAL * 7 // 10)
    finally:
        _OBSERVERS.remove(sample)
    print(f"fuzz: {SLOW_TOTAL} cases, gateway + workers RSS peak {peak / 2**20:.0f} MB")
    assert peak < 2 * 2**30, f"gateway + workers reached {peak / 2**20:.0f} MB"
    assert client.get("/readyz").status_code == 200
