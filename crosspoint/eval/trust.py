"""How far a served classify version can be trusted: calibration, OOD detection, up_axis=auto.

    crosspoint eval trust --repository model_repository --out docs/results/trust.json \
        --diagram docs/images/reliability.png

Runs the exported graph (ONNX Runtime, the file the gateway serves) with the version's calibration.json
+ ood.npz (written by `crosspoint calibrate`) on:
- the shared ModelNet40 test split: ECE (15 bins) before/after temperature scaling, and the
  in-distribution side of every OOD measurement;
- the OOD set of crosspoint/eval/ood_set.py: AUROC and FPR at 95% TPR of each candidate score
  (max softmax, energy, Mahalanobis as shipped, kNN distance to the fitting embeddings);
- `test_rows` test shapes each turned by a random signed axis permutation (one of 48, reflections
  included): top-1 of up_axis=auto (6 candidate up axes, the gateway's rule export.trust.auto_choice)
  vs the same shapes upright, beside the other ways to pick (lowest ood_score, highest confidence,
  rank sums with the up-axis selector) and two ceilings no picker of the 6 passes (the true up axis
  handed over with the heading still random; the best of the 6); and the axis auto keeps for every
  shared mesh.
Note: the OOD set doubles as the set the shipped candidate was chosen on (there is no second one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from export.calibrate import (
    calibration_data,
    fit_ood_stats,
    reliability,
    run_graph,
    softmax,
)
from export.repository import ONNX_FILE, read_model_metadata, version_dir
from export.trust import (
    AUTO_UP_AXES,
    Trust,
    auto_candidates,
    auto_choice,
    choose_up_axis,
    load_trust,
    turn_randomly,
)

KNN_K = 5
SHIPPED = "mahalanobis (avg-pool half)"


def auroc(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    """Area under ROC with OOD as the positive class (higher score = more OOD)."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(id_scores)), np.ones(len(ood_scores))]
    return float(roc_auc_score(y, np.r_[id_scores, ood_scores]))


def fpr_at_tpr(id_scores: np.ndarray, ood_scores: np.ndarray, tpr: float = 0.95) -> float:
    """Share of OOD shapes accepted when the cut-off keeps `tpr` of the in-distribution ones."""
    cut = np.quantile(id_scores, tpr, method="higher")
    return float((np.asarray(ood_scores) <= cut).mean())


def candidate_scores(
    logits: np.ndarray,
    embedding: np.ndarray,
    temperature: float,
    trust: Any,
    fit_embedding: np.ndarray,
    whole: Any,
) -> dict[str, np.ndarray]:
    """Each candidate OOD score (higher = less like the training data)."""
    from scipy.special import logsumexp

    unit = embedding / np.linalg.norm(embedding, axis=1, keepdims=True)
    bank = fit_embedding / np.linalg.norm(fit_embedding, axis=1, keepdims=True)
    knn = np.sort(1.0 - unit @ bank.T, axis=1)[:, KNN_K - 1]
    return {
        "max_softmax": -softmax(logits, temperature).max(axis=1),
        "energy": -logsumexp(np.asarray(logits, dtype=np.float64), axis=1),
        "mahalanobis (whole embedding)": whole.score(embedding),
        f"knn{KNN_K} (cosine, whole embedding)": knn,
        SHIPPED: trust.ood_scores(embedding),
    }


def _run_ragged(graph: Path, clouds: list[np.ndarray], cache_dir: Path | None) -> dict[str, np.ndarray]:
    """Graph outputs for clouds of different sizes (one batch per size), in input order."""
    sizes = np.array([len(c) for c in clouds])
    result: dict[str, np.ndarray] = {}
    for n in np.unique(sizes):
        rows = np.flatnonzero(sizes == n)
        out = run_graph(graph, np.stack([clouds[i] for i in rows]), cache_dir=cache_dir)
        for name, value in out.items():
            if name not in result:
                result[name] = np.zeros((len(clouds), *value.shape[1:]), dtype=value.dtype)
            result[name][rows] = value
    return result


