"""bf16 against fp32 pretraining: same seed, same steps, through the real loop (`crosspoint.train.pretrain`).

    python -m bench.train_check                    # 300 steps x 3 runs at a reduced setting (~25 min here)
    python -m bench.train_check --steps 20 --subset 40 --quick

Runs: `fp32` (seed 0), `bf16` (seed 0) and `fp32-seed1` (seed 1). The seed-to-seed difference of two
fp32 runs is the noise the bf16-vs-fp32 difference is judged against: loss curves (mean over windows
of `--window` steps) and the validation probe (linear SVM on the held-out part of train, as
`crosspoint.train.probe`) at the last step. Both precisions run the same fused EdgeConv.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.report import Report

RUNS = {"fp32": ("fp32", 0), "bf16": ("bf16", 0), "fp32-seed1": ("fp32", 1)}


def run(name: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    from crosspoint.train.pretrain import PretrainConfig, train

    precision, seed = RUNS[name]
    # Whole epochs (steps rounded up to one), so the loop's end-of-run probe runs.
    steps_per_epoch = args.subset // args.batch_size
    epochs = -(-args.steps // steps_per_epoch)
    cfg = PretrainConfig(
        out=str(root / name), image_encoder="resnet18_image", epochs=epochs, batch_size=args.batch_size,
        num_points=args.num_points, k=args.k, image_size=args.image_size, views=2, subset=args.subset,
        probe_every=epochs, probe_points=args.num_points, probe_train_size=args.probe_train,
        probe_val_size=args.probe_val, seed=seed, device="cpu", precision=precision,
        log_every=1,
    )  # fmt: skip
    summary = train(cfg)
    rows = [json.loads(line) for line in (root / name / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss/total"] for r in rows if r["kind"] == "train"]
    probes = [r for r in rows if r["kind"] == "probe"]
    return {
        "losses": losses,
        "probe_start": probes[0]["probe/val_accuracy"] if probes else None,
        "probe_end": probes[-1]["probe/val_accuracy"] if len(probes) > 1 else None,
        "step": summary["step"],
        "seconds_per_step": float(np.median([r["time/step_s"] for r in rows if r["kind"] == "train"])),
    }


def windows(losses: list[float], size: int) -> np.ndarray:
    n = len(losses) // size
    return np.asarray(losses[: n * size]).reshape(n, size).mean(axis=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--subset", type=int, default=400, help="pretraining shapes")
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--num-points", type=int, default=256)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--probe-train", type=int, default=600)
    parser.add_argument("--probe-val", type=int, default=400)
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--quick", action="store_true", help="smoke run (no claims)")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.subset, args.batch_size, args.num_points = 2, 8, 4, 64
        args.probe_train, args.probe_val, args.window = 40, 20, 2
    report = Report("train_check", argv)
    report.note(
        f"Reduced setting (CPU time): {args.steps} steps, batch {args.batch_size}, {args.subset} shapes, "
        f"{args.num_points} points, k={args.k}, resnet18_image at {args.image_size} px, probe on "
        f"{args.probe_train} labelled rows / {args.probe_val} validation rows at {args.num_points} points."
    )
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in RUNS:
            results[name] = run(name, args, Path(tmp))
    curves = {name: windows(r["losses"], args.window) for name, r in results.items()}
    rows = []
    for name, r in results.items():
        rows.append(
            {
                "run": name,
                "steps": r["step"],
                "s_per_step": r["seconds_per_step"],
                "loss_first": curves[name][0],
                "loss_last": curves[name][-1],
                "max_window_diff_vs_fp32": float(np.abs(curves[name] - curves["fp32"]).max()),
                "probe_start": r["probe_start"],
                "probe_end": r["probe_end"],
            }
        )
    report.table(
        "runs",
        f"Loss (mean over windows of {args.window} steps) and validation probe",
        rows,
        [
            ("run", "run", "{}"),
            ("steps", "steps", "{}"),
            ("s_per_step", "s/step", "{:.2f}"),
            ("loss_first", "loss, first window", "{:.3f}"),
            ("loss_last", "loss, last window", "{:.3f}"),
            ("max_window_diff_vs_fp32", "max |window diff| vs fp32", "{:.3f}"),
            ("probe_start", "probe step 0", "{:.3f}"),
            ("probe_end", "probe last step", "{:.3f}"),
        ],
    )
    noise = float(np.abs(curves["fp32-seed1"] - curves["fp32"]).max())
    gap = float(np.abs(curves["bf16"] - curves["fp32"]).max())
    report.note(
        f"bf16 vs fp32 (same seed): max window difference {gap:.3f}; seed noise (fp32 seed 1 vs seed 0) "
        f"{noise:.3f}. Probe: bf16 {results['bf16']['probe_end']}, fp32 {results['fp32']['probe_end']}, "
        f"fp32 seed 1 {results['fp32-seed1']['probe_end']}."
    )
    report.data["curves"] = {name: c.tolist() for name, c in curves.items()}
    report.data["losses"] = {name: r["losses"] for name, r in results.items()}
    report.data["bf16_gap"], report.data["seed_noise"] = gap, noise
    report.write(args.out)


if __name__ == "__main__":
    main()
