"""Gateway settings: one pydantic-settings object, read from `CROSSPOINT_*` environment variables.

`crosspoint serve` turns its options into these variables, so every uvicorn worker process builds the
same `Settings()`; tests pass a `Settings(...)` to `create_app` directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from export.contract import MODEL_NAMES

REPO_ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024


class Settings(BaseSettings):
    """Everything the gateway can be told; defaults serve `model_repository/` on ONNX Runtime (CPU)."""

    model_config = SettingsConfigDict(env_prefix="CROSSPOINT_", extra="ignore")

    # Models and backend
    model_repository: Path = REPO_ROOT / "model_repository"
    models: list[str] = Field(default_factory=lambda: list(MODEL_NAMES))
    backend: Literal["onnxruntime", "triton"] = "onnxruntime"
    triton_url: str = "127.0.0.1:8001"  # gRPC host:port
    triton_timeout_s: float = Field(default=30.0, gt=0)
    reload_interval_s: float = Field(default=5.0, ge=0)  # 0 disables polling for new versions

    # ONNX Runtime
    ort_intra_op_threads: int = Field(default=0, ge=0)  # 0 lets ONNX Runtime choose
    ort_inter_op_threads: int = Field(default=1, ge=0)
    # ORT's intra-op threads spin between kernels by default. Here they share the cores with the parse
    # workers (and the event loop), and a spinning thread takes CPU a parse needs: with spinning off,
    # 9-10% more requests/s at 32 clients on 2 shared cores (README "Benchmarks"). On for dedicated cores.
    ort_allow_spinning: bool = False
    ort_providers: list[str] | None = None  # None: CUDA when available, else CPU
    # ONNX Runtime's CPU arena keeps its high-water mark for the life of the process: one segment call of
    # 8 rows x 4096 points left the gateway at 3.8 GB for good. Without it, a call's memory goes back when
    # it ends, at no measurable cost in latency (README "Reliability").
    ort_cpu_mem_arena: bool = False
    # Pinned glibc mmap threshold for the gateway and its parse workers (0: glibc's own, which rises after
    # the first large free and then keeps such blocks in the heap: +50-170 MB per large segment call).
    malloc_mmap_threshold_bytes: int = Field(default=128 * 1024, ge=0)
    # A batch of one runs different reduction kernels than a batch of two or more (1-ulp differences);
    # padding lone rows to two makes an answer independent of which requests it was batched with.
    batch_invariant: bool = True
    # "auto": each model at the precision and runtime its precision.json passed within the budget
    # (export/precision.py: OpenVINO bf16 or f32, sub-batches on `cpu_streams` streams), else fp32 ONNX
    # Runtime; "fp32": ONNX Runtime fp32 for all (the reference the budget is measured against).
    precision: Literal["auto", "fp32"] = "auto"
    cpu_streams: int = Field(default=2, ge=1)  # OpenVINO streams (one thread each) of the fast path

    # Micro-batching and backpressure
    # Rows per ONNX Runtime call. On CPU a bigger batch buys no throughput here (embed: ~100 ms per cloud
    # at batch 2 and at 16; model-only 10.4/12.4/11.8 clouds/s at batch 1/4/14), but a request that just
    # misses a call waits for a whole one: at 32 clients (mesh uploads, 2 cores) 4 rows gave p99 8.6-9.0 s
    # against 11.1-13.7 s at 16, at the same or more req/s (README "Serving speed"). GPUs want 16 or more.
    max_batch_size: int = Field(default=4, ge=1)
    max_batch_delay_ms: float = Field(default=5.0, ge=0)
    max_queue: int = Field(default=256, ge=1)  # rows waiting (or calls in flight, for Triton)
    retry_after_s: int = Field(default=1, ge=0)
    # A call's kNN holds rows x points x points distances (~11 bytes each measured, 8 x 4096^2 -> 1.5 GB):
    # rows per backend call are cut so that no call exceeds this many point pairs.
    max_batch_point_pairs: int = Field(default=2 * 4096 * 4096, ge=4096)

    # Untrusted input
    max_body_bytes: int = Field(default=32 * MiB, ge=1)
    max_batch_items: int = Field(default=64, ge=1)
    # Model rows x points one request may cost (413 above): segment without category is 16 rows, up_axis=auto
    # adds 6; 131,072 = two category-less segment calls at 4096 points, or 128 embeds at 1024.
    max_request_cost: int = Field(default=131_072, ge=1)
    max_input_points: int = Field(default=2_000_000, ge=1)  # vertices / points in one upload
    max_input_faces: int = Field(default=4_000_000, ge=1)
    max_vertex_labels: int = Field(default=500_000, ge=0)  # above this, segment answers vertex_labels=null
    parse_workers: int = Field(default=2, ge=1)
    parse_max_waiting: int = Field(default=256, ge=1)  # uploads waiting for a worker before 503
    parse_timeout_s: float = Field(default=20.0, gt=0)
    parse_memory_mb: int = Field(default=2048, ge=64)  # address space a worker may add beyond its start
    parse_max_tasks_per_worker: int = Field(default=200, ge=1)
    parse_start_timeout_s: float = Field(default=60.0, gt=0)

    # Sampling range (narrows, never widens, the model's own min_points/max_points)
    default_num_points: int | None = Field(default=None, ge=1)
    min_num_points: int | None = Field(default=None, ge=1)
    max_num_points: int | None = Field(default=None, ge=1)
    max_top_k: int = Field(default=50, ge=1)

    # Collections (server/services/collection_store.py): SQLite + usearch files live here
    data_dir: Path = REPO_ROOT / "data"
    collection_max_items: int = Field(default=100_000, ge=1)
    collection_max_metadata_bytes: int = Field(default=4096, ge=2)
    collection_max_k: int = Field(default=100, ge=1)
    collection_snapshot_every: int = Field(default=1000, ge=1)  # mutations between index snapshots

    # Operations
    api_key: SecretStr | None = None
    log_level: str = "INFO"
    log_format: Literal["json", "text"] = "json"
    graceful_timeout_s: int = Field(default=30, ge=0)

    @model_validator(mode="after")
    def _check_ranges(self) -> Settings:
        if self.min_num_points and self.max_num_points and self.min_num_points > self.max_num_points:
            raise ValueError("min_num_points > max_num_points")
        unknown = set(self.models) - set(MODEL_NAMES)
        if unknown:
            raise ValueError(f"unknown models {sorted(unknown)}; known: {', '.join(MODEL_NAMES)}")
        return self