def reliability_diagram(before: dict[str, Any], after: dict[str, Any], path: Path, title: str) -> None:
    """Two panels (before / after temperature scaling): accuracy per confidence bin vs the diagonal."""
    from PIL import Image, ImageDraw

    size, pad = 300, 40
    image = Image.new("RGB", (2 * size + 3 * pad, size + 2 * pad + 20), "white")
    draw = ImageDraw.Draw(image)
    draw.text((pad, 6), title, fill=(0, 0, 0))
    for panel, (name, doc) in enumerate((("before", before), ("after", after))):
        x0, y0 = pad + panel * (size + pad), pad + 10
        draw.rectangle((x0, y0, x0 + size, y0 + size), outline=(0, 0, 0))
        draw.line((x0, y0 + size, x0 + size, y0), fill=(160, 160, 160))
        width = size / doc["bins"]
        for row in doc["table"]:
            left = x0 + row["bin"] * width
            top = y0 + size * (1 - row["accuracy"])
            draw.rectangle((left + 1, top, left + width - 1, y0 + size), fill=(70, 120, 200))
            gap = y0 + size * (1 - row["confidence"])
            draw.line((left + 1, gap, left + width - 1, gap), fill=(220, 60, 60), width=2)
        draw.text((x0 + 4, y0 + 4), f"{name}: ECE {doc['ece']:.3f}", fill=(0, 0, 0))
        draw.text(
            (x0, y0 + size + 4), "confidence 0 .. 1 (red: mean confidence; blue: accuracy)", fill=(0, 0, 0)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def evaluate_trust(
    repository: Path,
    version: int | None = None,
    *,
    per_family: int = 40,
    test_rows: int = 500,
    seed: int = 0,
    cache_dir: Path | None = None,
    diagram: Path | None = None,
) -> dict[str, Any]:
    from crosspoint.data import load_modelnet40_npz
    from crosspoint.data.prepared import shared_data_dir
    from crosspoint.eval.ood_set import SHARED_MESHES, ood_shapes
    from crosspoint.geometry import load, prepare

    metadata = read_model_metadata(repository, "classify", version)
    directory = version_dir(repository, "classify", metadata.version)
    trust = load_trust(directory)
    if trust is None or trust.temperature is None:
        raise ValueError(f"{directory}: no calibration; run `crosspoint calibrate` first")
    graph = directory / ONNX_FILE
    num_points = metadata.num_points
    val_fraction, split_seed = metadata.head_split()
    calib = calibration_data(
        num_points, val_fraction, split_seed, int(trust.document["data"]["fit_per_class"])
    )
    fit = {"embedding": run_graph(graph, calib.points, cache_dir=cache_dir)["embedding"][calib.fit_idx]}
    test = load_modelnet40_npz(split="test", num_points=num_points)
    out = run_graph(graph, test.points, cache_dir=cache_dir, label="test")
    t = trust.temperature
    doc: dict[str, Any] = {"model": "classify", "version": metadata.version, "temperature": t}
    before, after = (
        reliability(softmax(out["logits"]), test.labels),
        reliability(softmax(out["logits"], t), test.labels),
    )
    doc["calibration"] = {"test_rows": len(test), "before": before, "after": after}
    if diagram is not None:
        reliability_diagram(
            before,
            after,
            diagram,
            f"classify v{metadata.version}: ModelNet40 test ({len(test)} shapes), T={t:.3f}",
        )

    shapes = ood_shapes(per_family)
    families = np.array([s.family for s in shapes])
    clouds = [s.prepare(num_points) for s in shapes]
    ood = _run_ragged(graph, clouds, cache_dir)
    rank = int(trust.document["ood"]["rank"])
    whole = fit_ood_stats(fit["embedding"], calib.labels[calib.fit_idx], rank)
    id_scores = candidate_scores(out["logits"], out["embedding"], t, trust, fit["embedding"], whole)
    ood_scores = candidate_scores(ood["logits"], ood["embedding"], t, trust, fit["embedding"], whole)
    table: dict[str, dict[str, Any]] = {}
    for name in id_scores:
        row: dict[str, Any] = {
            "auroc": auroc(id_scores[name], ood_scores[name]),
            "fpr_at_95tpr": fpr_at_tpr(id_scores[name], ood_scores[name]),
        }
        row["auroc_by_family"] = {
            f: auroc(id_scores[name], ood_scores[name][families == f]) for f in sorted(set(families))
        }
        table[name] = row
    shipped = ood_scores[SHIPPED]
    doc["ood"] = {
        "ood_rows": len(shapes),
        "rows_by_family": {f: int((families == f).sum()) for f in sorted(set(families))},
        "candidates": table,
        "shipped": SHIPPED,
        "threshold": trust.threshold,
        "test_in_distribution_rate": float(trust.in_distribution(id_scores[SHIPPED]).mean()),
        "ood_rejected_rate": float((~trust.in_distribution(shipped)).mean()),
        "ood_rejected_by_family": {
            f: float((~trust.in_distribution(shipped[families == f])).mean()) for f in sorted(set(families))
        },
    }

    # up_axis=auto on test rows turned by random signed axis permutations
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(test), size=min(test_rows, len(test)), replace=False))
    turned, truth, turns = turn_randomly(test.points[rows], rng)
    auto = run_graph(graph, auto_candidates(turned), cache_dir=cache_dir, label="auto")
    doc["up_axis_auto"] = compare_up_axis_rules(
        trust, auto, truth, test.labels[rows], out["logits"][rows], np.linalg.det(turns) < 0
    )
    meshes: list[dict[str, Any]] = []
    root = shared_data_dir() / "meshes"
    names = metadata.class_names or []
    for file in sorted(p.name for p in root.iterdir()):
        try:
            points, _ = prepare(load(root / file), num_points=num_points, seed=0)
        except Exception as exc:  # the refused files (empty, external buffers, too few points)
            meshes.append({"file": file, "refused": type(exc).__name__})
            continue
        res = run_graph(graph, auto_candidates(points[None]), cache_dir=cache_dir)
        s = trust.ood_scores(res["embedding"])
        p = softmax(res["logits"], t)
        choice = auto_choice(trust, res["embedding"], p.max(-1))
        assert choice is not None
        i, up_scores = choice
        meshes.append(
            {
                "file": file,
                "of_no_modelnet40_class": file in SHARED_MESHES,
                "axis": AUTO_UP_AXES[i],
                "axis_by_ood_score": AUTO_UP_AXES[choose_up_axis(s)],
                "label": names[int(p[i].argmax())],
                "probability": float(p[i].max()),
                "ood_score": float(s[i]),
                "in_distribution": bool(trust.in_distribution(s[i : i + 1])[0]),
                "scores": {a: float(v) for a, v in zip(AUTO_UP_AXES, up_scores, strict=True)},
                "ood_scores": {a: float(v) for a, v in zip(AUTO_UP_AXES, s, strict=True)},
            }
        )
    doc["up_axis_auto"]["shared_meshes"] = meshes
    return doc


