"""Soak: N closed-loop clients x T minutes of mixed tasks against `crosspoint serve`, with the resident
memory of the gateway and its parse workers sampled all along.

    python -m bench.soak                                   # 32 clients x 10 minutes (the issue's size)
    python -m bench.soak --clients 8 --minutes 3           # a stated smaller run on a shared machine

Tasks, round robin over real shapes: embed, classify, segment with its category (JSON bodies of raw
ModelNet40 / ShapeNetPart shapes), segment without a category (16 rows), embed:batch of 4, and a
multipart mesh upload (bunny.ply) to classify. Reports errors by status, p50/p99 of OK answers, and RSS
(gateway + workers, the server's process group) sampled all along, after warm-up (the first 2 minutes by
default) against warm-up: peak vs peak and 1-minute floors (memory kept between requests); "flat": both
within 10%.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.gateway import MESH, serve_args, shape_calls
from bench.inputs import raw_shapes
from bench.loadgen import Call, json_call, multipart_call, run_phase
from bench.report import Report
from bench.servers import free_port, server_process

REPO_ROOT = Path(__file__).resolve().parents[1]


def group_rss_bytes(group: int) -> int:
    """Resident memory of every process in a process group (the gateway and its parse workers)."""
    total = 0
    page = 4096
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            fields = text[text.rindex(")") + 2 :].split()
            if int(fields[2]) == group:
                total += int((stat.parent / "statm").read_text().split()[1]) * page
        except (OSError, ValueError):  # the process exited meanwhile
            continue
    return total


class RssSampler(threading.Thread):
    def __init__(self, group: int, every_s: float) -> None:
        super().__init__(daemon=True)
        self.group, self.every_s = group, every_s
        self.samples: list[tuple[float, int]] = []
        self.started_at = time.monotonic()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append((time.monotonic() - self.started_at, group_rss_bytes(self.group)))
            self.halt.wait(self.every_s)


def rss_summary(samples: list[tuple[float, int]], warm_at: float, window_s: float = 60.0) -> dict[str, Any]:
    """RSS after warm-up against RSS during it. Warm-up is the first `warm_at` seconds (every task has
    run many times and the largest requests have been met). Single samples swing with the requests in
    flight (their inputs and per-call buffers), so two levels are compared: the peak (max after warm-up
    vs max during it) and the floor, what is kept between requests (min of warm-up's last `window_s`
    vs the highest min of any later `window_s` window). Flat: both within 10%."""
    mb = 2**20
    end = samples[-1][0]
    warm_at = min(warm_at, max(0.0, end - window_s))  # a short run still has a window after warm-up
    during = [rss for t, rss in samples if t <= warm_at] or [samples[0][1]]
    after = [rss for t, rss in samples if t > warm_at] or [samples[-1][1]]
    warm_floor = min([rss for t, rss in samples if warm_at - window_s <= t <= warm_at] or during)
    floors = [
        min(window)
        for start in np.arange(warm_at, end - window_s / 2, window_s / 2)
        if (window := [rss for t, rss in samples if start < t <= start + window_s])
    ] or [min(after)]
    return {
        "warmup_s": warm_at,
        "rss_start_mb": samples[0][1] / mb,
        "rss_warm_peak_mb": max(during) / mb,
        "rss_warm_floor_mb": warm_floor / mb,
        "rss_after_peak_mb": max(after) / mb,
        "rss_after_floor_max_mb": max(floors) / mb,
        "rss_end_floor_mb": floors[-1] / mb,
        "rss_peak_mb": max(rss for _, rss in samples) / mb,
        "growth_peak_pct": 100.0 * (max(after) - max(during)) / max(during),
        "growth_floor_pct": 100.0 * (max(floors) - warm_floor) / warm_floor,
        "rss_samples_mb": [(round(t, 1), round(rss / mb, 1)) for t, rss in samples],
    }


def mixed_calls(shapes: int) -> list[Call]:
    embed = shape_calls("embed", shapes)
    classify = shape_calls("classify", shapes)
    segment = shape_calls("segment", shapes)
    parts = raw_shapes("segment", shapes)
    no_category = [
        json_call("/v1/segment", json.dumps({"points": np.round(s.points, 6).tolist()}).encode())
        for s in parts
    ]
    batch = [
        json_call(
            "/v1/embed:batch",
            json.dumps({"items": [{"points": np.round(s.points, 6).tolist()} for s in group]}).encode(),
        )
        for group in [raw_shapes("embed", 4)]
    ]
    from crosspoint.data import shared_data_dir

    mesh = [multipart_call("/v1/classify", MESH.name, (shared_data_dir() / MESH).read_bytes())]
    calls: list[Call] = []
    for i in range(shapes):
        calls += [embed[i], classify[i], segment[i], embed[(i + 1) % shapes], classify[(i + 1) % shapes]]
        if i % 2 == 0:
            calls += [no_category[i], batch[0], mesh[0]]
    return calls


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup-minutes", type=float, default=2.0, help="'after warm-up' starts here")
    parser.add_argument("--sample-s", type=float, default=2.0, help="RSS sampling period")
    parser.add_argument("--shapes", type=int, default=8, help="distinct real shapes per task")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--repository", type=Path, default=REPO_ROOT / "model_repository")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 clients x 0.2 minutes")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.minutes, args.shapes, args.sample_s = 2, 0.2, 2, 0.5
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    env = {
        "CROSSPOINT_MODEL_REPOSITORY": str(args.repository),
        "CROSSPOINT_RELOAD_INTERVAL_S": "0",
        "CROSSPOINT_ORT_INTRA_OP_THREADS": str(args.threads),
        "CROSSPOINT_ORT_PROVIDERS": '["CPUExecutionProvider"]',
        "CROSSPOINT_LOG_LEVEL": "WARNING",
    }
    calls = mixed_calls(args.shapes)
    with server_process(serve_args(port), port, "/readyz", env=env) as server:
        models = httpx.get(server.url + "/v1/models", timeout=30).json()["models"]
        runtimes = {m["name"]: f"{m.get('runtime', '?')} {m.get('precision', '?')}" for m in models}
        sampler = RssSampler(server.pid, args.sample_s)
        sampler.start()
        seconds = args.minutes * 60
        try:
            phase = run_phase(server.url, calls, args.clients, 10**9, seconds)
        finally:
            sampler.halt.set()
            sampler.join()
    row = phase.summary()
    row.update(
        clients=args.clients,
        minutes=args.minutes,
        runtimes=runtimes,
        **rss_summary(sampler.samples, args.warmup_minutes * 60),
    )
    return row


COLUMNS = [
    ("clients", "clients", "{:d}"),
    ("minutes", "minutes", "{:.1f}"),
    ("requests", "requests", "{:d}"),
    ("ok", "OK", "{:d}"),
    ("errors", "errors", "{:}"),
    ("req_per_s", "req/s", "{:.1f}"),
    ("p50_ms", "p50 ms", "{:.0f}"),
    ("p99_ms", "p99 ms", "{:.0f}"),
    ("rss_start_mb", "RSS start MB", "{:.0f}"),
    ("rss_warm_peak_mb", "warm-up peak MB", "{:.0f}"),
    ("rss_after_peak_mb", "peak after MB", "{:.0f}"),
    ("growth_peak_pct", "peak growth %", "{:+.1f}"),
    ("rss_warm_floor_mb", "floor at warm-up end MB", "{:.0f}"),
    ("rss_after_floor_max_mb", "max floor after MB", "{:.0f}"),
    ("rss_end_floor_mb", "last floor MB", "{:.0f}"),
    ("growth_floor_pct", "floor growth %", "{:+.1f}"),
]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = Report("soak", argv)
    report.note(
        f"Soak: `crosspoint serve` on {args.repository.name}/ ({args.threads} ONNX Runtime threads, 2 parse "
        "workers, each model on the runtime its precision.json chose (`runtimes`), glibc mmap threshold "
        f"{os.environ.get('CROSSPOINT_MALLOC_MMAP_THRESHOLD_BYTES', 'pinned (default)')}, defaults "
        f"otherwise), {args.clients} closed-loop clients for {args.minutes:g} minutes of mixed "
        "tasks (embed, classify, segment with and without category, embed:batch of 4, a bunny.ply upload); RSS "
        f"of the server's process group sampled every {args.sample_s:g} s. Warm-up: the first "
        f"{args.warmup_minutes:g} minutes. Peak growth: max RSS after warm-up vs max during it; floor "
        "growth: the highest 1-minute floor (min) after warm-up vs the floor of warm-up's last minute."
    )
    row = run(args)
    report.table("soak", "Soak", [row], COLUMNS)
    report.write(args.out)


if __name__ == "__main__":
    main()
