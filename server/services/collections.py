"""Collections: a user's own shapes, embedded and kept, searched by similarity and used as few-shot classes.

The service takes items and queries as the API layer read them from the request (multipart or JSON),
prepares shapes in the parse workers with the usual options, embeds them with the `embed` model and
keeps them in the `CollectionStore`. A collection is pinned to the embed version it was created with:
items are only ever embedded by that version. When the gateway serves a newer one, a collection still
answers searches by stored item or by embedding from its own vectors; a query or an add that needs a
new embedding is refused (409 `collection_version_mismatch`) until `reembed` moves the collection, which
re-embeds every item from its stored float16 points with the served version and swaps embeddings and
version in one transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from server.backends.base import InferenceBackend, ServedModel
from server.core.config import Settings
from server.errors import ServingError
from server.schemas import (
    CollectionClassifyResponse,
    CollectionInfoResponse,
    CollectionItemRequest,
    CollectionQueryRequest,
    ErrorInfo,
    ItemAnswer,
    ItemDetail,
    ItemsBatchResponse,
    MatchAnswer,
    Prediction,
    SearchResponse,
)
from server.services import fewshot
from server.services.collection_store import CollectionInfo, CollectionStore, NewItem, StoreError
from server.services.inference import InferenceService, QueryOptions
from server.services.parsing import Received, Upload, format_of

logger = logging.getLogger(__name__)

EMBED_MODEL = "embed"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+=-]{0,127}$")
MAX_LABEL = 128


def store_error(exc: StoreError) -> ServingError:
    return ServingError(exc.code, exc.message)


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ServingError(
            "invalid_collection_name",
            "a collection name is 1-63 characters: lower-case letters, digits, '_' and '-', starting with a "
            "letter or digit",
        )
    return name


def check_id(item_id: str) -> str:
    if not ID_PATTERN.match(item_id):
        raise ServingError(
            "invalid_item_id",
            f"item id {item_id[:40]!r} is not valid: 1-128 characters of letters, digits and _ . : @ + = -, "
            "starting with a letter or digit",
        )
    return item_id


def id_from_name(filename: str | None) -> str | None:
    """A file's stem as its default item id (`chair_0001.obj` -> `chair_0001`)."""
    if not filename:
        return None
    stem = PurePosixPath(filename.replace("\\", "/")).stem
    return stem if ID_PATTERN.match(stem) else None


@dataclass
class ItemInput:
    """One item to add, as received (the shape is prepared and embedded later)."""

    id: str | None
    label: str | None
    metadata: dict[str, Any] | None
    raw: Upload | None = None  # a file or points to embed
    embedding: np.ndarray | None = None  # or an embedding given as is
    version: str | None = None  # the version the given embedding came from (checked when present)
    error: ServingError | None = None


@dataclass
class CollectionQuery:
    """A search/classify query as received: a JSON document (id, points or embedding) or a shape's upload."""

    document: CollectionQueryRequest | None = None
    upload: Upload | None = None


