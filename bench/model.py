"""Model only, same inputs, same threads: eager PyTorch vs ONNX Runtime (naive export) vs ONNX Runtime
(our exported graph) vs TorchScript (our graph), plus the achieved GFLOP/s of our graph against a
measured fp32 matmul peak of this machine (the limit).

    python -m bench.model                   # embed at batch 1/16/64, segment at 1/8 (about 8 min here)
    python -m bench.model --full            # + classify, eager at batch 64, segment at batch 16
    python -m bench.model --models segment --segment-batches 1 8 16 --repeats 5

Forms (all on `--threads` threads, default 2, interleaved per batch size: A, B, C, D, B, C, D, A, ...):
- `eager`: the training form in PyTorch (create_model + weights; EdgeConv on N*k edge features), eval;
- `onnx-naive`: that same graph exported as is (`torch.onnx.export`), in ONNX Runtime;
- `onnx`: our exported graph (`<repository>/<model>/<version>/model.onnx`: per-point EdgeConv, BN
  folded), in ONNX Runtime with the gateway's session options;
- `torchscript`: our graph traced to TorchScript (`model.pt`), in PyTorch;
- `openvino-fp32` / `openvino-bf16` / `onnx-int8`: the gateway's CPU fast-path candidates
  (export/precision.py): the same model.onnx in OpenVINO at f32 / bf16 (2-row sub-batches on 2
  one-thread streams), and in ONNX Runtime with int8 weights after the last kNN; their precision
  budget against `onnx` is reported, and which form each model is served with (its precision.json).
The served-speed comparison (issue 21), ONNX Runtime fp32 against the fast-path candidates:
    python -m bench.model --models embed classify segment --forms onnx onnx-int8 openvino-fp32 openvino-bf16 \
        --batches 16 --segment-batches 16 --repeats 30 --out bench/results/serving-speed
Latency is per call (a whole batch); clouds/s = batch / p50. Parity: every form against eager on the
parity batch (real shapes), with the export's rule (`export.parity.compare`). FLOPs are counted from
the ONNX graph (MatMul/Gemm/Conv: 2 x MACs at the run's shapes; the kNN score matmuls included).
`--forms onnx-naive onnx` compares the two ONNX forms alone.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs import BenchModels, bench_models, prepared_batch
from bench.measure import interleave, sgemm_gflops, summarize
from bench.report import Report

Arrays = dict[str, np.ndarray]
FORMS = {
    "eager": "PyTorch eager, training form (EdgeConv on edges), create_model + weights",
    "onnx-naive": "ONNX Runtime, naive export of the training form",
    "onnx": "ONNX Runtime, our exported graph (EdgeConv rewrite, BN folded): model.onnx",
    "torchscript": "PyTorch, our graph traced to TorchScript: model.pt",
    "openvino-fp32": "OpenVINO, the gateway's CPU fast path (export/precision.py): model.onnx at f32, "
    "2-row sub-batches on 2 one-thread streams",
    "openvino-bf16": "the same at bf16 inference precision",
    "onnx-int8": "ONNX Runtime, model.onnx with int8 weights after the last kNN (export.precision.quantize_after_knn), "
    "one row per call as served",
}
# The forms the precision budget is reported for, against `onnx` (ONNX Runtime fp32, the reference).
BUDGET_FORMS = ("openvino-fp32", "openvino-bf16", "onnx-int8")


def ort_session(path: Path, threads: int, spin: bool = False) -> Any:
    """An ONNX Runtime CPU session with the gateway's options (server/backends/onnxruntime.py)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_flops(path: Path, shapes: dict[str, list[int]]) -> float:
    """FLOPs of one run of the ONNX file at the given input shapes: 2 x MACs of MatMul/Gemm/Conv."""
    import onnx
    from onnx import shape_inference

    proto = onnx.load(str(path))
    for value in proto.graph.input:
        for dim, size in zip(value.type.tensor_type.shape.dim, shapes[value.name], strict=True):
            dim.ClearField("dim_param")
            dim.dim_value = size
    inferred = shape_inference.infer_shapes(proto, data_prop=True)
    known: dict[str, list[int]] = {t.name: list(t.dims) for t in proto.graph.initializer}
    for value in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        known[value.name] = [d.dim_value for d in value.type.tensor_type.shape.dim]
    total = 0.0
    for node in proto.graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Conv"):
            continue
        a, w, out = known.get(node.input[0]), known.get(node.input[1]), known.get(node.output[0])
        if not a or not w or not out or 0 in (*a, *out):
            raise ValueError(f"{path}: no static shape for {node.op_type} {node.name}")
        if node.op_type == "Conv":
            reduce = int(np.prod(w[1:]))  # input channels / group x kernel
        elif node.op_type == "Gemm" and any(x.name == "transA" and x.i for x in node.attribute):
            reduce = a[0]
        else:
            reduce = a[-1]
        total += 2.0 * float(np.prod(out)) * reduce
    return total


