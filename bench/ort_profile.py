"""Where ONNX Runtime spends its time in a graph: node time by operator type (ORT's own profiler).

    python -m bench.ort_profile                    # embed and segment, naive export vs ours, batch 16 / 8
    python -m bench.ort_profile --models embed --batch 16 --runs 3

Runs each graph `--runs` times with `SessionOptions.enable_profiling` (after one unprofiled warm-up)
and sums the `Node` events of ORT's trace by operator (fused kernels keep ORT's names: FusedMatMul,
...). Writes bench/results/ort_profile.md and .json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.inputs import bench_models, prepared_batch
from bench.report import Report


def profile_session(
    path: Path, inputs: dict[str, Any], threads: int, runs: int, workdir: Path
) -> dict[str, float]:
    """Milliseconds per run spent in each operator type (ORT `Node` events)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the gateway
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_profiling = True
    options.profile_file_prefix = str(workdir / path.stem)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(runs + 1):
        session.run(None, inputs)
    trace = json.loads(Path(session.end_profiling()).read_text())
    totals: dict[str, float] = defaultdict(float)
    runs_seen = 0
    for event in trace:
        if event.get("cat") == "Session" and event.get("name") == "model_run":
            runs_seen += 1
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"] / 1000.0
    # The first run (warm-up) is in the trace too: average over all runs seen.
    return {op: ms / max(1, runs_seen) for op, ms in totals.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models", nargs="+", default=["embed", "segment"], choices=["embed", "classify", "segment"]
    )
    parser.add_argument("--batch", type=int, default=None, help="default 16 (segment 8)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=10, help="operators listed per graph")
    parser.add_argument("--repository", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    report = Report("ort_profile", argv)
    models = bench_models(args.repository)
    report.note(f"Models: {models.source}. ONNX Runtime {args.threads} threads, {args.runs} profiled runs.")
    from bench.model import build_forms
    from export.repository import read_model_metadata

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for served in args.models:
            batch = args.batch or (8 if served == "segment" else 16)
            num_points = read_model_metadata(models.repository, served).num_points
            inputs, _ = prepared_batch(served, batch, num_points)
            paths = build_forms(models, served, args.threads, Path(tmp))["paths"]
            for form, path in paths.items():
                ops = profile_session(path, inputs, args.threads, args.runs, Path(tmp))
                total = sum(ops.values())
                ranked = sorted(ops.items(), key=lambda item: -item[1])
                for op, ms in ranked[: args.top]:
                    rows.append(
                        {
                            "model": served,
                            "batch": batch,
                            "form": form,
                            "op": op,
                            "ms": ms,
                            "pct": 100 * ms / total,
                        }
                    )
                rows.append(
                    {
                        "model": served,
                        "batch": batch,
                        "form": form,
                        "op": "(all nodes)",
                        "ms": total,
                        "pct": 100.0,
                    }
                )
    report.table(
        "ops",
        "Node time per run by operator type",
        rows,
        [
            ("model", "model", "{}"),
            ("batch", "batch", "{}"),
            ("form", "form", "{}"),
            ("op", "operator", "{}"),
            ("ms", "ms/run", "{:.1f}"),
            ("pct", "%", "{:.0f}"),
        ],
    )
    report.write(args.out)


if __name__ == "__main__":
    main()
