"""The collection store at scale: add throughput, search latency, recall@10 against exact search, memory.

    .venv/bin/python -m bench.collections --sizes 10000 100000 --out bench/results/collections

Items are synthetic 2048-d embeddings with class-like structure (a mixture of 400 clusters in a
128-d latent space, projected to 2048-d, plus isotropic noise): the index's behaviour depends on the
data, and real embeddings are clustered and low-rank, not uniform noise. Everything goes through
`CollectionStore` as the gateway uses it: adds in batches of 64 (one SQLite transaction, fsynced, then
the usearch index), single-query searches (HNSW + the metadata of the matches from SQLite), then a
restart from the snapshot and a rebuild from the rows. Recall@10 is measured against exact cosine
search (numpy, float32) over the same items.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from server.services.collection_store import CollectionStore, NewItem, new_index

DIM = 2048
BATCH = 64


def synthetic(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    latent_dim, clusters = 128, 400
    centres = rng.standard_normal((clusters, latent_dim)).astype(np.float32)
    projection = (rng.standard_normal((latent_dim, DIM)) / np.sqrt(latent_dim)).astype(np.float32)
    owner = rng.integers(0, clusters, count)
    latent = centres[owner] + 0.6 * rng.standard_normal((count, latent_dim)).astype(np.float32)
    vectors = latent @ projection + 0.3 * rng.standard_normal((count, DIM)).astype(np.float32)
    return vectors.astype(np.float32), owner


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def exact_top(items: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    unit = items / np.linalg.norm(items, axis=1, keepdims=True)
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    out = []
    for start in range(0, len(q), 100):
        scores = q[start : start + 100] @ unit.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        out.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(out)


def run(size: int, queries: int, root: Path) -> dict[str, Any]:
    vectors, owner = synthetic(size + queries, seed=size)
    items, probe = vectors[:size], vectors[size:]
    store = CollectionStore(root, snapshot_every=10**9)
    store.create("bench", "", "embed", "bench", DIM)
    rss_before = rss_mb()
    started = time.perf_counter()
    for start in range(0, size, BATCH):
        batch = [
            NewItem(f"i{i}", items[i], label=f"c{owner[i]}") for i in range(start, min(start + BATCH, size))
        ]
        store.upsert("bench", batch, max_items=size)
    add_s = time.perf_counter() - started
    index_bytes = store.memory_bytes("bench")

    latencies = []
    found = []
    for q in probe:
        t0 = time.perf_counter()
        matches = store.search("bench", q, 10)
        latencies.append(time.perf_counter() - t0)
        found.append([int(m.id[1:]) for m in matches])
    truth = exact_top(items, probe, 10)
    recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))

    # the raw index alone, to separate HNSW from the SQLite metadata lookups
    raw = new_index(DIM)
    raw.add(np.arange(size, dtype=np.uint64), items / np.linalg.norm(items, axis=1, keepdims=True))
    raw_lat = []
    for q in probe:
        t0 = time.perf_counter()
        raw.search(q / np.linalg.norm(q), 10)
        raw_lat.append(time.perf_counter() - t0)
    del raw

    t0 = time.perf_counter()
    store.close()
    close_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    reopened = CollectionStore(root)
    reopened.search("bench", probe[0], 10)  # opens the snapshot
    reopen_s = time.perf_counter() - t0
    reopened.close()
    for snapshot in (root / "index").glob("*.usearch"):
        snapshot.unlink()
    t0 = time.perf_counter()
    rebuilt = CollectionStore(root)
    rebuilt.search("bench", probe[0], 10)  # no snapshot: rebuilt from the rows
    rebuild_s = time.perf_counter() - t0
    rebuilt.close()
    lat = np.array(latencies) * 1000
    raw_ms = np.array(raw_lat) * 1000
    return {
        "items": size,
        "queries": queries,
        "add_items_per_s": round(size / add_s, 1),
        "search_p50_ms": round(float(np.percentile(lat, 50)), 2),
        "search_p99_ms": round(float(np.percentile(lat, 99)), 2),
        "hnsw_only_p50_ms": round(float(np.percentile(raw_ms, 50)), 2),
        "hnsw_only_p99_ms": round(float(np.percentile(raw_ms, 99)), 2),
        "recall_at_10": round(recall, 4),
        "index_mb": round(index_bytes / 2**20, 1),
        "rss_growth_mb": round(rss_mb() - rss_before, 1),
        "sqlite_mb": round((root / "collections.sqlite3").stat().st_size / 2**20, 1),
        "snapshot_write_s": round(close_s, 2),
        "open_from_snapshot_s": round(reopen_s, 2),
        "rebuild_from_rows_s": round(rebuild_s, 2),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    head = (
        "| items | add items/s | search p50 / p99 ms | HNSW only p50 / p99 ms | recall@10 | index MB | "
        "SQLite MB | open: snapshot / rebuild s |\n|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['items']:,} | {r['add_items_per_s']:,} | {r['search_p50_ms']} / {r['search_p99_ms']} | "
        f"{r['hnsw_only_p50_ms']} / {r['hnsw_only_p99_ms']} | {r['recall_at_10']:.3f} | {r['index_mb']} | "
        f"{r['sqlite_mb']} | {r['open_from_snapshot_s']} / {r['rebuild_from_rows_s']} |\n"
        for r in rows
    )
    return head + body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=None, help="write OUT.json and OUT.md")
    args = parser.parse_args(argv)
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-collections-") as tmp:
            rows.append(run(size, args.queries, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    doc = {
        "rows": rows,
        "dim": DIM,
        "index": "usearch HNSW f16 cos, connectivity 16, expansion_add 128, expansion_search 64",
        "cpus": os.cpu_count(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    table = markdown(rows)
    print(table)
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(table)


if __name__ == "__main__":
    main()
