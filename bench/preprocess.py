"""Preprocessing: a mesh or point-cloud file (bytes) -> N normalized points, per stage, p50.

    python -m bench.preprocess                 # meshes of 10k/100k/1M faces, clouds of 10k/1M points
    python -m bench.preprocess --repeats 41 --formats ply

Inputs are procedural, so any machine can rebuild them: a bumpy torus (a u x v grid of quads, two
triangles each, radius modulated by sin(5 theta) cos(3 phi)) with exactly 10,000 / 100,000 /
1,000,000 faces, written as binary PLY and binary STL by trimesh; point clouds of 10,000 / 1,000,000
points sampled on that surface, written as binary PLY and XYZ text. Stages are those of
`crosspoint.geometry.prepare`, run one by one from its public functions (the result is checked to be
bit-identical to `prepare`'s):
- parse: `load(bytes, format)` (the gateway's parse worker does the same);
- sample: face areas + area-weighted surface sampling of max(8 N, 4096) candidates (meshes only);
- dedupe: up-axis rotation, conditioning to the unit sphere in float32, exact-duplicate removal;
- fps: farthest point sampling (fpsample's bucket QuickFPS) to N;
- normalize: centroid + scale of the chosen points, the model frame, the final tie check.
`prepare` is also timed whole, interleaved with the staged run. Wall and CPU (process) time are both
reported: on a shared machine CPU time is the steadier measure of the work itself.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure import summarize
from bench.report import Report

STAGES = ("parse", "sample", "dedupe", "fps", "normalize")
TARGET_MS = 30.0  # 100k-face mesh -> 1024 points, p50


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "mesh" | "cloud"
    size: int  # faces or points
    format: str
    data: bytes


def bumpy_torus(faces: int) -> tuple[np.ndarray, np.ndarray]:
    """A closed torus grid with exactly `faces` triangles (faces/2 quads, about 2:1 around:across)."""
    quads = faces // 2
    across = max(3, round(float(np.sqrt(quads / 2))))
    while quads % across:
        across -= 1
    around = quads // across
    theta = 2 * np.pi * np.arange(around) / around
    phi = 2 * np.pi * np.arange(across) / across
    t, p = np.meshgrid(theta, phi, indexing="ij")
    r = 0.35 * (1 + 0.15 * np.sin(5 * t) * np.cos(3 * p))
    vertices = np.stack([(1 + r * np.cos(p)) * np.cos(t), r * np.sin(p), (1 + r * np.cos(p)) * np.sin(t)], -1)
    i, j = np.meshgrid(np.arange(around), np.arange(across), indexing="ij")
    a = i * across + j
    b = ((i + 1) % around) * across + j
    c = ((i + 1) % around) * across + (j + 1) % across
    d = i * across + (j + 1) % across
    tris = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return vertices.reshape(-1, 3), tris.astype(np.int64)


def build_cases(mesh_faces: list[int], cloud_points: list[int], formats: list[str]) -> list[Case]:
    import trimesh

    from crosspoint.geometry import Limits, sample_surface

    cases = []
    for faces in mesh_faces:
        vertices, tris = bumpy_torus(faces)
        mesh = trimesh.Trimesh(vertices, tris, process=False)
        for fmt in ("ply", "stl"):
            # STL stores 3 unshared vertices per face: 1M faces = 3M vertices, over the default limit.
            if fmt in formats and not (fmt == "stl" and 3 * faces > Limits().max_vertices):
                data = mesh.export(file_type=fmt)  # binary PLY / STL
                assert isinstance(data, bytes)
                cases.append(Case(f"mesh {faces:,} faces", "mesh", faces, fmt, data))
    base_v, base_f = bumpy_torus(100_000)
    for count in cloud_points:
        points = sample_surface(base_v, base_f, count, np.random.default_rng(count))
        if "ply" in formats:
            data = trimesh.PointCloud(points).export(file_type="ply")
            assert isinstance(data, bytes)
            cases.append(Case(f"cloud {count:,} points", "cloud", count, "ply", data))
        if "xyz" in formats:
            buffer = io.BytesIO()
            np.savetxt(buffer, points, fmt="%.6f")
            cases.append(Case(f"cloud {count:,} points", "cloud", count, "xyz", buffer.getvalue()))
    return cases


def staged(case: Case, num_points: int, seed: int) -> tuple[dict[str, tuple[float, float]], np.ndarray]:
    """`load` + `prepare` stage by stage: {stage: (wall s, cpu s)} and the points."""
    from crosspoint.geometry import load
    from crosspoint.geometry.normalize import apply_frame, normalize_unit_sphere, up_axis_rotation
    from crosspoint.geometry.prepare import DEFAULT_OVERSAMPLE, MIN_CANDIDATES
    from crosspoint.geometry.sampling import (
        MIN_RELATIVE_AREA,
        face_areas,
        farthest_point_sample,
        sample_surface,
        unique_row_indices,
    )

    times: dict[str, tuple[float, float]] = {}
    clock: list[float] = [time.perf_counter(), time.process_time()]

    def lap(stage: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        times[stage] = (wall - clock[0], cpu - clock[1])
        clock[:] = [wall, cpu]

    shape = load(case.data, case.format)
    lap("parse")
    candidates = shape.vertices
    if shape.faces is not None:
        areas = face_areas(shape.vertices, shape.faces)
        if float(areas.sum()) > MIN_RELATIVE_AREA:
            count = max(DEFAULT_OVERSAMPLE * num_points, MIN_CANDIDATES)
            rng = np.random.default_rng(seed)
            candidates = sample_surface(shape.vertices, shape.faces, count, rng, areas=areas)
    lap("sample")
    rotation = up_axis_rotation("+y")
    conditioned = normalize_unit_sphere(candidates @ rotation.T)[0].astype(np.float32)
    distinct = unique_row_indices(conditioned)
    lap("dedupe")
    count = min(num_points, int(distinct.size))
    chosen = candidates[distinct[farthest_point_sample(conditioned[distinct], count, seed)]]
    lap("fps")
    centroid = chosen.mean(axis=0)
    scale = float(np.sqrt(np.einsum("ij,ij->i", chosen - centroid, chosen - centroid)).max())
    points = apply_frame(chosen, centroid, rotation, scale)
    points = points[unique_row_indices(points)]
    lap("normalize")
    return times, points


def whole(case: Case, num_points: int, seed: int) -> tuple[float, float, np.ndarray]:
    """(wall s, cpu s) of `prepare` alone on an already loaded shape, and its points."""
    from crosspoint.geometry import load, prepare

    shape = load(case.data, case.format)
    wall, cpu = time.perf_counter(), time.process_time()
    points, _ = prepare(shape, num_points, "y", seed)
    return time.perf_counter() - wall, time.process_time() - cpu, points


def run_cases(cases: list[Case], num_points: int, repeats: Callable[[Case], int]) -> list[dict[str, Any]]:
    samples: dict[str, dict[str, list[float]]] = {c.name + c.format: {} for c in cases}
    rounds = max(repeats(c) for c in cases)
    for round_ in range(-1, rounds):  # round -1: warm-up (imports, page cache, allocator)
        order = cases[round_ % len(cases) :] + cases[: round_ % len(cases)] if round_ >= 0 else cases
        for case in order:
            if round_ >= repeats(case):
                continue
            seed = max(round_, 0)
            stage_times, points = staged(case, num_points, seed)
            wall, cpu, expected = whole(case, num_points, seed)
            if not np.array_equal(points, expected):
                raise AssertionError(f"{case.name} {case.format}: the staged run differs from prepare()")
            if round_ < 0:
                continue
            s = samples[case.name + case.format]
            for stage, (w, c) in stage_times.items():
                s.setdefault(stage, []).append(w)
                s.setdefault(stage + "_cpu", []).append(c)
            s.setdefault("prepare", []).append(wall)
            s.setdefault("prepare_cpu", []).append(cpu)
            s.setdefault("total", []).append(stage_times["parse"][0] + wall)
    rows = []
    for case in cases:
        s = samples[case.name + case.format]
        row: dict[str, Any] = {
            "input": case.name,
            "format": case.format,
            "bytes": len(case.data),
            "n": len(s["prepare"]),
        }
        for key, values in s.items():
            row[key + "_ms"] = summarize(values)["p50_ms"]
        row["prepare_p99_ms"] = summarize(s["prepare"])["p99_ms"]
        row["total_p99_ms"] = summarize(s["total"])["p99_ms"]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-points", type=int, default=1024)
    parser.add_argument("--mesh-faces", type=int, nargs="+", default=None, help="10000 100000 1000000")
    parser.add_argument("--cloud-points", type=int, nargs="+", default=None, help="10000 1000000")
    parser.add_argument("--formats", nargs="+", default=["ply", "stl", "xyz"], choices=["ply", "stl", "xyz"])
    parser.add_argument("--repeats", type=int, default=21, help="rounds below 500k elements (5 above)")
    parser.add_argument("--quick", action="store_true", help="smoke run: small inputs, two rounds")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.mesh_faces = args.mesh_faces or [10_000]
        args.cloud_points = args.cloud_points or [10_000]
        args.repeats = 2
    mesh_faces = args.mesh_faces or [10_000, 100_000, 1_000_000]
    cloud_points = args.cloud_points or [10_000, 1_000_000]

    report = Report("preprocess", argv)
    cases = build_cases(mesh_faces, cloud_points, args.formats)
    big = max(2, min(5, args.repeats))
    rows = run_cases(cases, args.num_points, lambda c: args.repeats if c.size < 500_000 else big)
    report.note(
        f"Inputs: procedural bumpy torus meshes ({', '.join(f'{f:,}' for f in mesh_faces)} faces; binary PLY "
        f"and binary STL from trimesh) and points sampled on it ({', '.join(f'{p:,}' for p in cloud_points)}; "
        f"binary PLY and XYZ text) -> {args.num_points} points, seed = round. Stages as in "
        "`crosspoint.geometry.prepare` (see the script's docstring), checked bit-identical to it. "
        f"{args.repeats} rounds ({big} for inputs of 500k+ elements) after a warm-up, inputs interleaved; "
        "p50 in ms. `prepare` = the whole function on a loaded shape (what the target measures); "
        "`total` = parse + prepare. A 1M-face binary STL is not run: it holds 3M (unshared) vertices, over "
        "`Limits().max_vertices` = 2M, and is 50 MB, over the gateway's 32 MiB body limit."
    )
    columns = [
        ("input", "input", "{}"),
        ("format", "format", "{}"),
        ("bytes", "file bytes", "{:,}"),
        ("parse_ms", "parse", "{:.1f}"),
        ("sample_ms", "sample", "{:.1f}"),
        ("dedupe_ms", "dedupe", "{:.1f}"),
        ("fps_ms", "fps", "{:.1f}"),
        ("normalize_ms", "normalize", "{:.2f}"),
        ("prepare_ms", "prepare", "{:.1f}"),
        ("prepare_cpu_ms", "prepare CPU", "{:.1f}"),
        ("prepare_p99_ms", "prepare p99", "{:.1f}"),
        ("total_ms", "total", "{:.1f}"),
        ("total_p99_ms", "total p99", "{:.1f}"),
        ("n", "runs", "{}"),
    ]
    report.table("stages", f"Wall-clock p50 per stage (ms), to {args.num_points} points", rows, columns)
    target = [r for r in rows if r["input"] == "mesh 100,000 faces"]
    for row in target:
        met = row["prepare_ms"] <= TARGET_MS
        report.note(
            f"Target (100k-face mesh -> {args.num_points} points <= {TARGET_MS:.0f} ms p50), {row['format']}: "
            f"prepare {row['prepare_ms']:.1f} ms wall / {row['prepare_cpu_ms']:.1f} ms CPU -> "
            f"{'met' if met else 'MISSED'}; with parsing the file, {row['total_ms']:.1f} ms."
        )
        row["target_met"] = met
    report.data["target_ms"] = TARGET_MS
    report.write(args.out)


if __name__ == "__main__":
    main()
