"""Collections on real shapes, everything through the HTTP API: self-retrieval, precision@10, few-shot.

    .venv/bin/python -m bench.collections_eval --out bench/results/collections_eval.json

The shared ModelNet40 test split (2,336 shapes) is added to one collection of a real gateway (a
`crosspoint serve` subprocess on the shipped model_repository, embed only), labelled with its class.
- self-retrieval: each shape sent again with sampling seed 1 (it was added with seed 0) must find itself
  top-1. Rows with 1,024 distinct points (source_kind 2) are sampled to 1,024 points, so another seed only
  reorders them and the match is exact; the 2,048-point rows (source_kind 0) really are resampled: both
  are reported.
- class precision@10, leave-one-out: search by each stored id (the item itself is left out), the share
  of the 10 matches with the query's class; shipped weights vs the same network with random weights
  (exported to a temporary repository and served the same way).
- few-shot: per draw, N classes, K labelled examples each enrolled (as embeddings read back from the
  collection), every other test shape of those classes classified by `/classify`; mean +- std over 10
  draws. The three classifiers (nearest class mean, kNN, logistic) are compared on the same draws with
  `server.services.fewshot` directly, which is the code the endpoint runs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.measure import REPO_ROOT
from bench.servers import free_port, server_process
from crosspoint.data.prepared import shared_data_dir

MODELNET = shared_data_dir() / "modelnet40_partial" / "modelnet40_partial_2048.npz"
PAPER_FEWSHOT = {"5w10s": 92.5, "5w20s": 94.9, "10w10s": 83.6, "10w20s": 87.9}  # CrossPoint, DGCNN
BATCH = 32


def load_test_split(limit: int) -> tuple[list[np.ndarray], list[str], np.ndarray]:
    with np.load(MODELNET) as data:
        rows = np.flatnonzero(data["split"] == 1)
        if limit:
            rows = rows[np.linspace(0, len(rows) - 1, limit).astype(int)]
        n_points = data["n_points"][rows]
        every = data["points"]  # an NpzFile reads the whole array on each access: once
        points = [every[r, : n_points[i]].astype(np.float32) for i, r in enumerate(rows)]
        names = [str(data["class_names"][label]) for label in data["labels"][rows]]
        kinds = data["source_kind"][rows]
    return points, names, kinds


def random_repository(root: Path, seed: int = 0) -> Path:
    """The shipped embed network with default-initialised weights, exported like the shipped one."""
    from crosspoint import checkpoint
    from crosspoint.eval.run import random_twin
    from export import export_checkpoints

    shipped = checkpoint.load(REPO_ROOT / "weights" / "crosspoint_dgcnn_cls.safetensors")
    twin = random_twin(shipped.model, shipped.model_name, seed)
    path = root / "random.safetensors"
    config: dict[str, Any] = {
        k: shipped.config[k] for k in ("preprocess", "class_names") if k in shipped.config
    }
    checkpoint.save(path, twin, config)
    export_checkpoints([path], root / "repo", models=["embed"], parity_shapes=1)
    return root / "repo"


def check(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:500]}")
    return response.json()


def add_all(client: httpx.Client, name: str, points: list[np.ndarray], labels: list[str]) -> dict[str, Any]:
    check(client.post("/v1/collections", json={"name": name}))
    started = time.perf_counter()
    for start in range(0, len(points), BATCH):
        items = [
            {"id": f"s{i}", "points": points[i].tolist(), "label": labels[i]}
            for i in range(start, min(start + BATCH, len(points)))
        ]
        body = check(client.post(f"/v1/collections/{name}/items:batch", json={"items": items}))
        failed = [e for e in body["items"] if e["status"] >= 300]
        if failed:
            raise RuntimeError(f"items failed: {failed[:3]}")
    seconds = time.perf_counter() - started
    return {
        "items": len(points),
        "seconds": round(seconds, 1),
        "items_per_s": round(len(points) / seconds, 2),
    }


def self_retrieval(
    client: httpx.Client, name: str, points: list[np.ndarray], kinds: np.ndarray
) -> dict[str, Any]:
    hits = np.zeros(len(points), dtype=bool)
    for i, p in enumerate(points):
        body = check(
            client.post(
                f"/v1/collections/{name}/search", params={"k": 1, "seed": 1}, json={"points": p.tolist()}
            )
        )
        hits[i] = body["matches"][0]["id"] == f"s{i}"
    out = {"top1": round(float(hits.mean()) * 100, 2), "n": len(points)}
    for kind in np.unique(kinds):
        mask = kinds == kind
        out[f"top1_source_kind_{int(kind)}"] = round(float(hits[mask].mean()) * 100, 2)
        out[f"n_source_kind_{int(kind)}"] = int(mask.sum())
    return out


def precision_at_10(client: httpx.Client, name: str, labels: list[str]) -> float:
    shares = []
    for i, label in enumerate(labels):
        body = check(client.post(f"/v1/collections/{name}/search", params={"k": 10}, json={"id": f"s{i}"}))
        shares.append(np.mean([m["label"] == label for m in body["matches"]]))
    return round(float(np.mean(shares)) * 100, 2)


def stored_embeddings(client: httpx.Client, name: str, count: int) -> tuple[np.ndarray, str]:
    rows, version = [], ""
    for i in range(count):
        body = check(client.get(f"/v1/collections/{name}/items/s{i}", params={"include_embedding": True}))
        rows.append(body["embedding"])
        version = body["version"]
    return np.asarray(rows, dtype=np.float32), version


def draws(
    labels: list[str], ways: int, shots: int, runs: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(enrolled rows, query rows) per draw: `ways` classes, `shots` enrolled each, the rest queried."""
    rng = np.random.default_rng(seed)
    classes = sorted(set(labels))
    by_class = {c: np.flatnonzero(np.asarray(labels) == c) for c in classes}
    usable = [c for c in classes if len(by_class[c]) > shots]
    out = []
    for _ in range(runs):
        chosen = rng.choice(usable, size=ways, replace=False)
        enrolled, queries = [], []
        for c in chosen:
            rows = rng.permutation(by_class[c])
            enrolled.append(rows[:shots])
            queries.append(rows[shots:])
        out.append((np.concatenate(enrolled), np.concatenate(queries)))
    return out


