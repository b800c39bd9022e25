"""The model repository's layout, read and written without torch (the gateway imports this module).

    <repository>/<model>/config.pbtxt            Triton config (export.triton_config)
    <repository>/<model>/labels.txt              classify only: class names in logit order
    <repository>/<model>/<version>/model.onnx    the exported graph (served by default)
    <repository>/<model>/<version>/model.pt      the same graph as TorchScript (Triton's pytorch backend)
    <repository>/<model>/<version>/crosspoint.json   serving metadata (preprocessing, names, provenance)
    <repository>/<model>/<version>/parity.json   the parity report the export passed

A version directory is complete when it appears: it is built elsewhere and renamed into place, so
a server polling the repository never sees half of one, and an existing version is never rewritten.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from export.metadata import MetadataError, ServingMetadata

CONFIG_FILE = "config.pbtxt"
LABELS_FILE = "labels.txt"
ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.pt"
METADATA_FILE = "crosspoint.json"
PARITY_FILE = "parity.json"


# config.pbtxt's `max_batch_size: N` (no other ModelConfig field, nested or not, has that name).
_MAX_BATCH = re.compile(r"(?:^|[\s{,;])max_batch_size\s*:\s*(\d+)")
_COMMENT = re.compile(r"#.*$", re.MULTILINE)


class RepositoryError(ValueError):
    """The repository (or a model in it) is missing, incomplete, or would be overwritten."""


def versions(repository: str | os.PathLike[str], model: str) -> list[int]:
    """The numbered version directories of `model`, ascending (Triton's rule: digits, no leading zero)."""
    directory = Path(repository) / model
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        name = entry.name
        if entry.is_dir() and name.isdigit() and (name == "0" or not name.startswith("0")):
            found.append(int(name))
    return sorted(found)


def latest_version(repository: str | os.PathLike[str], model: str) -> int | None:
    """The highest version of `model` (the one Triton's `latest` policy serves), or None."""
    found = versions(repository, model)
    return found[-1] if found else None


def version_dir(repository: str | os.PathLike[str], model: str, version: int | None = None) -> Path:
    """`<repository>/<model>/<version>`; the latest one when `version` is None."""
    if version is None:
        version = latest_version(repository, model)
        if version is None:
            raise RepositoryError(f"{Path(repository) / model}: no version of model {model!r}")
    path = Path(repository) / model / str(version)
    if not path.is_dir():
        raise RepositoryError(f"{path}: model {model!r} has no version {version}")
    return path


def read_model_metadata(
    repository: str | os.PathLike[str], model: str, version: int | None = None
) -> ServingMetadata:
    """The validated `crosspoint.json` of one version (the latest when `version` is None)."""
    path = version_dir(repository, model, version) / METADATA_FILE
    try:
        return ServingMetadata.read(path, version=int(path.parent.name))
    except FileNotFoundError:
        raise RepositoryError(f"{path}: missing (every version needs its {METADATA_FILE})") from None
    except MetadataError as exc:
        raise RepositoryError(f"{path}: {exc}") from exc


def read_max_batch_size(repository: str | os.PathLike[str], model: str) -> int:
    """`max_batch_size` of the model's config.pbtxt (the limit the export chose); 0 when absent.

    The one number the embedded backend needs from the config, read from the text: the protobuf
    schema (`export.triton_config.parse_config`) is for writing and validating whole configs.
    """
    try:
        text = (Path(repository) / model / CONFIG_FILE).read_text()
    except FileNotFoundError:
        return 0
    found = _MAX_BATCH.search(_COMMENT.sub("", text))
    return int(found.group(1)) if found else 0


def write_text_atomic(path: Path, text: str) -> None:
    """Write then rename: a reader sees the old file or the new one, never a partial one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def staging_dir(repository: str | os.PathLike[str]) -> Iterator[Path]:
    """A scratch directory beside the repository (same filesystem, so renames out of it are atomic),
    removed afterwards whatever happens. Not inside it: Triton would take it for a model."""
    repository = Path(repository).resolve()
    repository.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{repository.name}-staging-", dir=repository.parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def publish_model(staged: Path, repository: str | os.PathLike[str], model: str, version: int) -> Path:
    """Move a staged `<model>` directory (config, labels, one version) into the repository.

    A new model moves in whole. For an existing model the version directory moves first (the config
    in place still describes it: the caller checked the I/O is unchanged), then config.pbtxt and the
    labels are replaced atomically. Returns the published version directory.
    """
    target_model = Path(repository) / model
    target = target_model / str(version)
    if target.exists():
        raise RepositoryError(
            f"{target}: version {version} of {model!r} exists; versions are never rewritten"
        )
    if not target_model.exists():
        _rename(staged, target_model)
        return target
    _rename(staged / str(version), target)
    # Labels and the alternative configs (configs/*.pbtxt) first, config.pbtxt last.
    shared = sorted(
        p for p in staged.rglob("*") if p.is_file() and p.relative_to(staged).parts[0] != str(version)
    )
    for source in sorted(shared, key=lambda p: p.name == CONFIG_FILE and p.parent == staged):
        destination = target_model / source.relative_to(staged)
        destination.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(destination, source.read_text())
    return target


def _rename(source: Path, target: Path) -> None:
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # The repository is its own mount: copy into a non-numeric name there (Triton skips
        # it), then rename within the filesystem.
        scratch = target.with_name(f".{target.name}.incoming-{os.getpid()}")
        shutil.copytree(source, scratch)
        os.rename(scratch, target)
