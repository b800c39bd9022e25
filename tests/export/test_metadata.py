"""`crosspoint.json` has one typed reader/writer (`export.metadata.ServingMetadata`): the shipped files
read and write back byte for byte, a bad document is refused with every problem named, and the
gateway's one number from config.pbtxt (`max_batch_size`) is read without Triton's protobuf schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from export import repository
from export.metadata import METADATA_FORMAT, MetadataError, ServingMetadata
from export.triton_config import parse_config

COMMITTED = Path(__file__).resolve().parents[2] / "model_repository"
SHIPPED = sorted(COMMITTED.glob("*/*/crosspoint.json"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: "/".join(p.parts[-3:-1]))
def test_shipped_metadata_round_trips_byte_for_byte(path: Path) -> None:
    text = path.read_text()
    metadata = ServingMetadata.read(path)
    assert metadata.to_json() == text
    assert ServingMetadata.from_dict(json.loads(text)) == metadata


def test_shipped_metadata_reads_as_typed_values() -> None:
    if not SHIPPED:
        pytest.skip("no shipped model_repository/")
    classify = repository.read_model_metadata(COMMITTED, "classify")
    assert classify.version == repository.latest_version(COMMITTED, "classify")
    assert len(classify.class_names or []) == classify.outputs[0].dims[0] == 40
    assert classify.min_points == classify.k and classify.num_points >= classify.min_points
    assert classify.checkpoint_sha256 == classify.checkpoint["sha256"]
    segment = repository.read_model_metadata(COMMITTED, "segment")
    assert segment.embedding_dim is None and segment.category_parts is not None
    assert segment.category_parts["Chair"] == [12, 13, 14, 15]


def _document(**changes: Any) -> dict[str, Any]:
    document = json.loads((COMMITTED / "embed" / "2" / "crosspoint.json").read_text())
    document.update(changes)
    return {key: value for key, value in document.items() if value is not _DROP}


_DROP = object()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"format": "crosspoint-model/0"}, "format 'crosspoint-model/0', expected 'crosspoint-model/1'"),
        ({"num_points": _DROP, "k": _DROP}, "missing key 'num_points'; missing key 'k'"),
        ({"num_points": "1024"}, "num_points '1024' is not an integer >= 1"),
        ({"up_axis": 1, "class_names": ["a", 2]}, "up_axis 1 is not a string"),
        ({"min_points": 5000}, "needs min_points <= num_points <= max_points"),
        ({"min_points": 4}, "min_points 4 < k 10: kNN needs N >= k"),
        ({"embedding_dim": 1024}, "embedding_dim 1024; embedding dims [2048]"),
    ],
)
def test_a_bad_document_is_refused_with_its_problems(changes: dict[str, Any], expected: str) -> None:
    if not SHIPPED:
        pytest.skip("no shipped model_repository/")
    with pytest.raises(MetadataError) as error:
        ServingMetadata.from_dict(_document(**changes))
    assert expected in str(error.value)


def test_the_reader_fills_what_older_files_lack_and_keeps_unknown_keys() -> None:
    if not SHIPPED:
        pytest.skip("no shipped model_repository/")
    document = _document(embedding_dim=_DROP, sampling=_DROP, note="kept")
    metadata = ServingMetadata.from_dict(document)
    assert metadata.embedding_dim == 2048  # from the embedding output's dims
    assert metadata.sampling == "surface+fps"
    assert metadata.to_dict()["note"] == "kept" and metadata.to_dict()["format"] == METADATA_FORMAT


def test_category_parts_by_part_name_become_ids() -> None:
    if not SHIPPED:
        pytest.skip("no shipped model_repository/")
    document = json.loads((COMMITTED / "segment" / "1" / "crosspoint.json").read_text())
    names = document["part_names"]
    document["category_parts"] = {"Airplane": [names[0], 1, "engine"]}
    assert ServingMetadata.from_dict(document).category_parts == {"Airplane": [0, 1, 3]}


def test_a_repository_read_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "embed" / "1").mkdir(parents=True)
    (tmp_path / "embed" / "1" / "crosspoint.json").write_text(json.dumps({"format": METADATA_FORMAT}))
    with pytest.raises(
        repository.RepositoryError, match=r"embed/1/crosspoint.json: missing key 'num_points'"
    ):
        repository.read_model_metadata(tmp_path, "embed")
    (tmp_path / "embed" / "1" / "crosspoint.json").write_text("{")
    with pytest.raises(repository.RepositoryError, match="not valid JSON"):
        repository.read_model_metadata(tmp_path, "embed")


CONFIGS = [
    "max_batch_size: 16\n",
    'name: "x" max_batch_size: 8 input []\n',
    '# max_batch_size: 99\nname: "x"\n  max_batch_size : 4 # trailing comment\n',
    'name: "x"\ninput [ { name: "points" data_type: TYPE_FP32 dims: [ -1, 3 ] } ]\n',  # none: 0
]


@pytest.mark.parametrize("text", [*CONFIGS, *(p.read_text() for p in COMMITTED.glob("*/config.pbtxt"))])
def test_max_batch_size_read_from_the_text_matches_tritons_schema(tmp_path: Path, text: str) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.pbtxt").write_text(text)
    assert repository.read_max_batch_size(tmp_path, "m") == parse_config(text).max_batch_size
    assert repository.read_max_batch_size(tmp_path, "absent") == 0


@pytest.mark.parametrize(
    ("training", "split"),
    [
        ({"task": "linear_head", "head_config": {"val_fraction": 0.2, "seed": 3}}, (0.2, 3)),
        ({"task": "classify_finetune", "classify_config": {"val_fraction": 0.15, "seed": 7}}, (0.15, 7)),
        ({"task": "pretrain"}, (0.1, 0)),
    ],
)
def test_head_split_is_the_one_the_head_was_trained_with(training: dict[str, Any], split: tuple) -> None:
    assert ServingMetadata(checkpoint={"training": training}).head_split() == split