def _rank_sum(*keys: np.ndarray) -> np.ndarray:
    """Per shape, the candidates ranked by each key (0 = best = lowest) and the ranks summed [M, 6]."""
    return sum((np.argsort(np.argsort(k, axis=1, kind="stable"), axis=1) for k in keys), np.zeros(1))


def compare_up_axis_rules(
    trust: Trust,
    auto: dict[str, np.ndarray],
    truth: np.ndarray,
    labels: np.ndarray,
    upright_logits: np.ndarray,
    mirrored: np.ndarray,
) -> dict[str, Any]:
    """Top-1 of each way to pick one of the 6 candidates of turned shapes (`auto`: the graph's outputs,
    auto_candidates order), against the same shapes upright, and the ceilings no picker passes."""
    n, a = len(truth), len(AUTO_UP_AXES)
    embedding = auto["embedding"]
    probs = trust.probabilities(auto["logits"]).reshape(n, a, -1)
    confidence = probs.max(-1)
    ood = trust.ood_scores(embedding).reshape(n, a)
    correct = probs.argmax(-1) == labels[:, None]  # [n, 6]: would this candidate be classified right
    every = np.arange(n)
    rules: dict[str, np.ndarray] = {
        "lowest ood_score": np.array([choose_up_axis(ood[i]) for i in every]),
        "highest confidence": np.array([choose_up_axis(-confidence[i], ood[i]) for i in every]),
    }
    shipped_rule = "highest confidence"
    if trust.up is not None:
        up = trust.up.logits(embedding).reshape(n, a)
        rules["upright selector (log-odds)"] = np.array([choose_up_axis(-up[i], ood[i]) for i in every])
        weight = trust.up.confidence_weight
        shipped_rule = (
            f"upright log-odds + {weight:g} x confidence" if weight else "upright selector (log-odds)"
        )
        keys = trust.up.keys(embedding, confidence.ravel()).reshape(n, a)
        rules[shipped_rule] = np.array([choose_up_axis(-keys[i], ood[i]) for i in every])
        rules["upright + ood_score (rank sum)"] = np.array(
            [choose_up_axis(r, -up[i]) for i, r in enumerate(_rank_sum(-up, ood))]
        )
        rules["upright + confidence (rank sum)"] = np.array(
            [choose_up_axis(r, -up[i]) for i, r in enumerate(_rank_sum(-up, -confidence))]
        )
    # What the gateway keeps (export.trust.auto_choice) is the rule measured as shipped.
    served = [auto_choice(trust, embedding[i * a : (i + 1) * a], confidence[i]) for i in every]
    assert [c[0] for c in served if c is not None] == rules[shipped_rule].tolist()
    upright = float((upright_logits.argmax(-1) == labels).mean())
    table = {
        name: {
            "top1": float(correct[every, pick].mean()),
            "axis_found": float((pick == truth).mean()),
            "over_upright": float(correct[every, pick].mean()) / upright,
            "in_distribution_rate": float(trust.in_distribution(ood[every, pick]).mean()),
        }
        for name, pick in rules.items()
    }
    shipped = table[shipped_rule]
    oracle = correct[every, truth]
    return {
        "rows": n,
        "shipped": shipped_rule,
        "upright_top1": upright,
        "rules": table,
        "turned_auto_top1": shipped["top1"],
        "auto_axis_found": shipped["axis_found"],
        "auto_over_upright": shipped["over_upright"],
        "auto_in_distribution_rate": shipped["in_distribution_rate"],
        "turned_fixed_y_top1": float(correct[:, AUTO_UP_AXES.index("+y")].mean()),
        # Ceilings: the true up axis handed over (heading still random), and the best of the 6.
        "turned_oracle_up_top1": float(oracle.mean()),
        "turned_oracle_up_over_upright": float(oracle.mean()) / upright,
        "turned_oracle_up_top1_rotations": float(oracle[~mirrored].mean()),
        "turned_oracle_up_top1_mirrored": float(oracle[mirrored].mean()),
        "turned_any_candidate_top1": float(correct.any(axis=1).mean()),
    }


