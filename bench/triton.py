"""The Triton path: the gateway's triton backend on the local real Triton, and straight to Triton over
gRPC (per-request, and the batch client), beside the gateway's in-process ONNX Runtime backend.

    python -m bench.triton                                  # embed/classify/segment, 1 / 8 / 32 clients
    python -m bench.triton --endpoints embed --concurrency 32

- Triton: `crosspoint.triton.testing.running_triton(repository)`: the tritonserver 2.51 binary from
  nvidia-pytriton with the repo's python shims standing in for the onnxruntime backend (ORT inside the
  python backend's stub process, one per model, `CROSSPOINT_TRITON_THREADS=--threads` threads); the
  configs' dynamic batching (preferred 4/8/16, 2 ms) does the batching. The official image's C++
  onnxruntime backend is not run here.
- gateway (triton): `crosspoint serve --backend triton` (HTTP JSON -> parse workers -> gRPC to Triton);
- gateway (onnxruntime): `crosspoint serve` (the default backend), for comparison in the same run;
- triton gRPC: tritonclient.grpc.aio straight to Triton, one prepared cloud per request (preprocessing
  done beforehand by the client, as the batch client does, and not timed);
- batch client: `clients.batch` (embed, classify): `infer_batch` calls of `--batch-size` prepared clouds
  with `--in-flight` calls at a time, and a whole `run_batch` over .npy files of raw shapes (parse +
  prepare in its worker processes + Triton + the result store), files/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bench.gateway import ENDPOINTS, gateway_env, serve_args, shape_calls
from bench.inputs import BenchModels, bench_models, prepared_batch, raw_shapes
from bench.loadgen import Phase, drive, run_phase
from bench.measure import summarize
from bench.report import Report
from bench.servers import ServerSpec, free_port, group_cpu_seconds, scrape, server_processes


def triton_batches(
    metrics_url: str, before: dict[str, float], endpoint: str
) -> tuple[float, dict[str, float]]:
    """Mean inferences per Triton execution of `endpoint` since `before`, and the new scrape."""
    after = scrape(metrics_url.removesuffix("/metrics"))

    def total(values: dict[str, float], name: str) -> float:
        prefix = f'{name}{{model="{endpoint}"'
        return sum(v for k, v in values.items() if k.startswith(prefix))

    runs = total(after, "nv_inference_exec_count") - total(before, "nv_inference_exec_count")
    items = total(after, "nv_inference_count") - total(before, "nv_inference_count")
    return (items / runs if runs else 0.0), after


async def grpc_phase(
    url: str,
    endpoint: str,
    inputs: list[dict[str, np.ndarray]],
    concurrency: int,
    requests: int,
    seconds: float,
) -> Phase:
    """One prepared cloud per request, straight to Triton, `concurrency` requests at a time."""
    import tritonclient.grpc.aio as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url)
    outputs = [grpcclient.InferRequestedOutput(n) for n in _outputs(endpoint)]

    async def send(number: int) -> int:
        request = []
        for name, value in inputs[number % len(inputs)].items():
            tensor = grpcclient.InferInput(name, list(value.shape), "FP32")
            tensor.set_data_from_numpy(value)
            request.append(tensor)
        try:
            await client.infer(endpoint, request, outputs=outputs, client_timeout=600)
        except InferenceServerException:
            return 599
        return 200

    try:
        return await drive(send, concurrency, requests, seconds)
    finally:
        await client.close()


def _outputs(endpoint: str) -> tuple[str, ...]:
    from server.backends.base import MODEL_OUTPUTS

    return tuple(MODEL_OUTPUTS[endpoint])


async def batch_client_calls(
    url: str, endpoint: str, points: np.ndarray, in_flight: int, calls: int
) -> dict[str, Any]:
    """`clients.batch.triton.infer_batch` on [B, N, 3] batches, `in_flight` at a time: clouds/s."""
    import time

    import tritonclient.grpc.aio as grpcclient

    from clients.batch.triton import infer_batch, model_spec

    client = grpcclient.InferenceServerClient(url)
    try:
        spec = await model_spec(client, endpoint, "", endpoint)
        await infer_batch(client, spec, points)  # warm-up
        slots = asyncio.Semaphore(in_flight)
        times: list[float] = []

        async def one() -> None:
            async with slots:
                started = time.perf_counter()
                await infer_batch(client, spec, points)
                times.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(calls)))
        wall = time.perf_counter() - started
    finally:
        await client.close()
    return {
        "clouds_per_s": calls * len(points) / wall,
        "p50_ms": summarize(times)["p50_ms"],
        "p99_ms": summarize(times)["p99_ms"],
        "ok": calls * len(points),
    }


def batch_client_run(
    url: str, models: BenchModels, endpoint: str, files: int, batch_size: int
) -> dict[str, Any]:
    """A whole `run_batch` over `files` .npy files of raw ModelNet40 shapes: files/s."""
    from clients.batch.pipeline import BatchJob, run_batch

    with tempfile.TemporaryDirectory() as tmp:
        for i, shape in enumerate(raw_shapes(endpoint, files)):
            np.save(Path(tmp) / f"{i:04d}-{shape.name}.npy", shape.points)
        job = BatchJob(
            task=endpoint,
            inputs=[tmp],
            out=Path(tmp) / "out.parquet",
            triton_url=url,
            repository=models.repository,
            workers=2,
            batch_size=batch_size,
            progress=False,
        )
        summary = run_batch(job)
    return {
        "clouds_per_s": summary.files_per_second,
        "ok": summary.succeeded,
        "errors": {"failed": summary.failed} if summary.failed else {},
        "wall_s": summary.seconds,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--endpoints", nargs="+", default=list(ENDPOINTS), choices=ENDPOINTS)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests-per-client", type=int, default=3, help="requests = max(8, this x c)")
    parser.add_argument("--max-seconds", type=float, default=25.0)
    parser.add_argument("--shapes", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="ORT threads (gateway, Triton shim)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch client")
    parser.add_argument("--in-flight", type=int, default=2, help="batch client calls at a time")
    parser.add_argument("--files", type=int, default=64, help="files for the run_batch case")
    parser.add_argument("--no-ort-gateway", action="store_true")
    parser.add_argument("--warmup-clients", type=int, default=16, help="warm-up burst per endpoint and path")
    parser.add_argument("--quick", action="store_true", help="smoke run: few requests, c = 1 and 4")
    parser.add_argument("--repository", type=Path, default=None, help="see bench/inputs.py")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.concurrency, args.requests_per_client, args.max_seconds, args.shapes = [2], 1, 5.0, 4
        args.files, args.batch_size, args.warmup_clients, args.no_ort_gateway = 4, 2, 2, True
    return args


@contextmanager
def shim_threads(threads: int) -> Iterator[None]:
    """The Triton shims' ORT threads (they read CROSSPOINT_TRITON_THREADS when a config names none)."""
    from crosspoint.triton.backends.shim import THREADS_ENV

    previous = os.environ.get(THREADS_ENV)
    os.environ[THREADS_ENV] = str(threads)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(THREADS_ENV, None)
        else:
            os.environ[THREADS_ENV] = previous


