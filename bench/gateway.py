"""The gateway end to end on loopback under concurrent clients, against model-only throughput at the
same batch size and against the naive server (FastAPI + eager PyTorch), all in one run.

    python -m bench.gateway                              # embed/classify/segment at concurrency 1, 8, 32
    python -m bench.gateway --endpoints embed --concurrency 32 --max-seconds 60
    python -m bench.gateway --endpoints --concurrency 1 8 32     # mesh uploads to /v1/embed only

- gateway: `crosspoint serve` (uvicorn, ONNX Runtime backend with micro-batching, 2 parse workers,
  `CROSSPOINT_ORT_INTRA_OP_THREADS=--threads`, reload off) in a subprocess;
- naive: `bench/naive_server.py` (same checkpoints, eager training form, one request per forward);
- model-only: our ONNX graph in ONNX Runtime in this process (the gateway's session options and
  threads) at the gateway's mean rows per backend call in that phase (from its /metrics), on the same
  real shapes prepared in advance: the most the gateway could do at that batch size.
Requests: JSON `{"points": ...}` bodies of raw real shapes (ModelNet40 test shapes; ShapeNetPart with
`?category=` for segment), and multipart mesh uploads (bunny.ply to embed, at each concurrency: the
issue 21 bar). The client is an async httpx
closed loop in this process (`bench/loadgen.py`); it shares the 2 cores with the servers.
Phases alternate gateway / naive (order flipped each time), each bounded by requests and seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs import BenchModels, bench_models, prepared_batch, raw_shapes
from bench.loadgen import Call, json_call, multipart_call, run_phase
from bench.measure import summarize
from bench.report import Report
from bench.servers import Server, ServerSpec, delta, free_port, scrape, server_processes

ENDPOINTS = ("embed", "classify", "segment")
MESH = Path("meshes") / "bunny.ply"  # shared data: 8,146 vertices, 16,301 faces


def shape_calls(endpoint: str, count: int, prefix: str = "/v1") -> list[Call]:
    """JSON bodies of `count` raw real shapes for `endpoint` (segment: with their category)."""
    calls = []
    for shape in raw_shapes(endpoint, count):
        body = json.dumps({"points": np.round(shape.points.astype(np.float64), 6).tolist()}).encode()
        query = f"?category={shape.category}" if endpoint == "segment" else ""
        calls.append(json_call(f"{prefix}/{endpoint}{query}", body))
    return calls


def mesh_calls(endpoint: str, naive: bool) -> list[Call]:
    from crosspoint.data import shared_data_dir

    path = shared_data_dir() / MESH
    return [
        multipart_call(f"/v1/{endpoint}:file" if naive else f"/v1/{endpoint}", path.name, path.read_bytes())
    ]


class ModelOnly:
    """Our ONNX graphs in this process: clouds/s at a given batch size on prepared real shapes."""

    def __init__(self, models: BenchModels, threads: int) -> None:
        from bench.model import ort_session
        from export.repository import read_model_metadata

        self.sessions = {e: ort_session(models.version_dir(e) / "model.onnx", threads) for e in ENDPOINTS}
        self.points = {e: read_model_metadata(models.repository, e).num_points for e in ENDPOINTS}

    def clouds_per_s(self, endpoint: str, batch: int, max_calls: int, max_seconds: float) -> dict[str, Any]:
        inputs, _ = prepared_batch(endpoint, batch, self.points[endpoint])
        session = self.sessions[endpoint]
        session.run(None, inputs)  # warm-up at this shape
        times: list[float] = []
        cpu = time.process_time()
        deadline = time.perf_counter() + max_seconds
        while len(times) < max_calls and (len(times) < 2 or time.perf_counter() < deadline):
            started = time.perf_counter()
            session.run(None, inputs)
            times.append(time.perf_counter() - started)
        stats = summarize(times)
        return {
            "batch": batch,
            "calls": len(times),
            "cpu_ms_per_cloud": 1000 * (time.process_time() - cpu) / (batch * len(times)),
            "p50_ms": stats["p50_ms"],
            "clouds_per_s": batch / (stats["p50_ms"] / 1000),
        }


def gateway_stats(before: dict[str, float], after: dict[str, float], endpoint: str) -> dict[str, float]:
    """Mean rows per backend call, backend seconds per call and parse seconds per upload in a phase."""
    label = f'{{model="{endpoint}"}}'
    calls = delta(before, after, f"crosspoint_batch_size_count{label}")
    rows = delta(before, after, f"crosspoint_batch_size_sum{label}")
    infer = delta(before, after, f"crosspoint_inference_seconds_sum{label}")
    parses = delta(before, after, "crosspoint_parse_seconds_count")
    parse_s = delta(before, after, "crosspoint_parse_seconds_sum")
    return {
        "mean_batch": rows / calls if calls else 0.0,
        "backend_calls": calls,
        "backend_ms_per_call": 1000 * infer / calls if calls else 0.0,
        "parse_ms": 1000 * parse_s / parses if parses else 0.0,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoints", nargs="*", default=list(ENDPOINTS), choices=ENDPOINTS)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--mesh-endpoint", default="embed", choices=("embed", "classify"), help="of the mesh upload case"
    )
    parser.add_argument(
        "--mesh-concurrency", type=int, nargs="*", default=None, help="default: --concurrency"
    )
    parser.add_argument("--requests-per-client", type=int, default=3, help="requests = max(8, this x c)")
    parser.add_argument("--max-seconds", type=float, default=25.0, help="per phase: no new requests after")
    parser.add_argument("--shapes", type=int, default=16, help="distinct real shapes per endpoint")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-mesh", action="store_true", help="skip the multipart mesh case")
    parser.add_argument("--no-naive", action="store_true")
    parser.add_argument("--warmup-clients", type=int, default=16, help="gateway warm-up burst per endpoint")
    parser.add_argument(
        "--compare-env",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="also run a second gateway with these environment overrides (A/B in the same run), "
        "e.g. CROSSPOINT_ORT_ALLOW_SPINNING=true",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: few requests, c = 1 and 4")
    parser.add_argument("--repository", type=Path, default=None, help="see bench/inputs.py")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.concurrency, args.requests_per_client, args.max_seconds, args.shapes = [2], 1, 5.0, 4
        args.warmup_clients = 2
    if args.mesh_concurrency is None:
        args.mesh_concurrency = args.concurrency
    return args


def gateway_env(
    models: BenchModels, threads: int, backend: str = "onnxruntime", triton_url: str = ""
) -> dict[str, str]:
    env = {
        "CROSSPOINT_MODEL_REPOSITORY": str(models.repository),
        "CROSSPOINT_BACKEND": backend,
        "CROSSPOINT_RELOAD_INTERVAL_S": "0",
        "CROSSPOINT_ORT_INTRA_OP_THREADS": str(threads),
        "CROSSPOINT_ORT_PROVIDERS": '["CPUExecutionProvider"]',
        "CROSSPOINT_LOG_LEVEL": "WARNING",
    }
    if triton_url:
        env["CROSSPOINT_TRITON_URL"] = triton_url
    return env


def serve_args(port: int) -> list[str]:
    return [
        "-m",
        "crosspoint.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def measure(
    server: Server, calls: list[Call], concurrency: int, requests: int, seconds: float
) -> dict[str, Any]:
    """One closed-loop phase, with the CPU time the server (process group) and this client used."""
    server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
    row = run_phase(server.url, calls, concurrency, requests, seconds).summary()
    ok = max(1, row["ok"])
    row["server_cpu_ms"] = 1000 * (server.cpu_seconds() - server_cpu) / ok
    row["client_cpu_ms"] = 1000 * (time.process_time() - client_cpu) / ok
    return row


def run(args: argparse.Namespace, report: Report) -> None:
    models = bench_models(args.repository)
    model_only = ModelOnly(models, args.threads)
    calls = {e: shape_calls(e, args.shapes) for e in args.endpoints}
    gw_port, naive_port = free_port(), free_port()
    naive_args = [
        "-m", "bench.naive_server", "--classifier", str(models.classifier), "--segmenter", str(models.segmenter),
        "--threads", str(args.threads), "--port", str(naive_port),
        "--num-points", str(model_only.points["embed"]),
    ]  # fmt: skip
    variant = dict(item.split("=", 1) for item in args.compare_env)
    variant_port = free_port()
    variant_name = "gateway [" + " ".join(args.compare_env) + "]"
    specs = [
        ServerSpec(serve_args(gw_port), gw_port, "/readyz", gateway_env(models, args.threads)),
        ServerSpec(
            serve_args(variant_port),
            variant_port,
            "/readyz",
            {**gateway_env(models, args.threads), **variant},
        )
        if variant
        else None,
        # OpenMP threads that sleep when idle: spinning made 2-thread torch up to 2.4x slower here.
        ServerSpec(naive_args, naive_port, "/healthz", {"OMP_WAIT_POLICY": "PASSIVE"})
        if not args.no_naive
        else None,
    ]
    rows: list[dict[str, Any]] = []
    with server_processes(specs) as (gateway, other, naive):
        assert gateway is not None
        targets = {
            "gateway": gateway,
            **({variant_name: other} if other else {}),
            **({"naive": naive} if naive else {}),
        }
        mesh_case = f"{args.mesh_endpoint} (mesh upload)"
        for endpoint in [*args.endpoints, *([] if args.no_mesh else [mesh_case])]:
            for target, server in targets.items():  # warm-up: first calls, and the gateways at full batches
                naive_target = target == "naive"
                warm = (
                    mesh_calls(args.mesh_endpoint, naive_target) if endpoint == mesh_case else calls[endpoint]
                )
                run_phase(server.url, warm, 1, 2, 60)
                if not naive_target:
                    run_phase(server.url, warm, args.warmup_clients, args.warmup_clients, 60)
        cases = [(e, c) for e in args.endpoints for c in args.concurrency]
        if not args.no_mesh:
            cases += [(mesh_case, c) for c in args.mesh_concurrency]
        for n, (endpoint, concurrency) in enumerate(cases):
            mesh = endpoint.endswith("(mesh upload)")
            served = args.mesh_endpoint if mesh else endpoint
            requests = max(8, args.requests_per_client * concurrency)
            for target in list(targets)[:: -1 if n % 2 else 1]:
                server = targets[target]
                phase_calls = mesh_calls(served, target == "naive") if mesh else calls[endpoint]
                before = scrape(server.url) if target != "naive" else {}
                row = {"endpoint": endpoint, "concurrency": concurrency, "target": target}
                row.update(measure(server, phase_calls, concurrency, requests, args.max_seconds))
                rows.append(row)
                print(f"{endpoint} c={concurrency} {target}: {row['req_per_s']:.2f}/s", flush=True)
                if target != "naive":
                    row.update(gateway_stats(before, scrape(server.url), served))
                if target == "gateway":
                    batch = max(1, round(row["mean_batch"]))
                    only = model_only.clouds_per_s(served, batch, max(4, requests // batch), 15.0)
                    rows.append(
                        {
                            "endpoint": endpoint,
                            "concurrency": concurrency,
                            "target": f"model-only (batch {batch})",
                            "req_per_s": only["clouds_per_s"],
                            "p50_ms": only["p50_ms"],
                            "ok": only["calls"] * batch,
                            "mean_batch": batch,
                            "server_cpu_ms": only["cpu_ms_per_cloud"],
                        }
                    )
    summarize_rows(rows, report, args)
    report.data["models"] = {"source": models.source, "repository": str(models.repository)}


def summarize_rows(rows: list[dict[str, Any]], report: Report, args: argparse.Namespace) -> None:
    by_case: dict[tuple[str, int], dict[str, dict[str, Any]]] = {}
    for row in rows:
        kind = "model-only" if row["target"].startswith("model-only") else row["target"]
        by_case.setdefault((row["endpoint"], row["concurrency"]), {})[kind] = row
    for case in by_case.values():
        gw = case.get("gateway")
        if gw is None:
            continue
        for name, row in case.items():
            if not name.startswith("gateway"):
                continue
            if "model-only" in case:
                only = case["model-only"]
                row["pct_of_model_only"] = 100 * row["req_per_s"] / only["req_per_s"]
                if row.get("server_cpu_ms"):
                    row["cpu_efficiency_pct"] = 100 * only["server_cpu_ms"] / row["server_cpu_ms"]
            if "naive" in case and case["naive"]["req_per_s"] > 0:
                row["x_vs_naive"] = row["req_per_s"] / case["naive"]["req_per_s"]
            if name != "gateway" and gw["req_per_s"] > 0:
                row["x_vs_gateway"] = row["req_per_s"] / gw["req_per_s"]
    columns = [
        ("endpoint", "endpoint", "{}"),
        ("concurrency", "clients", "{}"),
        ("target", "server", "{}"),
        ("req_per_s", "req/s (clouds/s)", "{:.2f}"),
        ("p50_ms", "p50 ms", "{:.0f}"),
        ("p99_ms", "p99 ms", "{:.0f}"),
        ("ok", "ok", "{}"),
        ("errors", "errors", "{}"),
        ("mean_batch", "rows/call", "{:.1f}"),
        ("backend_ms_per_call", "backend ms/call", "{:.0f}"),
        ("parse_ms", "parse ms", "{:.1f}"),
        ("server_cpu_ms", "server CPU ms/req", "{:.0f}"),
        ("client_cpu_ms", "client CPU ms/req", "{:.1f}"),
        ("pct_of_model_only", "% of model-only", "{:.0f}"),
        ("cpu_efficiency_pct", "model CPU share %", "{:.0f}"),
        ("x_vs_naive", "x naive", "{:.2f}"),
        ("x_vs_gateway", "x gateway", "{:.2f}"),
    ]
    report.table("phases", "Requests/s and latency per phase", rows, columns)
    verdicts = []
    for (endpoint, concurrency), case in by_case.items():
        gw = case.get("gateway", {})
        if concurrency == max(args.concurrency) and "pct_of_model_only" in gw:
            verdicts.append(
                f"- {endpoint}, {concurrency} clients: gateway {gw['pct_of_model_only']:.0f}% of model-only "
                f"at batch {round(gw['mean_batch'])} (target >= 80%: "
                f"{'met' if gw['pct_of_model_only'] >= 80 else 'MISSED'})"
                + (
                    f"; {gw['x_vs_naive']:.1f}x the naive server (target >= 3x: "
                    f"{'met' if gw['x_vs_naive'] >= 3 else 'MISSED'})"
                    if "x_vs_naive" in gw
                    else ""
                )
            )
        if endpoint.endswith("(mesh upload)") and concurrency == 32 and "x_vs_naive" in gw:
            met = gw["x_vs_naive"] >= 8 and not gw["errors"] and gw["p99_ms"] < 1000
            verdicts.append(
                f"- issue 21 bar, {endpoint} at 32 clients: {gw['x_vs_naive']:.1f}x naive (>= 8x), "
                f"{sum(gw['errors'].values())} errors (0), p99 {gw['p99_ms']:.0f} ms (< 1000): "
                f"{'met' if met else 'MISSED'}"
            )
    report.note("Targets at the highest concurrency:\n\n" + "\n".join(verdicts))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = Report("gateway", argv)
    report.note(
        "Gateway = `crosspoint serve` (ONNX Runtime backend, micro-batching up to 4 rows / 5 ms (the default; "
        f"segment: its own limit 8), batch-of-1 padded to 2 for batch invariance, 2 parse workers, {args.threads} ORT "
        "threads); naive = `bench/naive_server.py` (FastAPI + eager PyTorch training form, one request per "
        f"forward, {args.threads} torch threads); model-only = our ONNX graph in ONNX Runtime at the "
        "gateway's mean rows per backend call of that phase. Closed-loop async httpx clients on loopback, "
        f"requests per phase = max(8, {args.requests_per_client} x clients), no new request after "
        f"{args.max_seconds:.0f} s; req/s = OK answers / wall time. JSON bodies of {args.shapes} raw real "
        "shapes per endpoint (ModelNet40 test shapes, ShapeNetPart with ?category= for segment); the mesh "
        f"case uploads {MESH.name} (ASCII PLY, 16,301 faces, 659 KB) as multipart to {args.mesh_endpoint} "
        f"(naive: /v1/{args.mesh_endpoint}:file, same crosspoint.geometry load + prepare in the request)."
    )
    run(args, report)
    report.write(args.out)


if __name__ == "__main__":
    main()
