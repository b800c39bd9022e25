"""Benchmarks: alternatives measured side by side, interleaved, in one run (the machine is shared).

    python -m bench.model        # model only: eager PyTorch vs naive ONNX vs our ONNX vs TorchScript
    python -m bench.preprocess   # mesh / point cloud -> 1024 normalized points, per stage
    python -m bench.gateway      # the gateway on loopback vs model-only vs a naive FastAPI+PyTorch server
    python -m bench.triton       # gateway --backend triton, and the batch gRPC client straight to Triton

Each writes `bench/results/<name>.md` and `.json` (`--out DIR` elsewhere); `--quick` is a tiny smoke run.
"""