def build_forms(
    models: BenchModels, served: str, threads: int, workdir: Path, spin: bool = False
) -> dict[str, Any]:
    """Callables `inputs -> outputs` for each form, and the file paths behind the ONNX ones."""
    import torch

    from crosspoint import checkpoint
    from export.graphs import build_graph, spec_for
    from export.onnx_export import example_inputs, export_onnx
    from export.precision import quantize_after_knn, rowwise

    torch.set_num_threads(threads)
    model = checkpoint.load(models.checkpoint(served)).model
    reference = build_graph(model, served, "reference")  # the training form, eval mode
    spec = spec_for(model, served)
    naive_path = workdir / f"{served}-naive.onnx"
    export_onnx(reference, spec, example_inputs(spec, int(getattr(model.config, "k", 1))), naive_path)
    ours_path = models.version_dir(served) / "model.onnx"
    int8_path = workdir / f"{served}-int8.onnx"
    quantize_after_knn(ours_path, int8_path)
    scripted = torch.jit.load(str(models.version_dir(served) / "model.pt"))
    names = list(spec.output_names)

    def torch_runner(module: Any) -> Callable[[Arrays], Arrays]:
        def run(inputs: Arrays) -> Arrays:
            with torch.inference_mode():
                outputs = module(*(torch.from_numpy(inputs[n]) for n in spec.input_names))
            return {n: o.numpy() for n, o in zip(names, outputs, strict=True)}

        return run

    def ort_runner(path: Path) -> Callable[[Arrays], Arrays]:
        session = ort_session(path, threads, spin)
        return lambda inputs: dict(zip(names, session.run(names, inputs), strict=True))

    return {
        "runners": {
            "eager": torch_runner(reference),
            "onnx-naive": ort_runner(naive_path),
            "onnx": ort_runner(ours_path),
            "torchscript": torch_runner(scripted),
            **openvino_runners(ours_path, threads),
            "onnx-int8": rowwise(ort_runner(int8_path)),
        },
        "paths": {"onnx-naive": naive_path, "onnx": ours_path},
    }


def openvino_runners(graph: Path, streams: int) -> dict[str, Callable[[Arrays], Arrays]]:
    """The gateway's fast-path candidates (export.precision) at each precision this CPU runs."""
    from export.precision import OpenVinoRunner, cpu_precisions

    return {
        f"openvino-{precision}": OpenVinoRunner(graph, precision, streams).run
        for precision in ("fp32", "bf16")
        if precision in cpu_precisions()
    }


def served_precision(graph: Path) -> str:
    from export.precision import serving_choice

    choice = serving_choice(graph.parent)
    return f"{choice.runtime} {choice.precision}"


