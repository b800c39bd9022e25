"""`crosspoint calibrate`: fit a served version's temperature and OOD statistics with its exported graph.

    crosspoint calibrate --repository model_repository                  # latest embed + classify
    crosspoint calibrate --repository model_repository -m classify --version 3

Data: the shared ModelNet40 train split, cut by `train_val_split` with the val_fraction and seed the
class head was trained with (read from the version's crosspoint.json; 0.1 / 0 otherwise):
- class means + the shared PPCA covariance (export/trust.py) from the fitting part (all of it, or
  `fit_per_class` shapes per class chosen with the seed);
- the OOD threshold from the validation part, which the statistics never saw: the 95th percentile of
  its scores, so 95% of validation shapes pass;
- the temperature (classify) minimises the negative log-likelihood of the validation part under a
  head that never saw it (`validation_logits`).
The graph runs on ONNX Runtime (CPU), the same file the gateway serves; its outputs over the train
split are cached (`cache_dir`, keyed by graph + points), so a second run takes seconds.
- the up-axis selector of up_axis=auto (export/trust.py UpSelector): UP_SHAPES shapes of the fitting
  part (seeded), each turned by a random signed axis permutation (new up axis + random heading, as
  `crosspoint eval trust` measures) and shown under the 6 candidate up axes; logistic regression on the
  embedding, label 1 for the true up; C chosen on UP_VAL_SHAPES validation shapes turned the same way.
Writes ood.npz and up_axis.npz, then calibration.json (atomically) into the version directory; nothing
else is touched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from export.metadata import ServingMetadata, file_sha256
from export.repository import ONNX_FILE, latest_version, read_model_metadata, version_dir, write_text_atomic
from export.trust import (
    AUTO_UP_AXES,
    CALIBRATION_FILE,
    CALIBRATION_FORMAT,
    OOD_FILE,
    OOD_METHOD,
    UP_FILE,
    UP_METHOD,
    OodStats,
    UpSelector,
    auto_candidates,
    turn_randomly,
)

log = logging.getLogger(__name__)

DEFAULT_RANK = 256
DEFAULT_FIT_PER_CLASS = 0  # 0 = every shape of the fitting part
TARGET_TPR = 0.95
ECE_BINS = 15
UP_SHAPES = 1500  # fitting shapes shown under all 6 up axes to the up-axis selector
UP_VAL_SHAPES = 300  # validation shapes, the same way: its C and its in_distribution cut-off
UP_CHUNK = 100
UP_CS = (0.1, 0.3, 1.0)
UP_CONFIDENCE_WEIGHTS = (0.0, 1.0, 3.0, 10.0, 30.0)


# --- running the exported graph ---


def onnx_session(path: Path, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_graph(
    path: Path, points: np.ndarray, *, batch_size: int = 16, cache_dir: Path | None = None, label: str = ""
) -> dict[str, np.ndarray]:
    """All outputs of the graph at `path` for clouds `points [M, N, 3]`, cached by (graph, points) bytes."""
    key = hashlib.sha256()
    key.update(file_sha256(path).encode())
    key.update(np.ascontiguousarray(points, dtype=np.float32).tobytes())
    cache = cache_dir / f"graph-{key.hexdigest()[:24]}.npz" if cache_dir is not None else None
    if cache is not None and cache.exists():
        with np.load(cache) as f:
            return {name: f[name] for name in f.files}
    session = onnx_session(path)
    names = [o.name for o in session.get_outputs()]
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}
    start = time.time()
    for i in range(0, len(points), batch_size):
        outs = session.run(None, {"points": np.asarray(points[i : i + batch_size], dtype=np.float32)})
        for name, value in zip(names, outs, strict=True):
            chunks[name].append(value)
        done = min(i + batch_size, len(points))
        if label and (done == len(points) or (i // batch_size) % 20 == 0):
            log.info("%s: %d/%d clouds, %.0f s", label, done, len(points), time.time() - start)
    result = {name: np.concatenate(parts) for name, parts in chunks.items()}
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_npz_atomic(cache, result)
    return result


def save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write then rename: a reader sees the old file or the new one, never a partial one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def shared_embedding(graph: Path, twin: Path, points: np.ndarray, probe: int = 32) -> bool:
    """True when `twin` (e.g. classify's graph) returns bit-identical embeddings to `graph` (embed's)
    on the first `probe` clouds: the two were exported from one backbone, so one run serves both."""
    if not twin.is_file() or twin.resolve() == graph.resolve():
        return False
    ours = run_graph(graph, points[:probe])["embedding"]
    theirs = run_graph(twin, points[:probe])["embedding"]
    return bool(np.array_equal(ours, theirs))


# --- fitting ---


def fit_ood_stats(
    embeddings: np.ndarray,
    labels: np.ndarray,
    rank: int = DEFAULT_RANK,
    features: tuple[int, int] | None = None,
) -> OodStats:
    """Class means and the PPCA estimate of the shared within-class covariance of embedding columns
    `features` ([start, stop); default all), export/trust.py."""
    full = np.asarray(embeddings, dtype=np.float64)
    features = features or (0, full.shape[1])
    x = full[:, features[0] : features[1]]
    classes = np.unique(labels)
    means = np.zeros((int(labels.max()) + 1, x.shape[1]))
    for c in classes:
        means[c] = x[labels == c].mean(axis=0)
    centred = x - means[labels]
    # Eigen-decomposition of the scatter through the SVD of the centred rows (n x D, n may be < D).
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    dof = max(len(x) - len(classes), 1)
    eigen = singular**2 / dof
    rank = min(rank, int((eigen > eigen[0] * 1e-12).sum()) - 1)
    total = float(eigen.sum())  # the trace: the sum over all D directions
    residual = (total - float(eigen[:rank].sum())) / (x.shape[1] - rank)
    if residual <= 0:
        raise ValueError("the embeddings span fewer directions than the PPCA rank")
    keep = [c for c in range(len(means)) if c in set(classes.tolist())]
    if len(keep) != len(means):
        raise ValueError(f"classes without fitting rows: {sorted(set(range(len(means))) - set(keep))}")
    return OodStats(
        means=means,
        basis=vt[:rank].T.copy(),
        variances=eigen[:rank],
        residual_variance=residual,
        features=features,
    )


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 that minimises the negative log-likelihood of softmax(logits / T) (Guo et al. 2017)."""
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(
        lambda log_t: nll(logits, labels, float(np.exp(log_t))), bounds=(-5.0, 5.0), method="bounded"
    )
    return float(np.exp(result.x))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, Any]:
    """Expected calibration error over `bins` equal-width confidence bins, and the per-bin table."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    table = []
    ece = 0.0
    for b in range(bins):
        inside = which == b
        n = int(inside.sum())
        if n:
            acc, conf = float(correct[inside].mean()), float(confidence[inside].mean())
            ece += n / len(labels) * abs(acc - conf)
            table.append({"bin": b, "count": n, "accuracy": acc, "confidence": conf})
    return {"ece": ece, "bins": bins, "accuracy": float(correct.mean()), "table": table}


def threshold_at(scores: np.ndarray, tpr: float = TARGET_TPR) -> float:
    """The score below which `tpr` of in-distribution rows fall (the in_distribution cut-off)."""
    return float(np.quantile(np.asarray(scores, dtype=np.float64), tpr, method="higher"))


def ood_features(embedding_dim: int) -> tuple[int, int]:
    """The embedding columns the OOD statistics use: DGCNN's average-pooled half ([max; avg] pooling;
    export/trust.py says why). A PointNet embedding (one max-pool) is used whole."""
    return (embedding_dim // 2, embedding_dim) if embedding_dim == 2048 else (0, embedding_dim)


# --- data ---


@dataclass(frozen=True)
class CalibrationData:
    points: np.ndarray  # the official train split, prepared [M, N, 3]
    labels: np.ndarray
    fit_idx: np.ndarray  # rows of the fitting part used for the OOD statistics
    head_idx: np.ndarray  # the whole fitting part (what a proxy class head trains on)
    val_idx: np.ndarray
    description: dict[str, Any]


def calibration_data(
    num_points: int,
    val_fraction: float,
    seed: int,
    fit_per_class: int = DEFAULT_FIT_PER_CLASS,
    data: Path | None = None,
) -> CalibrationData:
    from crosspoint.data import load_modelnet40_npz, train_val_split
    from crosspoint.data.modelnet import default_modelnet40_npz

    path = data or default_modelnet40_npz()
    train = load_modelnet40_npz(path, split="train", num_points=num_points)
    head_idx, val_idx = train_val_split(train.labels, val_fraction=val_fraction, seed=seed)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(train.labels[head_idx]):
        rows = head_idx[train.labels[head_idx] == c]
        chosen.append(np.sort(rng.permutation(rows)[:fit_per_class]) if fit_per_class > 0 else rows)
    fit_idx = np.sort(np.concatenate(chosen))
    return CalibrationData(
        points=train.points,
        labels=train.labels,
        fit_idx=fit_idx,
        head_idx=head_idx,
        val_idx=val_idx,
        description={
            "data": str(path.name),
            "data_sha256": file_sha256(path),
            "split": "official train, train_val_split(val_fraction, seed) as the class head used",
            "val_fraction": val_fraction,
            "seed": seed,
            "fit_rows": len(fit_idx),
            "fit_per_class": fit_per_class,
            "val_rows": len(val_idx),
            "num_points": num_points,
        },
    )


def validation_logits(
    metadata: ServingMetadata, sets: CalibrationData, outputs: dict[str, np.ndarray]
) -> tuple[np.ndarray, str]:
    """Logits of the validation part from a head that never saw it, and where they come from.

    `crosspoint train head` picks C on the validation part, then refits the served head on ALL of
    train (validation included): its own validation logits are those of training data and would
    make the temperature far too low. For such a head the same recipe (scaler + classifier + C, from
    crosspoint.json) is refitted on the fitting part only, on the graph's own embeddings, and its
    temperature is taken: the served head differs from it only by the 10% more data it saw.
    """
    training = metadata.training
    if training.get("task") != "linear_head":
        return outputs["logits"][sets.val_idx], "served head (it did not train on the validation part)"
    from sklearn.preprocessing import StandardScaler

    from crosspoint.train.head import make_classifier

    seed = int((training.get("head_config") or {}).get("seed", 0))
    x, y = outputs["embedding"], sets.labels
    scaler = StandardScaler().fit(x[sets.head_idx])
    clf = make_classifier(str(training["classifier"]), float(training["C"]), seed)
    clf.fit(scaler.transform(x[sets.head_idx]), y[sets.head_idx])
    logits = clf.decision_function(scaler.transform(x[sets.val_idx]))
    return np.asarray(logits, dtype=np.float64), (
        f"proxy head: {training['classifier']} C={training['C']} refitted on the fitting part "
        f"({len(sets.head_idx)} shapes); the served head was refitted on all of train, validation included"
    )


# --- the up-axis selector (up_axis=auto) ---


@dataclass(frozen=True)
class TurnedShapes:
    rows: np.ndarray  # rows of CalibrationData.points
    turned: np.ndarray  # those shapes, each turned by a random signed axis permutation [M, N, 3]
    truth: np.ndarray  # index into AUTO_UP_AXES of the axis that brings each upright again [M]


def turned_shapes(points: np.ndarray, rows: np.ndarray, count: int, seed: int) -> TurnedShapes:
    """`count` of `rows` chosen with `seed`, each turned at random (export.trust.turn_randomly). The
    order and the turns do not depend on `count`, so a smaller run is a prefix of a larger one (and
    reuses its cached graph outputs)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(np.asarray(rows))
    which = order[: min(count, len(order))]
    turned, truth, _ = turn_randomly(points[order], rng)
    return TurnedShapes(rows=which, turned=turned[: len(which)], truth=truth[: len(which)])


