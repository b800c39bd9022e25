"""Prometheus metrics, one registry per app (tests build several apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The gateway's instruments; `registry` is what `/metrics` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "crosspoint_requests", "HTTP requests answered", ["endpoint", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "crosspoint_request_seconds",
            "HTTP request latency",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter("crosspoint_errors", "Error answers by error code", ["code"], registry=r)
        self.batch_size = Histogram(
            "crosspoint_batch_size", "Rows per backend call", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.inference_latency = Histogram(
            "crosspoint_inference_seconds",
            "Backend call latency",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("crosspoint_queue_depth", "Rows waiting for the backend", registry=r)
        self.parse_latency = Histogram(
            "crosspoint_parse_seconds",
            "Upload parse + prepare time in a worker",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.parse_workers = Gauge("crosspoint_parse_workers", "Parse worker processes alive", registry=r)
        self.parse_restarts = Counter(
            "crosspoint_parse_worker_restarts", "Parse workers replaced, by reason", ["reason"], registry=r
        )
        self.model_version = Gauge(
            "crosspoint_model_info", "1 for the version each model serves", ["model", "version"], registry=r
        )
        self.reloads = Counter("crosspoint_model_reloads", "Model versions swapped in", ["model"], registry=r)
        self.load_failures = Counter(
            "crosspoint_model_load_failures",
            "Model versions that failed to load (each set of files counted once)",
            ["model"],
            registry=r,
        )