def bench_served(
    models: BenchModels,
    served: str,
    batches: list[int],
    num_points: int,
    args: argparse.Namespace,
    workdir: Path,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows (batch x form) and the parity report of one served model."""
    from export.parity import compare
    from export.precision import agreement

    built = build_forms(models, served, args.threads, workdir, args.spin)
    runners: dict[str, Callable[[Arrays], Arrays]] = built["runners"]
    parity_batch = max([b for b in batches if b <= 16] or batches[:1])
    rows, parity = [], {}
    for batch in batches:
        inputs, source = prepared_batch(served, batch, num_points)
        shapes = {name: list(array.shape) for name, array in inputs.items()}
        flops = {form: onnx_flops(path, shapes) / batch for form, path in built["paths"].items()}
        forms = [
            f for f in args.forms if f in runners and not (f == "eager" and batch > args.eager_max_batch)
        ]
        outputs: dict[str, Arrays] | None = {} if batch == parity_batch else None

        def timed(
            form: str, inputs: Arrays = inputs, keep: dict[str, Arrays] | None = outputs
        ) -> Callable[[], None]:
            def run() -> None:
                result = runners[form](inputs)
                if keep is not None:
                    keep[form] = result

            return run

        repeats = args.repeats if batch == 1 else max(1, args.repeats // 2)
        if args.warmup and "torchscript" in forms:
            runners["torchscript"](inputs)  # the JIT's profiling executor optimises on the 2nd call
        times = interleave(
            {form: timed(form) for form in forms},
            repeats=repeats,
            min_repeats=min(repeats, args.min_repeats),
            budget_s=args.budget_s,
            warmup=args.warmup,
        )
        stats = {form: summarize(times[form]) for form in forms}
        print(
            f"{served} batch {batch}: " + ", ".join(f"{f} {stats[f]['p50_ms']:.0f} ms" for f in forms),
            flush=True,
        )
        for form in forms:
            s = stats[form]
            row: dict[str, Any] = {
                "model": served,
                "batch": batch,
                "num_points": num_points,
                "form": form,
                **s,
            }
            row["clouds_per_s"] = batch / (s["p50_ms"] / 1000)
            for base in ("onnx", "onnx-naive", "eager"):
                if base in stats:
                    row[f"x_vs_{base}"] = stats[base]["p50_ms"] / s["p50_ms"]
            if form in ("onnx", "torchscript", *BUDGET_FORMS):
                row["gflop_per_cloud"] = flops["onnx"] / 1e9
                row["gflop_per_s"] = row["clouds_per_s"] * flops["onnx"] / 1e9
            elif form == "onnx-naive":
                row["gflop_per_cloud"] = flops["onnx-naive"] / 1e9
            rows.append(row)
        reference = next((f for f in ("eager", "onnx-naive") if f in (outputs or {})), None)
        if outputs and reference is not None:
            parity = {
                "batch": batch,
                "reference": reference,
                "forms": {
                    form: _parity_summary(compare(outputs[reference], got, source))
                    for form, got in outputs.items()
                    if form != reference and form not in BUDGET_FORMS  # those: the budget table
                },
            }
        if outputs and "onnx" in outputs:
            parity["budget_shapes"] = batch
            parity["budget"] = {
                form: agreement(served, outputs["onnx"], outputs[form])
                for form in BUDGET_FORMS
                if form in outputs
            }
    return rows, parity


def _parity_summary(report: dict[str, Any]) -> dict[str, Any]:
    outputs = report["outputs"].values()
    entry = {
        "passed": report["passed"],
        "max_abs_diff": max(o.get("max_abs_diff", float("inf")) for o in outputs),
        "max_rel_diff": max(o.get("max_rel_diff", float("inf")) for o in outputs),
        "shapes_within_1e-4": min(o.get("shapes_within_bound", 0) for o in outputs),
        "shapes": max(o.get("shapes", 0) for o in outputs),
    }
    for key in ("top1_agreement", "part_label_agreement"):
        if key in report:
            entry[key] = report[key]
    return entry


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=None, choices=["embed", "classify", "segment"])
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="embed/classify (1 16 64)")
    parser.add_argument("--segment-batches", type=int, nargs="+", default=None, help="(1 8; served max 8)")
    parser.add_argument("--num-points", type=int, default=None, help="default: the model's (1024; 2048)")
    parser.add_argument("--forms", nargs="+", default=list(FORMS), choices=list(FORMS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--spin",
        action="store_true",
        help="let idle worker threads spin (ORT allow_spinning=1, OpenMP's default wait policy); "
        "default: ORT allow_spinning=0 (as the gateway) and OMP_WAIT_POLICY=PASSIVE",
    )
    parser.add_argument("--repeats", type=int, default=8, help="timed rounds at batch 1 (half above)")
    parser.add_argument("--min-repeats", type=int, default=3)
    parser.add_argument("--budget-s", type=float, default=60.0, help="per batch size, after min rounds")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--eager-max-batch", type=int, default=16, help="eager is skipped above this")
    parser.add_argument("--full", action="store_true", help="classify too, eager at 64, segment at 16")
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 1-2, one round")
    parser.add_argument("--repository", type=Path, default=None, help="see bench/inputs.py")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.models = args.models or ["embed", "segment"]
        args.batches, args.segment_batches = args.batches or [1, 2], args.segment_batches or [1]
        args.repeats, args.min_repeats, args.warmup = 1, 1, 0
    elif args.full:
        args.models = args.models or ["embed", "classify", "segment"]
        args.segment_batches = args.segment_batches or [1, 8, 16]
        args.eager_max_batch = max(args.eager_max_batch, 64)
    args.models = args.models or ["embed", "segment"]
    args.batches = args.batches or [1, 16, 64]
    args.segment_batches = args.segment_batches or [1, 8]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.spin:
        # Read by OpenMP when torch loads: on a busy machine a spinning team of 2 was up to 2.4x
        # slower than 1 thread (README "Benchmarks"). No effect if torch is already imported.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    report = Report("model", argv)
    models = bench_models(args.repository)
    from export.repository import read_model_metadata

    report.note(
        f"Models: {models.source}.\n\nForms: "
        + "; ".join(f"`{name}` = {what}" for name, what in FORMS.items())
        + f". {args.threads} threads each (torch.set_num_threads / ORT intra-op, inter-op 1; "
        + (
            "threads spin when idle"
            if args.spin
            else "idle threads sleep: ORT allow_spinning=0 as in the "
            f"gateway, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}"
        )
        + "); forms "
        "interleaved per batch size (order rotating), after "
        f"{args.warmup} warm-up round(s); latency per call (the whole batch), clouds/s = batch / p50; "
        "`x naive` / `x eager` = p50 ratio (higher is faster). p99 of fewer than 100 calls is the max."
    )
    peak = sgemm_gflops(256 if args.quick else 2048, args.threads)
    rows: list[dict[str, Any]] = []
    parity: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for served in args.models:
            meta = read_model_metadata(models.repository, served)
            num_points = args.num_points or meta.num_points
            batches = args.segment_batches if served == "segment" else args.batches
            served_rows, parity[served] = bench_served(models, served, batches, num_points, args, Path(tmp))
            rows.extend(served_rows)
            peak += sgemm_gflops(256 if args.quick else 2048, args.threads)
    limit = float(np.median(peak))
    for row in rows:
        if "gflop_per_s" in row:
            row["pct_of_sgemm"] = 100 * row["gflop_per_s"] / limit
    columns = [
        ("model", "model", "{}"),
        ("num_points", "N", "{}"),
        ("batch", "batch", "{}"),
        ("form", "form", "{}"),
        ("clouds_per_s", "clouds/s", "{:.2f}"),
        ("p50_ms", "p50 ms", "{:.0f}"),
        ("p99_ms", "p99 ms", "{:.0f}"),
        ("n", "calls", "{}"),
        ("x_vs_onnx", "x onnx", "{:.2f}"),
        ("x_vs_onnx-naive", "x naive", "{:.2f}"),
        ("x_vs_eager", "x eager", "{:.2f}"),
        ("gflop_per_cloud", "GFLOP/cloud", "{:.2f}"),
        ("gflop_per_s", "GFLOP/s", "{:.1f}"),
        ("pct_of_sgemm", "% of sgemm", "{:.0f}"),
    ]
    report.table("throughput", "Throughput and latency", rows, columns)
    report.data["sgemm_gflops"] = peak
    report.note(
        f"The limit: fp32 sgemm (torch.matmul, {'256' if args.quick else '2048'}^2, {args.threads} threads, "
        f"MKL), {len(peak)} products in this run, before, between and after the models: median {limit:.1f} "
        f"GFLOP/s (min {min(peak):.1f}, max {max(peak):.1f}). GFLOP/cloud counts MatMul/Gemm/Conv of the "
        "ONNX graph at the run's shapes (2 x MACs, kNN score matmuls included; TopK, gathers and "
        "element-wise ops are not FLOPs here but take much of the time)."
    )
    parity_rows = [
        {"model": served, "batch": p["batch"], "form": f"{form} vs {p['reference']}", **entry}
        for served, p in parity.items()
        if p.get("forms")
        for form, entry in p["forms"].items()
    ]
    if parity_rows:
        report.table(
            "parity",
            "Parity against eager (or the naive export without eager; export.parity rule: 1e-4 x max(1, |ref|) for half the shapes, 100x for all)",
            parity_rows,
            [
                ("model", "model", "{}"),
                ("batch", "shapes", "{}"),
                ("form", "form", "{}"),
                ("max_abs_diff", "max abs diff", "{:.2e}"),
                ("max_rel_diff", "max rel diff", "{:.2e}"),
                ("shapes_within_1e-4", "within bound", "{}"),
                ("top1_agreement", "top-1 agree", "{:.2f}"),
                ("part_label_agreement", "part labels agree", "{:.3f}"),
                ("passed", "passed", "{}"),
            ],
        )
    budget_rows = [
        {
            "model": served,
            "shapes": p["budget_shapes"],
            "form": form,
            **entry["metrics"],
            "passed": entry["passed"],
        }
        for served, p in parity.items()
        for form, entry in p.get("budget", {}).items()
    ]
    if budget_rows:
        report.table(
            "budget",
            "Precision budget against `onnx` (ONNX Runtime fp32) on the timed batch of test shapes (embedding "
            "cosine median >= 0.999 and min >= 0.995, top-1 agreement >= 99.5%, part labels >= 99%; "
            "precision.json holds the export's check on 256 shapes)",
            budget_rows,
            [
                ("model", "model", "{}"),
                ("shapes", "shapes", "{}"),
                ("form", "form", "{}"),
                ("embedding_cosine_median", "cosine median", "{:.6f}"),
                ("embedding_cosine_min", "cosine min", "{:.6f}"),
                ("top1_agreement", "top-1 agree", "{:.4f}"),
                ("part_label_agreement", "part labels agree", "{:.4f}"),
                ("passed", "within budget", "{}"),
            ],
        )
    served_at = {
        served: served_precision(models.version_dir(served) / "model.onnx") for served in args.models
    }
    report.note(
        "Served precision (precision.json, this host): "
        + ", ".join(f"{served} {what}" for served, what in served_at.items())
        + ". `x onnx` = p50 of `onnx` / p50 of the form (higher is faster)."
    )
    report.data["served_precision"] = served_at
    report.data["parity"] = parity
    report.data["models"] = {"source": models.source, "repository": str(models.repository)}
    report.write(args.out)


if __name__ == "__main__":
    main()
