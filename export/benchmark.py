"""ONNX Runtime speed of the naive export (training form) vs the exported rewrite.

    python -m export.benchmark                       # random-weight DGCNN, k=20, N=1024
    python -m export.benchmark --checkpoint runs/cls.safetensors --model classify
    python -m export.benchmark --segment --k 40 --num-points 2048 --batches 1 4

Prints one row per (form, batch): best-of-`repeats` latency and clouds/s, on `threads` ORT threads;
the two forms run in turns so background load hits both alike.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def time_sessions(
    paths: dict[str, Path], inputs: dict[str, np.ndarray], threads: int, repeats: int
) -> dict[str, float]:
    """Best wall time (seconds) of `repeats` runs per model, after one warm-up each.

    The models run in turns (A, B, A, B, ...) so a busy machine slows both alike.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    sessions = {
        label: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for label, path in paths.items()
    }
    best = dict.fromkeys(sessions, float("inf"))
    for session in sessions.values():
        session.run(None, inputs)
    for _ in range(repeats):
        for label, session in sessions.items():
            started = time.perf_counter()
            session.run(None, inputs)
            best[label] = min(best[label], time.perf_counter() - started)
    return best


def compare_forms(
    model: Any,
    served: str,
    num_points: int,
    batches: tuple[int, ...],
    threads: int,
    repeats: int,
    opset: int = 17,
) -> list[dict[str, Any]]:
    """Export `served` from `model` in both forms and time each at each batch size."""
    from export.graphs import build_graph, spec_for
    from export.onnx_export import example_inputs, export_onnx

    spec = spec_for(model, served)
    k = getattr(model.config, "k", 1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for label, form in (("naive (training form)", "reference"), ("rewrite (exported)", "export")):
            paths[label] = Path(tmp) / f"{form}.onnx"
            export_onnx(build_graph(model, served, form), spec, example_inputs(spec, k), paths[label], opset)
        rng = np.random.default_rng(0)
        for batch in batches:
            points = rng.standard_normal((batch, num_points, 3)).astype(np.float32)
            inputs = {"points": points / np.linalg.norm(points, axis=-1).max(axis=1)[:, None, None]}
            if served == "segment":
                inputs["category"] = np.eye(16, dtype=np.float32)[rng.integers(0, 16, batch)]
            for label, seconds in time_sessions(paths, inputs, threads, repeats).items():
                rows.append(
                    {
                        "form": label,
                        "batch": batch,
                        "ms": 1000 * seconds,
                        "clouds_per_s": batch / seconds,
                        "onnx_mb": paths[label].stat().st_size / 2**20,
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument(
        "--model", default=None, help="embed | classify | segment (default: embed, or segment)"
    )
    parser.add_argument("--segment", action="store_true", help="random-weight part-seg net instead of DGCNN")
    parser.add_argument("--k", type=int, default=None)
    parser.add_argument("--num-points", type=int, default=None)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import torch

    torch.manual_seed(0)
    if args.checkpoint:
        from crosspoint.checkpoint import load

        model = load(args.checkpoint).model
    else:
        from crosspoint.models import create_model

        name = "dgcnn_partseg" if args.segment else "dgcnn"
        model = create_model(name, k=args.k or (40 if args.segment else 20)).eval()
    served = args.model or ("segment" if model.model_name == "dgcnn_partseg" else "embed")
    num_points = args.num_points or (2048 if served == "segment" else 1024)
    rows = compare_forms(model, served, num_points, tuple(args.batches), args.threads, args.repeats)
    print(
        f"{served}: {model.model_name} k={getattr(model.config, 'k', '-')} N={num_points}, "
        f"ONNX Runtime {args.threads} threads, best of {args.repeats}"
    )
    print(f"{'form':<24}{'batch':>6}{'ms':>10}{'clouds/s':>10}{'onnx MB':>9}")
    for row in rows:
        print(
            f"{row['form']:<24}{row['batch']:>6}{row['ms']:>10.1f}{row['clouds_per_s']:>10.1f}{row['onnx_mb']:>9.1f}"
        )


if __name__ == "__main__":
    main()