def up_axis_found(logits: np.ndarray, truth: np.ndarray) -> float:
    """Share of shapes whose most upright candidate (argmax of `logits [M * 6]`) is the true up axis."""
    return float((logits.reshape(len(truth), len(AUTO_UP_AXES)).argmax(1) == truth).mean())


def fit_up_selector(
    fit_embeddings: np.ndarray,
    fit_truth: np.ndarray,
    val_embeddings: np.ndarray,
    val_truth: np.ndarray,
    cs: tuple[float, ...] = UP_CS,
) -> tuple[UpSelector, dict[str, Any]]:
    """Logistic regression "this candidate is upright" (1 of each shape's 6 rows) on the standardised
    embedding; C chosen by how often the validation shapes' most upright candidate is the true one."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(fit_embeddings, dtype=np.float64)
    y = (np.arange(len(AUTO_UP_AXES))[None, :] == np.asarray(fit_truth)[:, None]).ravel()
    scaler = StandardScaler().fit(x)
    z = scaler.transform(x)
    found: dict[str, float] = {}
    best: tuple[float, float, UpSelector] | None = None
    for c in cs:
        clf = LogisticRegression(C=c, max_iter=2000).fit(z, y)
        scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
        weights = clf.coef_[0] / scale
        selector = UpSelector(weights, float(clf.intercept_[0] - scaler.mean_ @ weights))
        found[str(c)] = up_axis_found(selector.logits(val_embeddings), val_truth)
        if best is None or found[str(c)] > best[0]:  # ties keep the smaller C (listed first)
            best = (found[str(c)], c, selector)
    assert best is not None
    return best[2], {"C": best[1], "val_axis_found_by_C": found}


def candidate_outputs(
    graph: Path, turned: np.ndarray, *, cache_dir: Path | None = None, label: str = ""
) -> dict[str, np.ndarray]:
    """The graph's outputs for the 6 up_axis=auto candidates of each cloud ([M * 6, ...], auto_candidates
    order), run and cached in chunks of UP_CHUNK shapes so an interrupted run keeps what it did."""
    parts: dict[str, list[np.ndarray]] = {}
    for i in range(0, len(turned), UP_CHUNK):
        done = min(i + UP_CHUNK, len(turned))
        out = run_graph(graph, auto_candidates(turned[i:done]), cache_dir=cache_dir)
        for name, value in out.items():
            parts.setdefault(name, []).append(value)
        if label:
            log.info("%s: %d/%d shapes x %d up axes", label, done, len(turned), len(AUTO_UP_AXES))
    return {name: np.concatenate(value) for name, value in parts.items()}


def _fit_up_axis(
    graph: Path,
    sets: CalibrationData,
    seed: int,
    shapes: int,
    stats: OodStats,
    threshold: float,
    temperature: float | None,
    cache_dir: Path | None,
) -> tuple[UpSelector, dict[str, Any]]:
    """The up-axis selector of a version and its calibration.json section (module doc). With a
    temperature (classify) its confidence weight is the one of UP_CONFIDENCE_WEIGHTS whose keys give
    the best top-1 on the turned validation shapes (the served head refitted on them too: README)."""
    fit = turned_shapes(sets.points, sets.head_idx, shapes, seed)
    val = turned_shapes(sets.points, sets.val_idx, UP_VAL_SHAPES, seed + 1)
    fit_out = candidate_outputs(graph, fit.turned, cache_dir=cache_dir, label="up axis (fitting shapes)")
    val_out = candidate_outputs(graph, val.turned, cache_dir=cache_dir, label="up axis (validation shapes)")
    selector, info = fit_up_selector(fit_out["embedding"], fit.truth, val_out["embedding"], val.truth)
    val_embeddings = val_out["embedding"]
    confidence = None
    if temperature is not None:
        probabilities = softmax(val_out["logits"], temperature)
        confidence, predicted = probabilities.max(1), probabilities.argmax(1)
        correct = (predicted == np.repeat(sets.labels[val.rows], len(AUTO_UP_AXES))).reshape(
            -1, len(AUTO_UP_AXES)
        )
        top1 = {}
        for weight in UP_CONFIDENCE_WEIGHTS:
            keys = replace(selector, confidence_weight=weight).keys(val_embeddings, confidence)
            top1[str(weight)] = float(
                correct[np.arange(len(correct)), keys.reshape(correct.shape).argmax(1)].mean()
            )
        weight = max(UP_CONFIDENCE_WEIGHTS, key=lambda w: (top1[str(w)], -w))
        selector = replace(selector, confidence_weight=weight)
        info |= {"confidence_weight": weight, "val_top1_by_confidence_weight": top1}
    keys = selector.keys(val_embeddings, confidence)
    picks = keys.reshape(len(val.truth), len(AUTO_UP_AXES)).argmax(1)
    kept = val_embeddings.reshape(len(val.truth), len(AUTO_UP_AXES), -1)[np.arange(len(picks)), picks]
    section = {
        "method": UP_METHOD,
        "file": UP_FILE,
        "features": "the whole embedding",
        "score": "key = logistic log-odds that the candidate is the shape upright (+ confidence_weight x "
        "calibrated top-1 probability, classify); auto keeps the largest; the receipt shows the keys' softmax "
        "over the 6",
        "fit_shapes": len(fit.truth),
        "val_shapes": len(val.truth),
        "turns": "each shape turned by a random signed axis permutation (48: new up axis, heading, mirror), "
        "seeded; all 6 candidates of each, label 1 for the true up",
        "seed": {"fitting": seed, "validation": seed + 1},
        **info,
        "val_axis_found": up_axis_found(keys, val.truth),
        "val_kept_in_distribution": float((stats.score(kept) <= threshold).mean()),
    }
    return selector, section


# --- the command ---


def calibrate_version(
    repository: Path,
    model: str,
    version: int | None = None,
    *,
    fit_per_class: int = DEFAULT_FIT_PER_CLASS,
    rank: int = DEFAULT_RANK,
    data: Path | None = None,
    cache_dir: Path | None = None,
    up_shapes: int = UP_SHAPES,
) -> dict[str, Any]:
    """Fit and write calibration.json + ood.npz + up_axis.npz for one version of embed or classify;
    returns the document."""
    metadata = read_model_metadata(repository, model, version)
    directory = version_dir(repository, model, metadata.version)
    graph = directory / ONNX_FILE
    outputs = set(metadata.output_names)
    if "embedding" not in outputs:
        raise ValueError(f"{model}: the graph has no embedding output to score")
    val_fraction, seed = metadata.head_split()
    start = time.time()
    sets = calibration_data(metadata.num_points, val_fraction, seed, fit_per_class, data)
    source = graph
    if model == "embed" and latest_version(repository, "classify") is not None:
        twin = version_dir(repository, "classify") / ONNX_FILE
        if shared_embedding(graph, twin, sets.points):
            source = twin  # its outputs over train are likely cached already
    out = run_graph(source, sets.points, cache_dir=cache_dir, label=f"{model} (ModelNet40 train)")
    if source != graph:
        out = {"embedding": out["embedding"]}
    features = ood_features(out["embedding"].shape[1])
    stats = fit_ood_stats(out["embedding"][sets.fit_idx], sets.labels[sets.fit_idx], rank, features)
    val_labels = sets.labels[sets.val_idx]
    val_scores = stats.score(out["embedding"][sets.val_idx])
    threshold = threshold_at(val_scores)
    document: dict[str, Any] = {
        "format": CALIBRATION_FORMAT,
        "model": model,
        "version": metadata.version,
        "graph_sha256": file_sha256(graph),
        "embeddings_from": "this graph"
        if source == graph
        else f"{source.parent.parent.name} v{source.parent.name} (bit-identical embeddings on a 32-shape check)",
        "temperature": None,
        "ood": {
            "method": OOD_METHOD,
            "file": OOD_FILE,
            "rank": int(stats.basis.shape[1]),
            "threshold": threshold,
            "target_tpr": TARGET_TPR,
            "features": list(stats.features),
            "score": "min over classes of squared Mahalanobis distance / dim, on embedding columns features",
            "val_score_quantiles": {
                str(q): float(np.quantile(val_scores, q)) for q in (0.05, 0.5, 0.95, 0.99)
            },
        },
        "data": sets.description,
    }
    if "logits" in out:
        logits, logits_from = validation_logits(metadata, sets, out)
        temperature = fit_temperature(logits, val_labels)
        document["temperature"] = temperature
        document["val"] = {
            "temperature_from": logits_from,
            "accuracy": float((logits.argmax(1) == val_labels).mean()),
            "nll_before": nll(logits, val_labels, 1.0),
            "nll_after": nll(logits, val_labels, temperature),
            "ece_before": reliability(softmax(logits), val_labels)["ece"],
            "ece_after": reliability(softmax(logits, temperature), val_labels)["ece"],
        }
    selector, document["up_axis"] = _fit_up_axis(
        source, sets, seed, up_shapes, stats, threshold, document["temperature"], cache_dir
    )
    document["computed_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    document["seconds"] = round(time.time() - start, 1)
    for name, arrays, section in ((OOD_FILE, stats.arrays(), "ood"), (UP_FILE, selector.arrays(), "up_axis")):
        save_npz_atomic(directory / name, arrays)
        document[section]["sha256"] = file_sha256(directory / name)
    # The document last: a reader that finds it finds the statistics it names.
    write_text_atomic(directory / CALIBRATION_FILE, json.dumps(document, indent=1, sort_keys=True) + "\n")
    return document
