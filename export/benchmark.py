"""Moved to `bench/model.py`: the naive-export vs exported-graph comparison in ONNX Runtime is now
one part of `python -m bench.model`, which also times eager PyTorch and TorchScript (same inputs and
threads, interleaved), reports p50/p99, clouds/s, parity and GFLOP/s, and writes bench/results/.

    python -m export.benchmark [bench.model options]     # = python -m bench.model --forms onnx-naive onnx
    python -m export.benchmark --models segment --segment-batches 1 4

Run it from the checkout (bench/ is not part of the installed package). The tables are printed; the
files go to a temporary directory unless `--out DIR` is given (bench/results/ keeps the full run's).
"""

from __future__ import annotations

import sys
import tempfile


def main(argv: list[str] | None = None) -> None:
    from bench.model import main as bench_model

    args = ["--forms", "onnx-naive", "onnx", *(sys.argv[1:] if argv is None else argv)]
    if "--out" in args:
        bench_model(args)
        return
    with tempfile.TemporaryDirectory() as out:
        bench_model([*args, "--out", out])


if __name__ == "__main__":
    main()