class CollectionService:
    def __init__(self, store: CollectionStore, inference: InferenceService, settings: Settings) -> None:
        self.store = store
        self.inference = inference
        self.backend: InferenceBackend = inference.backend
        self.settings = settings

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a store method off the event loop (SQLite commits fsync), mapping its errors."""
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except StoreError as exc:
            raise store_error(exc) from None

    def _info(self, info: CollectionInfo) -> CollectionInfoResponse:
        try:
            served_version: str | None = self.backend.model(info.model).info.version
        except ServingError:
            served_version = None
        return CollectionInfoResponse(
            name=info.name,
            description=info.description,
            count=info.count,
            labels=info.labels,
            model=info.model,
            version=info.version,
            served_version=served_version,
            dim=info.dim,
            created_at=info.created_at,
        )

    # --- collections ---

    async def create(self, name: str, description: str) -> CollectionInfoResponse:
        check_name(name)
        served = self.backend.model(EMBED_MODEL)
        dim = _embedding_dim(served)
        info = await self._call(self.store.create, name, description, EMBED_MODEL, served.info.version, dim)
        return self._info(info)

    async def list_all(self) -> list[CollectionInfoResponse]:
        names = await self._call(self.store.names)
        return [self._info(await self._call(self.store.info, n)) for n in names]

    async def get(self, name: str) -> CollectionInfoResponse:
        return self._info(await self._call(self.store.info, check_name(name)))

    async def delete(self, name: str) -> None:
        await self._call(self.store.delete, check_name(name))

    # --- embedding with the collection's version ---

    def _served_for(self, info: CollectionInfo) -> ServedModel:
        served = self.backend.model(info.model)
        if served.info.version != info.version:
            raise ServingError(
                "collection_version_mismatch",
                f"collection '{info.name}' holds embeddings of {info.model} version {info.version}, but version "
                f"{served.info.version} is served: search by stored id or embedding, or run "
                f"`crosspoint collections reembed {info.name}` to move it to version {served.info.version}",
                details={"collection_version": info.version, "served_version": served.info.version},
            )
        return served

    async def _embed(
        self, served: ServedModel, raw: Upload, query: QueryOptions
    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """(embedding float32 [D], the model-frame points that were embedded, receipt) of one shape."""
        if raw.error is not None:
            raise raw.error
        options = self.inference.prepare_options(served.info, query)
        prepared = await self.inference.parser.prepare_one(raw, options)
        if query.auto:
            # The orientation is chosen first, so the points kept for re-embedding are the ones embedded.
            prepared = await self.inference.orient_by_embed(prepared)
        out = await self.backend.infer(served, {"points": prepared.points[None]})
        return out["embedding"][0].astype(np.float32), prepared.points, prepared.receipt

    # --- items as received (the API layer reads the body; the rules of an item live here) ---

    def metadata(self, value: Any) -> dict[str, Any] | None:
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise ServingError("invalid_metadata", "metadata must be a JSON object") from None
        if not isinstance(value, dict):
            raise ServingError("invalid_metadata", "metadata must be a JSON object")
        size = len(json.dumps(value).encode())
        if size > self.settings.collection_max_metadata_bytes:
            raise ServingError(
                "metadata_too_large",
                f"metadata is {size} bytes as JSON; at most {self.settings.collection_max_metadata_bytes}",
            )
        return value

    @staticmethod
    def label(value: Any) -> str | None:
        if value is None or value == "":
            return None
        label = str(value).strip()
        if not label or len(label) > MAX_LABEL:
            raise ServingError("invalid_label", f"a label is 1-{MAX_LABEL} characters")
        return label

    def item_from_json(self, entry: CollectionItemRequest) -> ItemInput:
        item = ItemInput(id=None, label=None, metadata=None)
        try:
            item.id = check_id(entry.id)
            item.label = self.label(entry.label)
            item.metadata = self.metadata(entry.metadata)
            if (entry.points is None) == (entry.embedding is None):
                raise ServingError("invalid_item", "give exactly one of points or embedding")
            if entry.points is not None:
                points = np.asarray(entry.points, dtype=np.float32)
                if points.ndim != 2 or points.shape[1] != 3:
                    raise ServingError("invalid_points", "points must be [[x, y, z], ...]")
                item.raw = Upload(None, points, None)
            else:
                item.embedding = np.asarray(entry.embedding, dtype=np.float32)
                if not np.isfinite(item.embedding).all():
                    raise ServingError("invalid_embedding", "an embedding must be finite")
                item.version = entry.version
        except ServingError as exc:
            item.error = exc
        return item

    def item_from_file(
        self,
        filename: str | None,
        data: bytes,
        given_id: str | None,
        label: str | None,
        metadata: str | None,
        declared_format: str | None,
    ) -> ItemInput:
        """One multipart file with its fields (id defaults to the file's stem); a bad field is the item's
        error, not the request's."""
        item = ItemInput(id=None, label=None, metadata=None)
        try:
            given = given_id if given_id else id_from_name(filename)
            if not given:
                raise ServingError("missing_item_id", f"give an id for {filename or 'the upload'}")
            item.id = check_id(given)
            item.label = self.label(label)
            item.metadata = self.metadata(metadata)
            fmt = format_of(filename, declared_format)
            if fmt is None:
                raise ServingError(
                    "unsupported_format", f"cannot tell the format of {filename!r}: send format="
                )
            item.raw = Upload(filename, data, fmt)
        except ServingError as exc:
            item.error = exc
        return item

    async def _prepare_item(self, info: CollectionInfo, item: ItemInput, query: QueryOptions) -> NewItem:
        if item.error is not None:
            raise item.error
        assert item.id is not None
        if item.embedding is not None:
            if item.version is not None and item.version != info.version:
                raise ServingError(
                    "collection_version_mismatch",
                    f"the embedding is from version {item.version}; collection '{info.name}' holds version "
                    f"{info.version}",
                )
            if item.embedding.shape != (info.dim,):
                raise ServingError("invalid_embedding", f"an embedding must have {info.dim} values")
            return NewItem(item.id, item.embedding, item.label, item.metadata)
        assert item.raw is not None
        served = self._served_for(info)
        embedding, points, receipt = await self._embed(served, item.raw, query)
        return NewItem(item.id, embedding, item.label, item.metadata, points, receipt)

    # --- items ---

    async def add(
        self, name: str, body: Received[list[ItemInput]], query: QueryOptions
    ) -> tuple[ItemAnswer, bool]:
        info = await self._call(self.store.info, check_name(name))
        (item,) = body.get()
        new = await self._prepare_item(info, item, query)
        (created,) = await self._call(self.store.upsert, name, [new], self.settings.collection_max_items)
        return self._answer(info, new, created), created

    def _answer(self, info: CollectionInfo, new: NewItem, created: bool) -> ItemAnswer:
        return ItemAnswer(
            id=new.id,
            label=new.label,
            metadata=new.metadata,
            created=created,
            model=info.model,
            version=info.version,
            receipt=new.receipt,
        )

    async def add_batch(
        self, name: str, body: Received[list[ItemInput]], query: QueryOptions
    ) -> ItemsBatchResponse:
        info = await self._call(self.store.info, check_name(name))
        items = body.get()
        gate = asyncio.Semaphore(max(1, 2 * self.settings.max_batch_size))

        async def one(item: ItemInput) -> NewItem | ServingError:
            try:
                async with gate:
                    return await self._prepare_item(info, item, query)
            except ServingError as exc:
                return exc

        outcomes = list(await asyncio.gather(*(one(item) for item in items)))
        ready = [o for o in outcomes if isinstance(o, NewItem)]
        created = iter(
            await self._call(self.store.upsert, name, ready, self.settings.collection_max_items)
            if ready
            else []
        )
        entries: list[dict[str, Any]] = []
        for index, (item, outcome) in enumerate(zip(items, outcomes, strict=True)):
            entry: dict[str, Any] = {
                "index": index,
                "id": item.id,
                "name": item.raw.name if item.raw else None,
            }
            if isinstance(outcome, ServingError):
                entry |= {
                    "status": outcome.status,
                    "error": ErrorInfo(code=outcome.code, message=outcome.message, details=outcome.details),
                }
            else:
                new_item = next(created)
                entry |= {"status": 201 if new_item else 200, "result": self._answer(info, outcome, new_item)}
            entries.append(entry)
        return ItemsBatchResponse.model_validate(
            {"items": entries, "model": info.model, "version": info.version}
        )

    async def get_item(self, name: str, item_id: str, include_embedding: bool) -> ItemDetail:
        info = await self._call(self.store.info, check_name(name))
        record = await self._call(self.store.get, name, item_id)
        return ItemDetail(
            id=record.id,
            label=record.label,
            metadata=record.metadata,
            model=info.model,
            version=info.version,
            receipt=record.receipt,
            num_points=len(record.points) if record.points is not None else None,
            updated_at=record.updated_at,
            embedding=record.embedding.tolist() if include_embedding else None,
        )

    async def delete_item(self, name: str, item_id: str) -> None:
        await self._call(self.store.remove, check_name(name), item_id)

    # --- queries ---

    async def _query_embedding(
        self, received: Received[CollectionQuery], info: CollectionInfo, query: QueryOptions
    ) -> tuple[np.ndarray, str | None, dict[str, Any] | None]:
        """(embedding, the stored id it came from or None, receipt) of a search/classify query."""
        asked = received.get()
        body = asked.document
        if body is not None:
            given = [v is not None for v in (body.id, body.points, body.embedding)]
            if sum(given) != 1:
                raise ServingError("invalid_query", "give exactly one of id, points or embedding")
            if body.id is not None:
                record = await self._call(self.store.get, info.name, body.id)
                return record.embedding, record.id, None
            if body.embedding is not None:
                embedding = np.asarray(body.embedding, dtype=np.float32)
                if embedding.shape != (info.dim,) or not np.isfinite(embedding).all():
                    raise ServingError(
                        "invalid_embedding", f"an embedding must have {info.dim} finite values"
                    )
                return embedding, None, None
            raw = Upload(None, np.asarray(body.points, dtype=np.float32), None)
        else:
            assert asked.upload is not None
            raw = asked.upload
        embedding, _, receipt = await self._embed(self._served_for(info), raw, query)
        return embedding, None, receipt

    async def search(
        self, name: str, asked: Received[CollectionQuery], k: int, label: str | None, query: QueryOptions
    ) -> SearchResponse:
        info = await self._call(self.store.info, check_name(name))
        embedding, exclude, receipt = await self._query_embedding(asked, info, query)
        if label is None:
            found = await self._call(self.store.search, name, embedding, k, exclude)
        else:
            found = await self._call(self.store.search_label, name, embedding, k, label, exclude)
        return SearchResponse(
            matches=[MatchAnswer(id=m.id, score=m.score, label=m.label, metadata=m.metadata) for m in found],
            collection=name,
            model=info.model,
            version=info.version,
            receipt=receipt,
        )

    async def classifier(self, name: str, method: fewshot.Method) -> fewshot.FewShotClassifier:
        """The collection's few-shot classifier, refitted only when its items changed."""
        cached = await self._call(self.store.cached, name, f"fewshot:{method}")
        if cached is not None:
            return cached
        generation, labels, embeddings = await self._call(self.store.labelled_embeddings, name)
        if not labels:
            raise ServingError(
                "no_labels", f"collection '{name}' has no labelled items: add items with a label first"
            )
        model = await asyncio.to_thread(fewshot.fit, method, labels, embeddings)
        await self._call(self.store.cache, name, generation, f"fewshot:{method}", model)
        return model

    async def classify(
        self,
        name: str,
        asked: Received[CollectionQuery],
        top_k: int,
        method: fewshot.Method,
        query: QueryOptions,
    ) -> CollectionClassifyResponse:
        info = await self._call(self.store.info, check_name(name))
        model = await self.classifier(name, method)
        embedding, _, receipt = await self._query_embedding(asked, info, query)
        probabilities = model.probabilities(embedding[None])[0]
        order = np.argsort(-probabilities, kind="stable")[:top_k]
        return CollectionClassifyResponse(
            predictions=[
                Prediction(label=model.classes[i], index=int(i), probability=float(probabilities[i]))
                for i in order
            ],
            method=method,
            collection=name,
            model=info.model,
            version=info.version,
            receipt=receipt,
        )

    # --- moving to the served version ---

    async def reembed(self, name: str, query: QueryOptions) -> CollectionInfoResponse:
        info: CollectionInfo = await self._call(self.store.info, check_name(name))
        served = self.backend.model(info.model)
        if served.info.version == info.version:
            return self._info(info)
        if _embedding_dim(served) != info.dim:
            raise ServingError(
                "dimension_mismatch",
                f"version {served.info.version} embeds to {_embedding_dim(served)} values",
            )
        await self._call(self.store.set_busy, name, f"re-embedding with version {served.info.version}")
        try:
            rows = await self._call(lambda: list(self.store.iter_points(name)))
            missing = [item_id for _, item_id, points in rows if points is None]
            if missing:
                raise ServingError(
                    "cannot_reembed",
                    f"{len(missing)} items were added as embeddings and have no points to re-embed "
                    f"(e.g. {missing[0]!r}): delete them or add them again as shapes",
                )
            embeddings: dict[int, np.ndarray] = {}
            step = max(1, self.settings.max_batch_size)
            for start in range(0, len(rows), step):
                chunk = rows[start : start + step]
                points = (
                    np.stack([p.astype(np.float32) for _, _, p in chunk if p is not None])
                    if _same_size(chunk)
                    else None
                )
                if points is not None:
                    out = await self.backend.infer(served, {"points": points})
                    vectors = list(out["embedding"])
                else:
                    vectors = [
                        (await self.backend.infer(served, {"points": p.astype(np.float32)[None]}))[
                            "embedding"
                        ][0]
                        for _, _, p in chunk
                        if p is not None
                    ]
                embeddings.update({key: v for (key, _, _), v in zip(chunk, vectors, strict=True)})
            await self._call(self.store.replace_embeddings, name, served.info.version, embeddings)
        finally:
            await self._call(self.store.set_busy, name, None)
        logger.info("collection %s re-embedded with %s v%s", name, info.model, served.info.version)
        return self._info(await self._call(self.store.info, name))


def _same_size(chunk: list[tuple[int, str, np.ndarray | None]]) -> bool:
    sizes = {len(p) for _, _, p in chunk if p is not None}
    return len(sizes) == 1


def _embedding_dim(served: ServedModel) -> int:
    return served.info.metadata.embedding_dim or 2048
