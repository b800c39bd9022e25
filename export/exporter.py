"""Checkpoint(s) -> new versions in a Triton model repository, each proven against the training form.

    from export import export_checkpoint
    result = export_checkpoint("runs/cls.safetensors", "model_repository")
    result.models["embed"].version, result.models["embed"].parity["passed"]

Everything is staged first (ONNX + TorchScript, parity on real shapes, configs, metadata, a full
`validate_model` of the staged directory); only when every requested model passed is anything
moved into the repository, one version directory per model, by rename. A failure leaves the
repository as it was.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export import repository as repo
from export.contract import MODEL_NAMES, ModelSpec
from export.graphs import build_graph, served_models, spec_for
from export.metadata import ServingMetadata, build_metadata, preprocess_settings
from export.onnx_export import ExportError, example_inputs, export_onnx, trace_torchscript
from export.parity import parity_inputs, run_parity, summary
from export.triton_config import ServingOptions, build_config, parse_config
from export.validate import validate_model

DEFAULT_PARITY_SHAPES = {"embed": 16, "classify": 16, "segment": 8}
DEFAULT_MAX_BATCH = {"embed": 32, "classify": 32, "segment": 8}  # segment: ~100 MB of edge tensors per cloud
GPU_CONFIG = Path("configs") / "gpu.pbtxt"  # picked by `tritonserver --model-config-name=gpu`


@dataclass
class ExportedModel:
    name: str
    version: int
    directory: Path
    files: list[Path]
    parity: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class ExportResult:
    repository: Path
    models: dict[str, ExportedModel]

    def __getitem__(self, name: str) -> ExportedModel:
        return self.models[name]


def export_checkpoint(
    checkpoint_path: str | os.PathLike[str],
    repository: str | os.PathLike[str],
    *,
    version: int | None = None,
    models: Sequence[str] | None = None,
    opset: int = 17,
    parity_shapes: int | None = None,
    serving: ServingOptions | None = None,
    max_points: int | None = None,
    allow_config_change: bool = False,
) -> ExportResult:
    """Export one checkpoint: `models` defaults to all it can serve (embed[, classify] | segment);
    naming a model it cannot serve is an error (all three names = the default).

    `version` defaults to latest + 1 per model; an existing version is never overwritten.
    `parity_shapes` is the number of real shapes checked (default 16, segment 8).
    """
    return export_checkpoints(
        [checkpoint_path],
        repository,
        version=version,
        models=models,
        opset=opset,
        parity_shapes=parity_shapes,
        serving=serving,
        max_points=max_points,
        allow_config_change=allow_config_change,
    )


def export_checkpoints(
    checkpoint_paths: Iterable[str | os.PathLike[str]],
    repository: str | os.PathLike[str],
    *,
    version: int | None = None,
    models: Sequence[str] | None = None,
    opset: int = 17,
    parity_shapes: int | None = None,
    serving: ServingOptions | None = None,
    max_points: int | None = None,
    allow_config_change: bool = False,
) -> ExportResult:
    """Several checkpoints into one repository (e.g. a classifier and a part-seg net), all or nothing."""
    from crosspoint import checkpoint

    repository = Path(repository)
    plan = _plan([Path(p) for p in checkpoint_paths], models)
    staged: list[tuple[str, int, Path, ExportedModel]] = []
    with repo.staging_dir(repository) as staging:
        for path, served_list in plan:
            loaded = checkpoint.load(path)
            for served in served_list:
                n = parity_shapes or DEFAULT_PARITY_SHAPES[served]
                staged.append(
                    _stage(
                        loaded,
                        served,
                        repository,
                        staging / served,
                        version=version,
                        opset=opset,
                        parity_shapes=n,
                        serving=serving,
                        max_points=max_points,
                        allow_config_change=allow_config_change,
                    )
                )
        results = {}
        for served, number, staged_dir, exported in staged:
            exported.directory = repo.publish_model(staged_dir, repository, served, number)
            exported.files = [exported.directory / f.name for f in exported.files]
            results[served] = exported
    return ExportResult(repository, results)


def _plan(paths: list[Path], models: Sequence[str] | None) -> list[tuple[Path, tuple[str, ...]]]:
    """Which checkpoint serves which model; refuses unknown, unservable or doubly-served names."""
    from crosspoint.checkpoint import read_config

    unknown = sorted(set(models or ()) - set(MODEL_NAMES))
    if unknown:
        raise ExportError(f"unknown model names {unknown}; served models are {list(MODEL_NAMES)}")
    if models is not None and set(models) == set(MODEL_NAMES):
        models = None  # "all of them" means all that the checkpoints can serve
    plan: list[tuple[Path, tuple[str, ...]]] = []
    seen: dict[str, Path] = {}
    for path in paths:
        available = served_models(read_config(path))
        if not available:
            raise ExportError(
                f"{path}: a {read_config(path)['model']['name']!r} checkpoint serves none of "
                "embed/classify/segment"
            )
        chosen = tuple(m for m in available if models is None or m in models)
        for served in chosen:
            if served in seen:
                raise ExportError(
                    f"{served!r} would come from both {seen[served]} and {path}; pick one with --models"
                )
            seen[served] = path
        plan.append((path, chosen))
    missing = [m for m in (models or ()) if m not in seen]
    if missing:
        raise ExportError(f"no checkpoint given can serve {missing} (these serve {sorted(seen)})")
    return plan


def _stage(
    loaded: Any,
    served: str,
    repository: Path,
    staging: Path,
    *,
    version: int | None,
    opset: int,
    parity_shapes: int,
    serving: ServingOptions | None,
    max_points: int | None,
    allow_config_change: bool,
) -> tuple[str, int, Path, ExportedModel]:
    """Build `<staging>/{config.pbtxt, configs/gpu.pbtxt, labels.txt, <version>/...}` for one model."""
    model, config, path = loaded.model, loaded.config, Path(loaded.path)
    spec = spec_for(model, served)
    _check_config_compatible(repository, served, spec, allow_config_change)
    number = version if version is not None else (repo.latest_version(repository, served) or 0) + 1
    if (repository / served / str(number)).exists():
        raise repo.RepositoryError(
            f"{repository / served / str(number)} exists; versions are never rewritten"
        )
    settings = preprocess_settings(config, max_points)
    directory = staging / str(number)
    directory.mkdir(parents=True)
    files = {
        repo.ONNX_FILE: directory / repo.ONNX_FILE,
        repo.TORCHSCRIPT_FILE: directory / repo.TORCHSCRIPT_FILE,
    }
    seconds: dict[str, float] = {}

    graph = build_graph(model, served, "export")
    example = example_inputs(spec, settings["min_points"])
    started = time.perf_counter()
    export_onnx(graph, spec, example, files[repo.ONNX_FILE], opset)
    seconds["onnx"] = time.perf_counter() - started
    started = time.perf_counter()
    trace_torchscript(graph, example, files[repo.TORCHSCRIPT_FILE])
    seconds["torchscript"] = time.perf_counter() - started

    started = time.perf_counter()
    report = _parity(model, served, spec, graph, files, settings["num_points"], parity_shapes)
    seconds["parity"] = time.perf_counter() - started
    (directory / repo.PARITY_FILE).write_text(json.dumps(report, indent=2) + "\n")

    import onnx
    import onnxruntime
    import torch

    info = {
        "opset": opset,
        "exporter": "torch.onnx.export (TorchScript-based)",
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "form": "per-point EdgeConv, eval BN folded"
        if model.model_name != "pointnet"
        else "as trained, eval",
        "seconds": {key: round(value, 3) for key, value in seconds.items()},
    }
    metadata = build_metadata(
        served=served,
        spec=spec,
        checkpoint_config=config,
        checkpoint_path=path,
        settings=settings,
        files=files,
        parity=summary(report),
        export_info=info,
    )
    (directory / repo.METADATA_FILE).write_text(metadata.to_json())
    _write_configs(
        staging, spec, settings, metadata, serving or ServingOptions(max_batch_size=DEFAULT_MAX_BATCH[served])
    )

    problems = validate_model(staging, run_models=True, torchscript=True)
    if problems:
        raise ExportError(f"{served}: the staged export does not validate: " + "; ".join(map(str, problems)))
    all_files = [*files.values(), directory / repo.PARITY_FILE, directory / repo.METADATA_FILE]
    return served, number, staging, ExportedModel(served, number, directory, all_files, report, seconds)


def _parity(
    model: Any, served: str, spec: ModelSpec, graph: Any, files: dict[str, Path], num_points: int, count: int
) -> dict[str, Any]:
    """Reference (training form) vs ONNX Runtime vs TorchScript (and the eager rewrite) on real shapes."""
    import onnxruntime as ort
    import torch

    reference = build_graph(model, served, "reference")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(files[repo.ONNX_FILE]), options, providers=["CPUExecutionProvider"])
    scripted = torch.jit.load(str(files[repo.TORCHSCRIPT_FILE])).eval()
    names = list(spec.output_names)

    def torch_runner(module: Any) -> Any:
        def run(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            with torch.inference_mode():
                values = module(*[torch.from_numpy(arrays[n]) for n in spec.input_names])
            return {name: value.numpy() for name, value in zip(names, values, strict=True)}

        return run

    def onnx_runner(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(names, session.run(names, arrays), strict=True))

    inputs = parity_inputs(served, num_points, count)
    return run_parity(
        torch_runner(reference),
        {
            "onnxruntime": onnx_runner,
            "torchscript": torch_runner(scripted),
            "pytorch_rewrite": torch_runner(graph),
        },
        inputs,
    )


def _write_configs(
    staging: Path,
    spec: ModelSpec,
    settings: dict[str, Any],
    metadata: ServingMetadata,
    options: ServingOptions,
) -> None:
    parameters = {key: value for key, value in settings.items() if value is not None}
    labels = None
    if metadata.class_names is not None:
        labels = repo.LABELS_FILE
        (staging / labels).write_text("\n".join(metadata.class_names) + "\n")
    (staging / repo.CONFIG_FILE).write_text(build_config(spec, options, parameters, labels))
    gpu = ServingOptions(
        max_batch_size=options.max_batch_size,
        preferred_batch_sizes=(8, 16, 32),
        max_queue_delay_microseconds=options.max_queue_delay_microseconds,
        instance_count=1,
        backend=options.backend,
        instance_kind="KIND_GPU",
    )
    (staging / GPU_CONFIG).parent.mkdir(exist_ok=True)
    (staging / GPU_CONFIG).write_text(build_config(spec, gpu, parameters, labels))


def _check_config_compatible(repository: Path, served: str, spec: ModelSpec, allow_change: bool) -> None:
    """A new version must fit the config.pbtxt that still serves the old ones (they share it)."""
    path = repository / served / repo.CONFIG_FILE
    if allow_change or not path.exists():
        return
    current = parse_config(path.read_text(), str(path))
    have = [(t.name, list(t.dims)) for t in (*current.input, *current.output)]
    want = [(t.name, list(t.dims)) for t in (*spec.inputs, *spec.outputs)]
    if have != want:
        raise ExportError(
            f"{path}: the new {served!r} has tensors {want}, the served config {have}; one config "
            "serves every version, so the old versions would break. Export into a new repository, "
            "or pass allow_config_change=True (--allow-config-change) and retire the old versions."
        )