def fewshot_api(
    client: httpx.Client,
    embeddings: np.ndarray,
    version: str,
    labels: list[str],
    episodes: list[tuple[np.ndarray, np.ndarray]],
    method: str,
) -> list[float]:
    accuracies = []
    for enrolled, queries in episodes:
        client.delete("/v1/collections/fewshot")
        check(client.post("/v1/collections", json={"name": "fewshot"}))
        items = [
            {"id": f"s{i}", "embedding": embeddings[i].tolist(), "version": version, "label": labels[i]}
            for i in enrolled
        ]
        for start in range(0, len(items), 64):
            check(
                client.post("/v1/collections/fewshot/items:batch", json={"items": items[start : start + 64]})
            )
        correct = 0
        for i in queries:
            body = check(
                client.post(
                    "/v1/collections/fewshot/classify",
                    params={"top_k": 1, "method": method},
                    json={"embedding": embeddings[i].tolist()},
                )
            )
            correct += body["predictions"][0]["label"] == labels[i]
        accuracies.append(100.0 * correct / len(queries))
    return accuracies


def fewshot_methods(
    embeddings: np.ndarray, labels: list[str], episodes: list[tuple[np.ndarray, np.ndarray]]
) -> dict[str, list[float]]:
    from server.services import fewshot

    out: dict[str, list[float]] = {m: [] for m in fewshot.METHODS}
    for enrolled, queries in episodes:
        for method in fewshot.METHODS:
            model = fewshot.fit(method, [labels[i] for i in enrolled], embeddings[enrolled])
            predicted = np.asarray(model.classes)[model.probabilities(embeddings[queries]).argmax(axis=1)]
            out[method].append(100.0 * float(np.mean(predicted == np.asarray(labels)[queries])))
    return out


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": round(float(np.mean(values)), 2), "std": round(float(np.std(values)), 2)}


