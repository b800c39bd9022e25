"""`crosspoint classify FILE --up-axis auto` prints the OOD verdict; the SDK parses ood_score and
in_distribution (the gateway on a calibrated copy of the tiny client repository)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crosspoint.cli import app
from tests.live_server import serve_in_thread

from .conftest import MESHES

runner = CliRunner()


@pytest.fixture(scope="module")
def trusted_url(client_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from server.app import create_app
    from server.core.config import Settings
    from tests.server.trust_helpers import calibrated_copy

    repository = calibrated_copy(client_repository, tmp_path_factory.mktemp("trusted") / "repo")
    settings = Settings(
        model_repository=repository, parse_workers=1, reload_interval_s=0, log_level="WARNING"
    )
    with serve_in_thread(create_app(settings), timeout=120) as url:
        yield url


def test_classify_up_axis_auto_prints_the_verdict(trusted_url: str) -> None:
    teapot = str(MESHES / "teapot.stl")
    result = runner.invoke(app, ["classify", teapot, "--up-axis", "auto", "--url", trusted_url])
    assert result.exit_code == 0, result.output
    as_json = runner.invoke(app, ["classify", teapot, "--up-axis", "auto", "--url", trusted_url, "--json"])
    answer = json.loads(as_json.stdout)[0]
    verdict = "in distribution" if answer["in_distribution"] else "OUT OF DISTRIBUTION"
    assert f"teapot.stl: {verdict} (ood_score {answer['ood_score']:.2f})" in result.stdout
    assert answer["receipt"]["up_axis"] in result.stdout and set(answer["receipt"]["up_axis_scores"]) == {
        "+x",
        "-x",
        "+y",
        "-y",
        "+z",
        "-z",
    }


def test_sdk_results_carry_the_trust_fields(trusted_url: str) -> None:
    from clients import CrossPointClient

    with CrossPointClient(trusted_url) as client:
        classified = client.classify(MESHES / "bunny.ply", up_axis="auto")
        embedded = client.embed(MESHES / "bunny.ply")
    for result in (classified, embedded):
        assert isinstance(result.ood_score, float) and isinstance(result.in_distribution, bool)
        assert result.ood_score == result.raw["ood_score"]
