"""The issue-19 memory repro, side by side: `crosspoint serve` with ONNX Runtime's CPU arena on (its
default, and ours before) and off (ours now); RSS of the gateway + parse workers after start, after a
few ordinary requests, and after each of two category-less `segment?num_points=4096` uploads of fuze.obj.

    python -m bench.memory
    python -m bench.memory --quick --repository <tiny repository>   # smoke run
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import httpx

from bench.gateway import serve_args, shape_calls
from bench.report import Report
from bench.servers import free_port, server_process
from bench.soak import REPO_ROOT, group_rss_bytes

MESH = Path("meshes") / "fuze.obj"


def measure(repository: Path, arena: bool, big_points: int, big_requests: int) -> dict[str, Any]:
    from crosspoint.data import shared_data_dir

    mesh = (shared_data_dir() / MESH).read_bytes()
    port = free_port()
    env = {
        "CROSSPOINT_MODEL_REPOSITORY": str(repository),
        "CROSSPOINT_RELOAD_INTERVAL_S": "0",
        "CROSSPOINT_ORT_PROVIDERS": '["CPUExecutionProvider"]',
        "CROSSPOINT_ORT_CPU_MEM_ARENA": "true" if arena else "false",
        "CROSSPOINT_LOG_LEVEL": "WARNING",
    }
    row: dict[str, Any] = {"arena": "on" if arena else "off"}
    mb = 2**20
    with server_process(serve_args(port), port, "/readyz", env=env) as server:
        row["start_mb"] = group_rss_bytes(server.pid) / mb
        with httpx.Client(base_url=server.url, timeout=600) as client:
            for call in shape_calls("embed", 2) + shape_calls("classify", 2) + shape_calls("segment", 2):
                response = client.post(
                    call.path, content=call.content, headers={"content-type": call.content_type}
                )
                response.raise_for_status()
            row["ordinary_mb"] = group_rss_bytes(server.pid) / mb
            for i in range(big_requests):
                response = client.post(
                    f"/v1/segment?num_points={big_points}&include_vertex_labels=false",
                    files={"file": (MESH.name, mesh)},
                )
                row[f"segment_{i + 1}_status"] = response.status_code
                row[f"segment_{i + 1}_mb"] = group_rss_bytes(server.pid) / mb
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repository", type=Path, default=REPO_ROOT / "model_repository")
    parser.add_argument("--points", type=int, default=4096)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1024 points, one large request")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/")
    args = parser.parse_args(argv)
    big_requests = 1 if args.quick else 2
    points = 1024 if args.quick else args.points
    report = Report("memory", argv)
    report.note(
        f"RSS of `crosspoint serve` (gateway + 2 parse workers) on {args.repository.name}/: after start, after 6 "
        f"ordinary JSON requests, after each of {big_requests} segment?num_points={points} uploads of "
        f"{MESH.name} without a category (16 model rows); ONNX Runtime's CPU arena on vs off."
    )
    rows = [measure(args.repository, arena, points, big_requests) for arena in (True, False)]
    columns = [
        ("arena", "ORT CPU arena", "{}"),
        ("start_mb", "start MB", "{:.0f}"),
        ("ordinary_mb", "ordinary MB", "{:.0f}"),
    ]
    for i in range(big_requests):
        columns.append((f"segment_{i + 1}_mb", f"after segment {i + 1} MB", "{:.0f}"))
    report.table("memory", "Gateway memory", rows, columns)
    report.write(args.out)


if __name__ == "__main__":
    main()
