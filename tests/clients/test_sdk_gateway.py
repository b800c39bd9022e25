"""The SDK against the real gateway (uvicorn + the real app on a tiny exported repository)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clients import AsyncCrossPointClient, CrossPointAPIError, CrossPointClient, RetryPolicy
from tests.live_server import serve_in_thread

from .conftest import MESHES, MODELNET


@pytest.fixture(scope="module")
def client(gateway_url: str) -> Iterator[CrossPointClient]:
    with CrossPointClient(gateway_url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def chair_points() -> np.ndarray:
    data = np.load(MODELNET)
    row = int(np.flatnonzero(data["shape_ids"] == "chair_0001")[0])
    return data["points"][row, : data["n_points"][row]].astype(np.float32)


def test_health_ready_and_models(client: CrossPointClient) -> None:
    assert client.health() == {"status": "ok"}
    assert client.ready()["status"] == "ready"
    models = {m.name: m for m in client.models()}
    assert set(models) == {"embed", "classify", "segment"}
    assert models["embed"].inputs["num_points"] == 512 and models["segment"].inputs["k"] == 10
    assert models["classify"].class_names is not None and len(models["classify"].class_names) == 40


def test_embed_a_path_an_array_and_a_mesh_object(client: CrossPointClient, chair_points: np.ndarray) -> None:
    import trimesh

    from_path = client.embed(MESHES / "bunny.ply", projection=True)
    assert from_path.embedding.shape == (2048,) and from_path.projection is not None
    assert from_path.projection.shape == (256,)
    assert from_path.model == "embed" and from_path.version == "1"
    assert from_path.receipt["num_points"] == 512 and from_path.receipt["seed"] == 0

    from_array = client.embed(chair_points)
    assert from_array.projection is None and np.isfinite(from_array.embedding).all()
    # Same input, same seed: the gateway promises the same answer.
    np.testing.assert_array_equal(client.embed(chair_points.tolist()).embedding, from_array.embedding)

    mesh = trimesh.load(MESHES / "featuretype.STL")
    from_mesh = client.embed(mesh, up_axis="z", num_points=256)
    assert from_mesh.receipt["num_points"] == 256 and from_mesh.receipt["up_axis"] == "+z"


def test_classify_top_k(client: CrossPointClient, chair_points: np.ndarray) -> None:
    result = client.classify(chair_points, top_k=3)
    assert len(result.predictions) == 3
    probabilities = [p.probability for p in result.predictions]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001
    assert result.label == result.predictions[0].label


def test_segment_labels_sampled_points_and_vertices(client: CrossPointClient) -> None:
    import trimesh

    mesh = trimesh.load(MESHES / "teapot.stl")
    result = client.segment(MESHES / "teapot.stl", category="Mug")
    assert result.category == "Mug" and result.category_source == "given"
    assert result.point_labels.shape == (256,) and result.points.shape == (256, 3)
    assert result.vertex_labels is not None and result.vertex_labels.shape == (len(mesh.vertices),)
    assert set(np.unique(result.point_labels)) <= set(range(len(result.part_names)))
    assert client.segment(MESHES / "teapot.stl", category="Mug", vertex_labels=False).vertex_labels is None


def test_batch_keeps_order_and_per_item_errors(
    client: CrossPointClient, chair_points: np.ndarray, tmp_path: Path
) -> None:
    results = client.embed_batch([MESHES / "cube.glb", chair_points, MESHES / "empty.obj"])
    assert len(results) == 3
    assert results[0].embedding.shape == (2048,)  # type: ignore[union-attr]
    np.testing.assert_array_equal(results[1].embedding, client.embed(chair_points).embedding)  # type: ignore[union-attr]
    assert isinstance(results[2], CrossPointAPIError) and results[2].code == "empty_geometry"
    classes = client.classify_batch([chair_points, chair_points], top_k=2)
    assert [len(c.predictions) for c in classes] == [2, 2]  # type: ignore[union-attr]
    with pytest.raises(TypeError, match="unknown options"):
        client.embed_batch([chair_points], topk=2)


def test_gateway_errors_arrive_as_exceptions(client: CrossPointClient, tmp_path: Path) -> None:
    with pytest.raises(CrossPointAPIError) as info:
        client.embed(MESHES / "empty.obj")
    assert info.value.status == 422 and info.value.code == "empty_geometry"
    assert info.value.request_id  # the gateway's X-Request-ID, for its logs

    odd = tmp_path / "shape.abc"
    shutil.copy(MESHES / "cube.OBJ", odd)
    with pytest.raises(CrossPointAPIError) as info:
        client.classify(odd)
    assert info.value.status == 415 and info.value.code == "unsupported_format"
    assert client.classify(odd, format="obj").predictions  # naming the format fixes it

    with pytest.raises(CrossPointAPIError) as info:
        client.embed(np.eye(3) * 0, num_points=100000)
    assert info.value.status == 422


def test_async_client_concurrent_requests(gateway_url: str, chair_points: np.ndarray) -> None:
    async def main() -> list[Any]:
        async with AsyncCrossPointClient(gateway_url, timeout=120) as client:
            jobs = [
                client.embed(chair_points),
                client.classify(chair_points, top_k=1),
                client.segment(MESHES / "cube.glb", category="Table"),
                client.health(),
            ]
            return await asyncio.gather(*jobs)

    embedded, classified, segmented, health = asyncio.run(main())
    assert embedded.embedding.shape == (2048,) and len(classified.predictions) == 1
    assert segmented.category == "Table" and health == {"status": "ok"}


@pytest.fixture(scope="module")
def guarded_gateway(client_repository: Path) -> Iterator[str]:
    """A second gateway with an API key and a one-row queue: real 401s and real backpressure."""
    from server.app import create_app
    from server.core.config import Settings

    settings = Settings(
        model_repository=client_repository,
        models=["embed"],
        parse_workers=1,
        reload_interval_s=0,
        api_key="s3cret",
        max_queue=1,
        max_batch_size=1,
        log_format="text",
        log_level="WARNING",
    )
    with serve_in_thread(create_app(settings), timeout=120) as url:
        yield url


def test_api_key(guarded_gateway: str, chair_points: np.ndarray) -> None:
    with CrossPointClient(guarded_gateway) as anonymous, pytest.raises(CrossPointAPIError) as info:
        anonymous.embed(chair_points)
    assert info.value.status == 401 and info.value.code == "unauthorized"
    with CrossPointClient(guarded_gateway, api_key="s3cret") as client:
        assert client.embed(chair_points).embedding.shape == (2048,)


def test_backpressure_503_is_retried_until_served(guarded_gateway: str, chair_points: np.ndarray) -> None:
    async def burst(retries: int) -> list[Any]:
        policy = RetryPolicy(retries=retries, backoff=0.05, max_backoff=0.5)
        async with AsyncCrossPointClient(guarded_gateway, api_key="s3cret", retries=policy) as client:
            return await asyncio.gather(
                *[client.embed(chair_points) for _ in range(12)], return_exceptions=True
            )

    refused = [r for r in asyncio.run(burst(0)) if isinstance(r, CrossPointAPIError)]
    assert refused, "a one-row queue under 12 concurrent requests should refuse some"
    assert all(r.status in (429, 503) for r in refused)
    answers = asyncio.run(burst(40))
    assert all(not isinstance(r, BaseException) for r in answers), answers