def markdown(doc: dict[str, Any]) -> str:
    shipped, random = doc["shipped"], doc.get("random", {})
    sr = shipped["self_retrieval"]
    lines = [
        "| measure (ModelNet40 test split through the API) | shipped weights | random weights | paper |",
        "|---|---|---|---|",
        f"| self-retrieval top-1, query seed 1 vs added seed 0, all {sr['n']:,} shapes | {sr['top1']} | - | - |",
    ]
    for kind in (0, 2):
        if f"top1_source_kind_{kind}" in sr:
            what = "2,048-point rows (resampled)" if kind == 0 else "1,024-point rows (reordered only)"
            lines.append(
                f"| self-retrieval top-1, {sr[f'n_source_kind_{kind}']:,} {what} | {sr[f'top1_source_kind_{kind}']} | - | - |"
            )
    lines.append(
        f"| class precision@10, leave-one-out | {shipped['precision_at_10']} | {random.get('precision_at_10', '-')} | - |"
    )
    for key, value in shipped["fewshot_api"].items():
        ways, shots = key.split("w")
        paper = doc["paper_fewshot"].get(key, "-")
        lines.append(
            f"| few-shot {ways}-way {shots.rstrip('s')}-shot ({value['method']}) | {value['mean']} ± {value['std']} | - | {paper} |"
        )
    lines += [
        "",
        "| few-shot method (same draws, shipped weights) | " + " | ".join(shipped["fewshot_methods"]) + " |",
        "|---|" + "---|" * len(shipped["fewshot_methods"]),
    ]
    for method in ("mean", "knn", "logistic"):
        cells = [f"{v[method]['mean']} ± {v[method]['std']}" for v in shipped["fewshot_methods"].values()]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def serve(repository: Path, data_dir: Path) -> Any:
    port = free_port()
    env = {
        "CROSSPOINT_DATA_DIR": str(data_dir),
        "CROSSPOINT_MODELS": '["embed"]',
        "CROSSPOINT_RELOAD_INTERVAL_S": "0",
        "CROSSPOINT_LOG_LEVEL": "WARNING",
        "CROSSPOINT_MAX_BATCH_ITEMS": "64",
    }
    args = ["-m", "crosspoint.cli", "serve", "--port", str(port), "--model-repository", str(repository)]
    return server_process(args, port, "/readyz", env=env, timeout=300)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repository", type=Path, default=REPO_ROOT / "model_repository")
    parser.add_argument("--limit", type=int, default=0, help="use this many test shapes (0: all 2,336)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--skip-random", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--from-json", type=Path, default=None, help="only render OUT.md from a results JSON")
    args = parser.parse_args()
    if args.from_json:
        args.from_json.with_suffix(".md").write_text(markdown(json.loads(args.from_json.read_text())))
        return

    points, labels, kinds = load_test_split(args.limit)
    doc: dict[str, Any] = {"shapes": len(points), "classes": len(set(labels)), "data": str(MODELNET.name)}
    with tempfile.TemporaryDirectory(prefix="collections-eval-") as tmp:
        with (
            serve(args.repository, Path(tmp) / "data-shipped") as server,
            httpx.Client(base_url=server.url, timeout=600) as client,
        ):
            doc["shipped"] = {"add": add_all(client, "mn40", points, labels)}
            print("added", doc["shipped"]["add"], flush=True)
            doc["shipped"]["self_retrieval"] = self_retrieval(client, "mn40", points, kinds)
            print("self-retrieval", doc["shipped"]["self_retrieval"], flush=True)
            doc["shipped"]["precision_at_10"] = precision_at_10(client, "mn40", labels)
            print("precision@10", doc["shipped"]["precision_at_10"], flush=True)
            embeddings, version = stored_embeddings(client, "mn40", len(points))
            doc["shipped"]["version"] = version
            fewshot: dict[str, Any] = {}
            methods: dict[str, Any] = {}
            for ways in (5, 10, 40):
                for shots in (5, 10):
                    key = f"{ways}w{shots}s"
                    episodes = draws(labels, ways, shots, args.runs, seed=ways * 100 + shots)
                    methods[key] = {
                        m: summary(v) for m, v in fewshot_methods(embeddings, labels, episodes).items()
                    }
                    best = max(methods[key], key=lambda m: methods[key][m]["mean"])
                    accuracies = fewshot_api(client, embeddings, version, labels, episodes, best)
                    fewshot[key] = {**summary(accuracies), "method": best}
                    print(key, fewshot[key], methods[key], flush=True)
            doc["shipped"]["fewshot_api"] = fewshot
            doc["shipped"]["fewshot_methods"] = methods
        if not args.skip_random:
            repo = random_repository(Path(tmp) / "random")
            with (
                serve(repo, Path(tmp) / "data-random") as server,
                httpx.Client(base_url=server.url, timeout=600) as client,
            ):
                doc["random"] = {"add": add_all(client, "mn40", points, labels)}
                doc["random"]["precision_at_10"] = precision_at_10(client, "mn40", labels)
                print("random precision@10", doc["random"]["precision_at_10"], flush=True)
    doc["paper_fewshot"] = PAPER_FEWSHOT
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
        args.out.with_suffix(".md").write_text(markdown(doc))


if __name__ == "__main__":
    main()
