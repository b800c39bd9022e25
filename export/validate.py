"""Check a whole model repository offline: what Triton and the gateway would trip over, found first.

Torch-free unless `torchscript=True`. For every model directory: config.pbtxt parses with Triton's
schema and passes `triton_config.check_config`; every version holds its model file and a readable
crosspoint.json; model.onnx loads in ONNX Runtime, its inputs/outputs match the config (names,
dtypes, dims, symbolic batch axis), and a small batch run gives the documented shapes; the labels
file has one line per logit. An empty repository is valid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export import repository as repo
from export.metadata import MetadataError, ServingMetadata, file_sha256
from export.triton_config import (
    BACKEND_FILES,
    ConfigError,
    backend_of,
    check_config,
    compare_with_graph,
    graph_tensors,
    parse_config,
)
from export.trust import CALIBRATION_FILE, TrustError, load_trust


@dataclass(frozen=True)
class Problem:
    path: str  # relative to the repository root
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def validate_repository(
    path: str | os.PathLike[str], *, run_models: bool = True, torchscript: bool = False
) -> list[Problem]:
    """Every problem found in the repository at `path` (an empty list means it is valid)."""
    root = Path(path)
    if not root.is_dir():
        return [Problem(str(root), "not a directory")]
    problems: list[Problem] = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.name.startswith("."):
            problems += validate_model(entry, run_models=run_models, torchscript=torchscript)
    return problems


def validate_model(model_dir: Path, *, run_models: bool = True, torchscript: bool = False) -> list[Problem]:
    """Problems of one `<repository>/<model>` directory."""
    model = model_dir.name
    config_path = model_dir / repo.CONFIG_FILE
    if not config_path.is_file():
        return [Problem(f"{model}/{repo.CONFIG_FILE}", "missing (our backends need a full config)")]
    try:
        config = parse_config(config_path.read_text(), f"{model}/{repo.CONFIG_FILE}")
    except ConfigError as exc:
        return [Problem(f"{model}/{repo.CONFIG_FILE}", str(exc).split(": ", 1)[1])]
    problems = [Problem(f"{model}/{repo.CONFIG_FILE}", p) for p in check_config(config, model)]
    problems += _check_variants(model_dir, config)
    problems += _check_labels(model_dir, config)
    found = repo.versions(model_dir.parent, model)
    if not found:
        problems.append(Problem(model, "no numbered version directory"))
    for version in found:
        problems += _check_version(model_dir, version, config, run_models, torchscript)
    return problems


def _check_variants(model_dir: Path, config: Any) -> list[Problem]:
    """configs/*.pbtxt (Triton's --model-config-name): valid, and the same tensors as config.pbtxt."""
    problems = []
    tensors = [(t.name, t.data_type, list(t.dims)) for t in (*config.input, *config.output)]
    for path in sorted((model_dir / "configs").glob("*.pbtxt")):
        where = f"{model_dir.name}/configs/{path.name}"
        try:
            variant = parse_config(path.read_text(), where)
        except ConfigError as exc:
            problems.append(Problem(where, str(exc).split(": ", 1)[1]))
            continue
        problems += [Problem(where, p) for p in check_config(variant, model_dir.name)]
        if [(t.name, t.data_type, list(t.dims)) for t in (*variant.input, *variant.output)] != tensors:
            problems.append(
                Problem(where, f"input/output differ from {repo.CONFIG_FILE}'s (one graph serves both)")
            )
        problems += _check_labels(model_dir, variant)
    return problems


def _check_labels(model_dir: Path, config: Any) -> list[Problem]:
    problems = []
    for output in config.output:
        if not output.label_filename:
            continue
        where = f"{model_dir.name}/{output.label_filename}"
        path = model_dir / output.label_filename
        if not path.is_file():
            problems.append(Problem(where, f"missing (output {output.name!r} label_filename)"))
            continue
        lines = path.read_text().splitlines()
        if list(output.dims) != [len(lines)]:
            problems.append(
                Problem(where, f"{len(lines)} labels for output {output.name!r} dims {list(output.dims)}")
            )
    return problems


def _check_version(
    model_dir: Path, version: int, config: Any, run_models: bool, torchscript: bool
) -> list[Problem]:
    model = model_dir.name
    where = f"{model}/{version}"
    directory = model_dir / str(version)
    problems = []
    filename = config.default_model_filename or BACKEND_FILES.get(backend_of(config), repo.ONNX_FILE)
    for name in dict.fromkeys((filename, repo.ONNX_FILE)):
        if not (directory / name).is_file():
            problems.append(Problem(f"{where}/{name}", "missing"))
    try:
        metadata = repo.read_model_metadata(model_dir.parent, model, version)
    except repo.RepositoryError as exc:
        found = exc.__cause__.problems if isinstance(exc.__cause__, MetadataError) else None
        messages = found or [str(exc).split(": ", 1)[-1]]
        problems += [Problem(f"{where}/{repo.METADATA_FILE}", message) for message in messages]
        metadata = None
    if metadata is not None:
        problems += [Problem(f"{where}/{repo.METADATA_FILE}", p) for p in check_metadata(metadata, config)]
    if not (directory / repo.ONNX_FILE).is_file():
        return problems
    problems += [Problem(f"{where}/{CALIBRATION_FILE}", p) for p in check_calibration(directory)]
    try:
        session = _session(directory / repo.ONNX_FILE)
    except Exception as exc:  # ORT raises its own exception types for a corrupt or foreign file
        return [*problems, Problem(f"{where}/{repo.ONNX_FILE}", f"ONNX Runtime cannot load it: {exc}")]
    inputs, outputs = graph_tensors(session)
    problems += [
        Problem(f"{where}/{repo.ONNX_FILE}", f"config.pbtxt vs graph: {p}")
        for p in compare_with_graph(config, inputs, outputs)
    ]
    if run_models and not problems:
        problems += _run_check(where, directory, session, config, metadata, torchscript)
    return problems


def check_calibration(directory: Path) -> list[str]:
    """calibration.json + ood.npz, when present, load and belong to this version's graph."""
    try:
        trust = load_trust(directory)
    except TrustError as exc:
        return [str(exc).split(": ", 1)[-1]]
    if trust is None:
        return []
    if trust.document.get("graph_sha256") != file_sha256(directory / repo.ONNX_FILE):
        return ["computed for another model.onnx (graph_sha256 differs): rerun `crosspoint calibrate`"]
    return []


def check_metadata(metadata: ServingMetadata, config: Any) -> list[str]:
    """crosspoint.json against the config: names per output, parameters. (Its keys and its own
    consistency are checked by the reader, `ServingMetadata.from_dict`.)"""
    problems = []
    dims = {output.name: list(output.dims) for output in config.output}
    class_count, part_count = len(metadata.class_names or []), len(metadata.part_names or [])
    if "logits" in dims and [class_count] != dims["logits"]:
        problems.append(f"class_names has {class_count} names; logits dims {dims['logits']}")
    if "part_logits" in dims and part_count != dims["part_logits"][-1]:
        problems.append(f"part_names has {part_count} names; part_logits {dims['part_logits']}")
    for key in ("num_points", "k", "up_axis", "normalization"):
        value = getattr(metadata, key)
        if key in config.parameters and config.parameters[key].string_value != str(value):
            problems.append(
                f"{key} {value!r} differs from config.pbtxt parameter {config.parameters[key].string_value!r}"
            )
    return problems


def example_inputs(
    config: Any, metadata: ServingMetadata | None, batch: int = 2, seed: int = 0
) -> dict[str, np.ndarray]:
    """Small valid inputs for a model: distinct points (no kNN ties) and one-hot categories."""
    rng = np.random.default_rng(seed)
    n = 256 if metadata is None else max(metadata.min_points, min(metadata.num_points, 256))
    arrays = {}
    for tensor in config.input:
        if tensor.name == "points":
            points = rng.standard_normal((batch, n, 3))
            points /= np.linalg.norm(points, axis=-1).max(axis=1)[:, None, None]
            arrays["points"] = points.astype(np.float32)
        else:  # the category one-hot
            arrays[tensor.name] = np.eye(int(tensor.dims[-1]), dtype=np.float32)[
                rng.integers(0, tensor.dims[-1], batch)
            ]
    return arrays


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # validation runs beside other work; one thread is plenty
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run_check(
    where: str,
    directory: Path,
    session: Any,
    config: Any,
    metadata: ServingMetadata | None,
    torchscript: bool,
) -> list[Problem]:
    inputs = example_inputs(config, metadata)
    batch, n = inputs["points"].shape[:2]
    names = [output.name for output in config.output]
    try:
        results = dict(zip(names, session.run(names, inputs), strict=True))
    except Exception as exc:
        return [
            Problem(
                f"{where}/{repo.ONNX_FILE}",
                f"inference failed on shapes { {k: list(v.shape) for k, v in inputs.items()} }: {exc}",
            )
        ]
    problems = []
    for output in config.output:
        want = [batch, *(n if d == -1 else d for d in output.dims)]
        got = list(results[output.name].shape)
        if got != want:
            problems.append(
                Problem(f"{where}/{repo.ONNX_FILE}", f"output {output.name!r} shape {got}, expected {want}")
            )
        elif not np.isfinite(results[output.name]).all():
            problems.append(Problem(f"{where}/{repo.ONNX_FILE}", f"output {output.name!r} is not finite"))
    if torchscript and not problems and (directory / repo.TORCHSCRIPT_FILE).is_file():
        problems += _torchscript_check(where, directory / repo.TORCHSCRIPT_FILE, inputs, results, config)
    return problems


def _torchscript_check(
    where: str, path: Path, inputs: dict[str, np.ndarray], expected: dict[str, np.ndarray], config: Any
) -> list[Problem]:
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu").eval()
        with torch.inference_mode():
            values = module(*[torch.from_numpy(inputs[t.name]) for t in config.input])
    except Exception as exc:
        return [Problem(f"{where}/{repo.TORCHSCRIPT_FILE}", f"TorchScript load/run failed: {exc}")]
    values = [values] if isinstance(values, torch.Tensor) else list(values)
    problems = []
    for output, value in zip(config.output, values, strict=False):
        reference = expected[output.name]
        diff = (
            float(np.abs(value.numpy() - reference).max()) if value.shape == reference.shape else float("inf")
        )
        # Loose on purpose: parity.json holds the strict comparison; this catches a wrong or stale file.
        if diff > 1e-3 * max(1.0, float(np.abs(reference).max())):
            problems.append(
                Problem(
                    f"{where}/{repo.TORCHSCRIPT_FILE}",
                    f"output {output.name!r} differs from model.onnx by {diff:.3g}",
                )
            )
    return problems
