"""Collections through the SDK (sync + async) and `crosspoint collections` against the real gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from clients import AsyncCrossPointClient, CrossPointClient
from clients.errors import CrossPointAPIError
from crosspoint.cli import app

from .conftest import MESHES, write_modelnet_files

runner = CliRunner()


def test_sdk_round_trip(gateway_url: str) -> None:
    rng = np.random.default_rng(0)
    clouds = [rng.standard_normal((300, 3)).astype(np.float32) * (1 + i) for i in range(3)]
    with CrossPointClient(gateway_url) as client:
        info = client.create_collection("sdk", "three blobs")
        assert info["count"] == 0
        with pytest.raises(CrossPointAPIError) as exc:
            client.create_collection("sdk")
        assert exc.value.status == 409 and exc.value.code == "collection_exists"
        added = client.add_item(
            "sdk", MESHES / "bunny.ply", label="animal", metadata={"n": 1}, num_points=256
        )
        assert added["id"] == "bunny" and added["created"]
        results = client.add_items(
            "sdk", clouds, ids=["a", "b", "c"], labels=["x", "x", None], num_points=256
        )
        assert all(isinstance(r, dict) and r["created"] for r in results)
        mixed = client.add_items("sdk", [MESHES / "cube.glb", clouds[0]], ids=["cube", "a2"], num_points=256)
        assert [r["id"] for r in mixed if isinstance(r, dict)] == ["cube", "a2"]
        assert client.collection("sdk")["count"] == 6
        item = client.get_item("sdk", "a", include_embedding=True)
        found = client.search("sdk", embedding=item["embedding"], k=2)
        assert found.matches[0].id in {"a", "a2"} and found.matches[0].score == pytest.approx(1.0, abs=1e-3)
        by_file = client.search("sdk", MESHES / "bunny.ply", k=1, num_points=256)
        assert by_file.matches[0].id == "bunny" and by_file.matches[0].metadata == {"n": 1}
        assert "bunny" not in {m.id for m in client.search("sdk", id="bunny").matches}
        assert client.classify_in("sdk", id="b", top_k=2).label in {"x", "animal"}
        client.delete_item("sdk", "cube")
        with pytest.raises(CrossPointAPIError) as exc:
            client.get_item("sdk", "cube")
        assert exc.value.status == 404
        assert client.reembed("sdk")["version"] == info["version"]  # already on the served version

    async def run() -> None:
        async with AsyncCrossPointClient(gateway_url) as client:
            assert "sdk" in {c["name"] for c in await client.collections()}
            result = await client.search("sdk", clouds[1], k=1, num_points=256)
            assert result.matches[0].id == "b"
            await client.delete_collection("sdk")
            with pytest.raises(CrossPointAPIError):
                await client.collection("sdk")

    asyncio.run(run())


def test_cli_add_label_from_dir_search_classify(gateway_url: str, tmp_path: Path) -> None:
    write_modelnet_files(tmp_path / "shapes", np.arange(0, 12179, 1500))
    common = ["--url", gateway_url]
    assert runner.invoke(app, ["collections", "create", "cli", *common]).exit_code == 0
    result = runner.invoke(
        app,
        ["collections", "add", "cli", str(tmp_path / "shapes" / "**" / "*.npy"), "--label-from-dir", *common],
    )
    assert result.exit_code == 0, result.output
    assert "added 9 of 9 files" in result.output
    listing = runner.invoke(app, ["collections", "ls", "cli", "--json", *common])
    info = json.loads(listing.stdout)[0]
    assert info["count"] == 9 and sum(info["labels"].values()) == 9
    some = sorted((tmp_path / "shapes").rglob("*.npy"))[0]
    found = runner.invoke(app, ["collections", "search", "cli", str(some), "-k", "3", "--json", *common])
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)["matches"][0]["id"] == some.stem
    label = runner.invoke(app, ["collections", "classify", "cli", f"id:{some.stem}", *common])
    assert label.exit_code == 0 and label.output.startswith("1. ")
    missing = runner.invoke(app, ["collections", "search", "nope", str(some), *common])
    assert missing.exit_code == 1 and "collection_not_found" in missing.output
    assert runner.invoke(app, ["collections", "rm", "cli", some.stem, *common]).exit_code == 0
    assert runner.invoke(app, ["collections", "rm", "cli", "--yes", *common]).exit_code == 0