def run(args: argparse.Namespace, report: Report) -> None:
    from crosspoint.triton.testing import running_triton
    from export.repository import read_model_metadata

    models = bench_models(args.repository)
    calls = {e: shape_calls(e, args.shapes) for e in args.endpoints}
    prepared = {}
    for e in args.endpoints:
        arrays, _ = prepared_batch(e, args.shapes, read_model_metadata(models.repository, e).num_points)
        prepared[e] = [{k: v[i : i + 1] for k, v in arrays.items()} for i in range(args.shapes)]
    rows: list[dict[str, Any]] = []
    with shim_threads(args.threads), running_triton(models.repository, model_control_mode="none") as triton:
        grpc = triton.urls.grpc
        tri_port, ort_port = free_port(), free_port()
        env = gateway_env(models, args.threads, "triton", grpc)
        specs = [
            ServerSpec(serve_args(tri_port), tri_port, "/readyz", env),
            ServerSpec(serve_args(ort_port), ort_port, "/readyz", gateway_env(models, args.threads))
            if not args.no_ort_gateway
            else None,
        ]
        with server_processes(specs) as (gw_triton, gw_ort):
            assert gw_triton is not None
            http = {"gateway (triton)": gw_triton, **({"gateway (onnxruntime)": gw_ort} if gw_ort else {})}
            for e in args.endpoints:  # warm-up
                for server in http.values():
                    run_phase(server.url, calls[e], args.warmup_clients, args.warmup_clients, 120)
                asyncio.run(grpc_phase(grpc, e, prepared[e], args.warmup_clients, args.warmup_clients, 120))
            targets = [*http, "triton gRPC"]
            metrics = scrape(triton.urls.metrics.removesuffix("/metrics"))
            for n, (e, c) in enumerate((e, c) for e in args.endpoints for c in args.concurrency):
                requests = max(8, args.requests_per_client * c)
                shift = n % len(targets)
                for target in targets[shift:] + targets[:shift]:
                    gateway = http.get(target)
                    cpu = (gateway.cpu_seconds() if gateway else 0.0, group_cpu_seconds(triton.pid))
                    if gateway is None:
                        phase = asyncio.run(grpc_phase(grpc, e, prepared[e], c, requests, args.max_seconds))
                    else:
                        phase = run_phase(gateway.url, calls[e], c, requests, args.max_seconds)
                    row = {"endpoint": e, "concurrency": c, "target": target, **phase.summary()}
                    ok = max(1, row["ok"])
                    if gateway is not None:
                        row["gateway_cpu_ms"] = 1000 * (gateway.cpu_seconds() - cpu[0]) / ok
                    if target != "gateway (onnxruntime)":
                        row["triton_cpu_ms"] = 1000 * (group_cpu_seconds(triton.pid) - cpu[1]) / ok
                        row["triton_batch"], metrics = triton_batches(triton.urls.metrics, metrics, e)
                    rows.append(row)
                    print(f"{e} c={c} {target}: {row['req_per_s']:.2f}/s", flush=True)
        batch_rows = run_batch_client(args, models, grpc, prepared)
    report.table(
        "phases",
        "Requests/s and latency per phase (one cloud per request)",
        rows,
        [
            ("endpoint", "endpoint", "{}"),
            ("concurrency", "clients", "{}"),
            ("target", "path", "{}"),
            ("req_per_s", "req/s (clouds/s)", "{:.2f}"),
            ("p50_ms", "p50 ms", "{:.0f}"),
            ("p99_ms", "p99 ms", "{:.0f}"),
            ("ok", "ok", "{}"),
            ("errors", "errors", "{}"),
            ("triton_batch", "Triton rows/exec", "{:.1f}"),
            ("gateway_cpu_ms", "gateway CPU ms/req", "{:.0f}"),
            ("triton_cpu_ms", "Triton CPU ms/req", "{:.0f}"),
        ],
    )
    report.table(
        "batch_client",
        "Batch gRPC client straight to Triton",
        batch_rows,
        [
            ("endpoint", "endpoint", "{}"),
            ("mode", "mode", "{}"),
            ("clouds_per_s", "clouds/s", "{:.2f}"),
            ("p50_ms", "p50 ms/call", "{:.0f}"),
            ("p99_ms", "p99 ms/call", "{:.0f}"),
            ("ok", "clouds", "{}"),
            ("errors", "errors", "{}"),
        ],
    )
    report.data["models"] = {"source": models.source, "repository": str(models.repository)}


