"""SDK methods for `/v1/collections` (mixed into `CrossPointClient` and `AsyncCrossPointClient`).

    with CrossPointClient(url) as client:
        client.create_collection("parts")
        client.add_item("parts", "bracket.obj", label="bracket", metadata={"sku": "B-12"})
        matches = client.search("parts", "query.stl", k=5).matches
        label = client.classify_in("parts", "unknown.ply").label

Only the request building lives here; sending (and retrying) is the client's `_send`, sync or async.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from clients.calls import Call, Source, as_upload, npy_bytes, options_to_params, points_to_json
from clients.errors import CrossPointAPIError
from clients.results import ClassifyResult, parse_classify


@dataclass(frozen=True)
class Match:
    id: str
    score: float  # cosine similarity
    label: str | None
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class SearchResult:
    matches: list[Match]
    collection: str
    model: str
    version: str  # the collection's embed version
    receipt: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False)


def parse_search(body: dict[str, Any]) -> SearchResult:
    return SearchResult(
        matches=[
            Match(str(m["id"]), float(m["score"]), m.get("label"), m.get("metadata")) for m in body["matches"]
        ],
        collection=str(body.get("collection", "")),
        model=str(body.get("model", "")),
        version=str(body.get("version", "")),
        receipt=body.get("receipt"),
        raw=body,
    )


def _path(name: str, *rest: str) -> str:
    return "/v1/collections/" + "/".join(quote(p, safe=":") for p in (name, *rest))


def _shape_params(
    up_axis: str | None, num_points: int | None, seed: int | None, fmt: str | None
) -> dict[str, Any]:
    return options_to_params(up_axis=up_axis, num_points=num_points, seed=seed, format=fmt)


def add_item_call(
    name: str,
    source: Source | None,
    item_id: str | None,
    label: str | None,
    metadata: dict[str, Any] | None,
    embedding: Any,
    version: str | None,
    params: dict[str, Any],
) -> Call:
    path = _path(name, "items")
    if embedding is not None or source is None:
        if embedding is None or item_id is None:
            raise ValueError("give a source (file/points), or an id and an embedding")
        body = {
            "id": item_id,
            "embedding": np.asarray(embedding, dtype=np.float64).tolist(),
            "version": version,
        }
        return Call(
            "POST", path, params=params, json=_drop_none({**body, "label": label, "metadata": metadata})
        )
    upload = as_upload(source, params.get("format"))
    if upload is None:
        if item_id is None:
            raise ValueError("points need an id")
        body = {"id": item_id, "points": points_to_json(source), "label": label, "metadata": metadata}
        return Call("POST", path, params=params, json=_drop_none(body))
    data = _drop_none({"id": item_id, "label": label, "metadata": json.dumps(metadata) if metadata else None})
    return Call(
        "POST",
        path,
        params=params,
        files=[("file", (upload[0], upload[1], "application/octet-stream"))],
        data=data,
    )


def add_items_call(
    name: str,
    sources: Sequence[Source],
    ids: Sequence[str] | None,
    labels: Sequence[str | None] | None,
    metadata: Sequence[dict[str, Any] | None] | None,
    params: dict[str, Any],
) -> Call:
    for given, what in ((ids, "ids"), (labels, "labels"), (metadata, "metadata")):
        if given is not None and len(given) != len(sources):
            raise ValueError(f"{what} must have one entry per source")
    uploads = [as_upload(s, params.get("format")) for s in sources]
    if all(u is None for u in uploads):
        if ids is None:
            raise ValueError("points need ids")
        items = [
            _drop_none(
                {
                    "id": ids[i],
                    "points": points_to_json(s),
                    "label": labels[i] if labels else None,
                    "metadata": metadata[i] if metadata else None,
                }
            )
            for i, s in enumerate(sources)
        ]
        return Call("POST", _path(name, "items:batch"), params=params, json={"items": items})
    files = []
    for i, (source, upload) in enumerate(zip(sources, uploads, strict=True)):
        fname, content = upload if upload is not None else (f"{ids[i] if ids else i}.npy", npy_bytes(source))
        files.append(("files", (fname, content, "application/octet-stream")))
    data: dict[str, Any] = {}
    if ids is not None:
        data["ids"] = list(ids)
    if labels is not None:
        # an empty field means "no label" for that file
        data["labels"] = [label or "" for label in labels]
    if metadata is not None:
        data["metadata"] = [json.dumps(m) if m else "" for m in metadata]
    return Call("POST", _path(name, "items:batch"), params=params, files=files, data=data)


def query_call(
    name: str,
    action: str,
    source: Source | None,
    item_id: str | None,
    embedding: Any,
    params: dict[str, Any],
) -> Call:
    path = _path(name, action)
    given = sum(x is not None for x in (source, item_id, embedding))
    if given != 1:
        raise ValueError("give exactly one of source, id or embedding")
    if item_id is not None:
        return Call("POST", path, params=params, json={"id": item_id})
    if embedding is not None:
        return Call(
            "POST", path, params=params, json={"embedding": np.asarray(embedding, dtype=np.float64).tolist()}
        )
    upload = as_upload(source, params.get("format"))
    if upload is None:
        return Call("POST", path, params=params, json={"points": points_to_json(source)})
    return Call(
        "POST", path, params=params, files=[("file", (upload[0], upload[1], "application/octet-stream"))]
    )


def _drop_none(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def batch_results(body: dict[str, Any]) -> list[dict[str, Any] | CrossPointAPIError]:
    out: list[dict[str, Any] | CrossPointAPIError] = []
    for item in sorted(body.get("items", []), key=lambda e: e.get("index", 0)):
        if item.get("result") is not None:
            out.append(item["result"])
        else:
            out.append(CrossPointAPIError.from_response(int(item.get("status", 500)), item, None))
    return out


def label_from_dir(path: str | Path) -> str:
    """`shapes/chair/chair_0001.obj` -> `chair` (the CLI's --label-from-dir)."""
    return Path(path).parent.name


class CollectionsMixin:
    """Collection methods of the blocking client."""

    def _send(self, call: Call) -> Any:
        raise NotImplementedError

    def create_collection(self, name: str, description: str = "") -> dict[str, Any]:
        return dict(
            self._send(Call("POST", "/v1/collections", json={"name": name, "description": description}))
        )

    def collections(self) -> list[dict[str, Any]]:
        return list(self._send(Call("GET", "/v1/collections"))["collections"])

    def collection(self, name: str) -> dict[str, Any]:
        """Count, labels with counts, pinned model version (and the served one)."""
        return dict(self._send(Call("GET", _path(name))))

    def delete_collection(self, name: str) -> None:
        self._send(Call("DELETE", _path(name)))

    def add_item(
        self,
        collection: str,
        source: Source | None = None,
        *,
        id: str | None = None,
        label: str | None = None,
        metadata: dict[str, Any] | None = None,
        embedding: Any = None,
        version: str | None = None,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        format: str | None = None,
    ) -> dict[str, Any]:
        """Add (or replace, same id) one shape: a path, points, a mesh, or an embedding of the collection's
        version. A file's id defaults to its name's stem."""
        params = _shape_params(up_axis, num_points, seed, format)
        return dict(
            self._send(add_item_call(collection, source, id, label, metadata, embedding, version, params))
        )

    def add_items(
        self,
        collection: str,
        sources: Sequence[Source],
        *,
        ids: Sequence[str] | None = None,
        labels: Sequence[str | None] | None = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        format: str | None = None,
    ) -> list[dict[str, Any] | CrossPointAPIError]:
        """Many shapes in one request; one entry per source, a CrossPointAPIError for each that failed."""
        params = _shape_params(up_axis, num_points, seed, format)
        return batch_results(self._send(add_items_call(collection, sources, ids, labels, metadata, params)))

    def get_item(self, collection: str, id: str, include_embedding: bool = False) -> dict[str, Any]:
        params = {"include_embedding": "true"} if include_embedding else None
        return dict(self._send(Call("GET", _path(collection, "items", id), params=params)))

    def delete_item(self, collection: str, id: str) -> None:
        self._send(Call("DELETE", _path(collection, "items", id)))

    def search(
        self,
        collection: str,
        source: Source | None = None,
        *,
        id: str | None = None,
        embedding: Any = None,
        k: int = 10,
        label: str | None = None,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        format: str | None = None,
    ) -> SearchResult:
        """Nearest items to a shape, a stored item (left out of its own matches) or an embedding."""
        params = {**_shape_params(up_axis, num_points, seed, format), **options_to_params(k=k, label=label)}
        return parse_search(self._send(query_call(collection, "search", source, id, embedding, params)))

    def classify_in(
        self,
        collection: str,
        source: Source | None = None,
        *,
        id: str | None = None,
        embedding: Any = None,
        top_k: int | None = None,
        method: str | None = None,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        format: str | None = None,
    ) -> ClassifyResult:
        """Few-shot classification over the collection's labels."""
        params = {
            **_shape_params(up_axis, num_points, seed, format),
            **options_to_params(top_k=top_k, method=method),
        }
        return parse_classify(self._send(query_call(collection, "classify", source, id, embedding, params)))

    def reembed(self, collection: str) -> dict[str, Any]:
        """Re-embed every item with the served version and pin the collection to it."""
        return dict(self._send(Call("POST", _path(collection) + ":reembed")))


class AsyncCollectionsMixin:
    """The same methods, awaitable."""

    async def _send(self, call: Call) -> Any:
        raise NotImplementedError

    async def create_collection(self, name: str, description: str = "") -> dict[str, Any]:
        return dict(
            await self._send(Call("POST", "/v1/collections", json={"name": name, "description": description}))
        )

    async def collections(self) -> list[dict[str, Any]]:
        return list((await self._send(Call("GET", "/v1/collections")))["collections"])

    async def collection(self, name: str) -> dict[str, Any]:
        return dict(await self._send(Call("GET", _path(name))))

    async def delete_collection(self, name: str) -> None:
        await self._send(Call("DELETE", _path(name)))

    async def add_item(
        self,
        collection: str,
        source: Source | None = None,
        *,
        id: str | None = None,
        label: str | None = None,
        metadata: dict[str, Any] | None = None,
        embedding: Any = None,
        version: str | None = None,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        format: str | None = None,
    ) -> dict[str, Any]:
        params = _shape_params(up_axis, num_points, seed, format)
        call = add_item_call(collection, source, id, label, metadata, embedding, version, params)
        return dict(await self._send(call))

    async def add_items(
        self,
        collection: str,
        sources: Sequence[Source],
        *,
        ids: Sequence[str] | None = None,
        labels: Sequence[str | None] | None = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        format: str | None = None,
    ) -> list[dict[str, Any] | CrossPointAPIError]:
        params = _shape_params(up_axis, num_points, seed, format)
        return batch_results(
            await self._send(add_items_call(collection, sources, ids, labels, metadata, params))
        )

    async def get_item(self, collection: str, id: str, include_embedding: bool = False) -> dict[str, Any]:
        params = {"include_embedding": "true"} if include_embedding else None
        return dict(await self._send(Call("GET", _path(collection, "items", id), params=params)))

    async def delete_item(self, collection: str, id: str) -> None:
        await self._send(Call("DELETE", _path(collection, "items", id)))

    async def search(
        self,
        collection: str,
        source: Source | None = None,
        *,
        id: str | None = None,
        embedding: Any = None,
        k: int = 10,
        label: str | None = None,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        format: str | None = None,
    ) -> SearchResult:
        params = {**_shape_params(up_axis, num_points, seed, format), **options_to_params(k=k, label=label)}
        return parse_search(await self._send(query_call(collection, "search", source, id, embedding, params)))

    async def classify_in(
        self,
        collection: str,
        source: Source | None = None,
        *,
        id: str | None = None,
        embedding: Any = None,
        top_k: int | None = None,
        method: str | None = None,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        format: str | None = None,
    ) -> ClassifyResult:
        params = {
            **_shape_params(up_axis, num_points, seed, format),
            **options_to_params(top_k=top_k, method=method),
        }
        return parse_classify(
            await self._send(query_call(collection, "classify", source, id, embedding, params))
        )

    async def reembed(self, collection: str) -> dict[str, Any]:
        return dict(await self._send(Call("POST", _path(collection) + ":reembed")))