def markdown(doc: dict[str, Any]) -> str:
    """The README tables."""
    lines = ["| OOD score | AUROC | FPR at 95% TPR |", "|---|---|---|"]
    for name, row in doc["ood"]["candidates"].items():
        mark = " (shipped)" if name == doc["ood"]["shipped"] else ""
        lines.append(f"| {name}{mark} | {row['auroc']:.3f} | {row['fpr_at_95tpr']:.3f} |")
    cal = doc["calibration"]
    lines += [
        "",
        f"ECE (15 bins, ModelNet40 test, {cal['test_rows']} shapes): {cal['before']['ece']:.3f} before, "
        f"{cal['after']['ece']:.3f} after temperature scaling (T = {doc['temperature']:.3f}).",
    ]
    auto = doc["up_axis_auto"]
    lines += [
        "",
        f"up_axis=auto on {auto['rows']} test shapes, each turned by a random signed axis permutation "
        f"(new up axis, random heading, mirror images included); upright top-1 {auto['upright_top1']:.3f}:",
        "",
        "| orientation picked by | top-1 | of upright | up axis found | in_distribution |",
        "|---|---|---|---|---|",
    ]
    for name, row in auto["rules"].items():
        label = f"{name} (shipped)" if name == auto["shipped"] else name
        lines.append(
            f"| {label} | {row['top1']:.3f} | {row['over_upright']:.1%} | {row['axis_found']:.1%} "
            f"| {row['in_distribution_rate']:.1%} |"
        )
    lines += [
        f"| fixed y (no auto) | {auto['turned_fixed_y_top1']:.3f} | "
        f"{auto['turned_fixed_y_top1'] / auto['upright_top1']:.1%} | | |",
        f"| ceiling: the true up axis given, heading still random | {auto['turned_oracle_up_top1']:.3f} | "
        f"{auto['turned_oracle_up_over_upright']:.1%} | 100% | |",
        f"| ceiling: the best of the 6 candidates | {auto['turned_any_candidate_top1']:.3f} | "
        f"{auto['turned_any_candidate_top1'] / auto['upright_top1']:.1%} | | |",
        "",
        f"With the true up axis given, top-1 is {auto['turned_oracle_up_top1_rotations']:.3f} on the turns "
        f"that are rotations and {auto['turned_oracle_up_top1_mirrored']:.3f} on the mirror images.",
    ]
    return "\n".join(lines)