def run_batch_client(
    args: argparse.Namespace, models: BenchModels, grpc: str, prepared: dict[str, list[dict[str, np.ndarray]]]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for e in (e for e in args.endpoints if e != "segment"):  # the batch client serves embed / classify
        points = np.concatenate([p["points"] for p in prepared[e]])
        points = np.concatenate([points] * -(-args.batch_size // len(points)))[: args.batch_size]
        calls = max(4, 4 * args.in_flight)
        try:
            row = asyncio.run(batch_client_calls(grpc, e, points, args.in_flight, calls))
            rows.append(
                {"endpoint": e, "mode": f"infer_batch B={args.batch_size}, {args.in_flight} in flight", **row}
            )
            row = batch_client_run(grpc, models, e, args.files, args.batch_size)
            rows.append({"endpoint": e, "mode": f"run_batch, {args.files} .npy files, 2 workers", **row})
        except Exception as exc:  # the batch client is being finished in parallel: report, don't die
            rows.append(
                {"endpoint": e, "mode": "batch client failed", "errors": f"{type(exc).__name__}: {exc}"}
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    report = Report("triton", argv)
    report.note(
        "Local real Triton (tritonserver 2.51 from nvidia-pytriton, python-shim onnxruntime backend: ORT "
        f"in the stub process, {args.threads} threads, dynamic batching preferred 4/8/16, 2 ms), the "
        "gateway on it (`--backend triton`) and the gateway on in-process ONNX Runtime, and gRPC straight "
        "to Triton (prepared points). Same JSON bodies as bench/gateway.py; paths interleaved per phase; "
        f"requests per phase = max(8, {args.requests_per_client} x clients), none started after "
        f"{args.max_seconds:.0f} s."
    )
    run(args, report)
    report.write(args.out)


if __name__ == "__main__":
    main()
