"""The three tasks on top of a backend: embed, classify, segment (single and batch).

Each request takes one `ServedModel` snapshot, prepares its uploads (read from the body by the API
layer) in the parse workers with that snapshot's point settings, and runs on that snapshot.

Category prediction for segmentation: there is no 16-way ShapeNetPart classifier, so the part
segmentation network ranks the categories itself. The points go through it once per category
(16 rows in one batch, one-hot c each); for category c the score is the mean over points of
max_{p in parts(c)} log softmax(logits_c)[p] — the log-likelihood of the best labelling that uses
only c's parts, with probabilities normalised over all 50 parts, so a category with few parts gets no
free advantage. The highest score wins; its logits are the answer (no extra run). Costs 16x a
given-category call; pass `category` when you know it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np

from crosspoint.geometry.normalize import up_axis_rotation
from export.contract import NUM_CATEGORIES
from export.trust import AUTO_UP_AXES, Trust, TrustError, auto_candidates, auto_choice, load_trust
from server.backends.base import InferenceBackend, ModelInfo, ServedModel
from server.core.config import Settings
from server.errors import ServingError
from server.schemas import (
    BatchResponse,
    ClassifyResponse,
    EmbedResponse,
    ErrorInfo,
    Prediction,
    SegmentResponse,
)
from server.services.parsing import Prepared, PrepareOptions, Upload, UploadParser, Uploads

Answer = TypeVar("Answer", EmbedResponse, ClassifyResponse, SegmentResponse)
T = TypeVar("T")
AUTO = "auto"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryOptions:
    """Options common to every task (query parameters)."""

    up_axis: str = "y"  # or "auto": the 6 axis-aligned up directions in one batch, best kept
    num_points: int | None = None
    seed: int = 0
    format: str | None = None

    @property
    def auto(self) -> bool:
        return self.up_axis.lower() == AUTO


@dataclass(frozen=True)
class EmbedOptions(QueryOptions):
    include_projection: bool = False


@dataclass(frozen=True)
class ClassifyOptions(QueryOptions):
    top_k: int = 5


@dataclass(frozen=True)
class SegmentOptions(QueryOptions):
    category: str | None = None
    include_vertex_labels: bool = True


def resolve_num_points(info: ModelInfo, requested: int | None, settings: Settings) -> int:
    low = max(info.min_points, settings.min_num_points or 0)
    high = min(info.max_points, settings.max_num_points or info.max_points)
    if requested is None:
        return min(max(settings.default_num_points or info.num_points, low), high)
    if not low <= requested <= high:
        raise ServingError(
            "num_points_out_of_range",
            f"num_points must be between {low} and {high} for model '{info.name}' version {info.version}",
        )
    return requested


def check_cost(settings: Settings, rows: int, num_points: int, items: int = 1) -> None:
    """Refuse (413) a request whose model work, rows x points over all its items, is over the budget."""
    cost = rows * num_points * items
    limit = settings.max_request_cost
    if cost <= limit:
        return
    what = f"{items} items x " if items > 1 else ""
    raise ServingError(
        "request_too_costly",
        f"this request needs {what}{rows} model rows x {num_points} points = {cost}, over the per-request "
        f"limit of {limit}; segment without a category costs {NUM_CATEGORIES} rows and up_axis=auto "
        f"{len(AUTO_UP_AXES)} more: pass category, fewer points or fewer items",
        details={"cost": cost, "limit": limit, "rows": rows, "num_points": num_points, "items": items},
    )


async def until_disconnected(
    client_gone: Callable[[], Awaitable[bool]], work: Awaitable[T], poll_s: float = 0.25
) -> T:
    """`work`'s result, or, as soon as the client has gone away, `work` cancelled (its parse workers are
    replaced, its queued rows dropped) and 499 (which nobody reads, but the logs and metrics do)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_s)
            if done:
                return task.result()
            if await client_gone():  # the body is read: the next message can only be that
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise ServingError("client_closed_request", "the client went away; its work was cancelled")
    finally:
        if not task.done():
            task.cancel()


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def oriented_receipt(receipt: dict[str, Any], axis: str, scores: dict[str, float]) -> dict[str, Any]:
    """The receipt of points prepared with up_axis y, then turned so `axis` is up (up_axis=auto)."""
    rotation = up_axis_rotation(axis)
    return {
        **receipt,
        "up_axis": axis,
        "rotation": [[float(v) for v in row] for row in rotation],
        "up_axis_scores": scores,
    }


def category_scores(part_logits: np.ndarray, parts: list[list[int]]) -> np.ndarray:
    """part_logits [C, N, P] (row c: run with category c) -> score per category (see module doc)."""
    logp = log_softmax(part_logits)
    return np.array([logp[c][:, ids].max(axis=-1).mean() if ids else -np.inf for c, ids in enumerate(parts)])


def _ood_fields(trust: Trust | None, embedding: np.ndarray) -> dict[str, Any]:
    """ood_score / in_distribution of one answer (null without the version's statistics)."""
    if trust is None:
        return {"ood_score": None, "in_distribution": None}
    score = float(trust.ood_scores(embedding[:1])[0])
    return {"ood_score": score, "in_distribution": score <= trust.threshold}


class InferenceService:
    def __init__(self, backend: InferenceBackend, parser: UploadParser, settings: Settings) -> None:
        self.backend = backend
        self.parser = parser
        self.settings = settings
        self._trust: dict[str, tuple[str, str, Trust | None]] = {}  # name -> (version, path, trust)

    def trust(self, info: ModelInfo) -> Trust | None:
        """The served version's calibration + OOD statistics (read once per version; None without them)."""
        cached = self._trust.get(info.name)
        if cached is not None and cached[:2] == (info.version, str(info.path)):
            return cached[2]
        try:
            trust = load_trust(info.path)
        except (TrustError, OSError, KeyError, ValueError) as exc:
            # The version still serves; its answers carry ood_score null rather than a wrong score.
            logger.error("%s v%s: calibration unusable: %s", info.name, info.version, exc)
            trust = None
        self._trust[info.name] = (info.version, str(info.path), trust)
        return trust

    async def _infer_oriented(
        self, served: ServedModel, prepared: Prepared, auto: bool, trust: Trust | None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The graph's outputs for one shape (one row) and its receipt; with up_axis=auto, the 6
        orientations run as one batch and one is kept by export.trust.auto_choice (the version's
        up-axis selector: the most upright candidate), computed here from the outputs, so every backend
        chooses alike. The receipt's up_axis_scores are that rule's per-axis scores."""
        if not auto:
            return await self.backend.infer(served, {"points": prepared.points[None]}), prepared.receipt
        out = await self.backend.infer(served, {"points": auto_candidates(prepared.points[None])})
        logits = out.get("logits")
        confidence = None
        if logits is not None:
            confidence = (trust.probabilities(logits) if trust else softmax(logits)).max(axis=-1)
        choice = auto_choice(trust, out["embedding"], confidence)
        if choice is None:
            raise ServingError(
                "up_axis_auto_unavailable",
                f"up_axis=auto needs OOD statistics; model '{served.info.name}' version "
                f"{served.info.version} has none (run `crosspoint calibrate`)",
            )
        best, scores = choice
        chosen = {name: value[best : best + 1] for name, value in out.items()}
        per_axis = {axis: float(scores[i]) for i, axis in enumerate(AUTO_UP_AXES)}
        return chosen, oriented_receipt(prepared.receipt, AUTO_UP_AXES[best], per_axis)

    async def orient_by_embed(self, prepared: Prepared) -> Prepared:
        """up_axis=auto for segment (no embedding of its own): the embed model picks the orientation."""
        embed = self.backend.model("embed")
        trust = self.trust(embed.info)
        if trust is None:
            raise ServingError(
                "up_axis_auto_unavailable",
                f"up_axis=auto for segment uses the embed model's OOD statistics; version {embed.info.version} "
                "has none (run `crosspoint calibrate`)",
            )
        candidates = auto_candidates(prepared.points[None])
        out = await self.backend.infer(embed, {"points": candidates})
        choice = auto_choice(trust, out["embedding"])
        assert choice is not None  # a calibrated version always has a rule
        best, scores = choice
        per_axis = {axis: float(scores[i]) for i, axis in enumerate(AUTO_UP_AXES)}
        return replace(
            prepared,
            points=candidates[best],
            receipt=oriented_receipt(prepared.receipt, AUTO_UP_AXES[best], per_axis),
        )

    # --- request plumbing shared by the tasks ---

    def prepare_options(
        self, info: ModelInfo, query: QueryOptions, *, nearest: bool = False
    ) -> PrepareOptions:
        """How the parse worker turns an upload into `info`'s input: the query resolved against the model
        and the gateway's limits (`nearest`: also map the original vertices to sampled points)."""
        s = self.settings
        num_points = resolve_num_points(info, query.num_points, s)
        return PrepareOptions(
            num_points=num_points,
            # auto: prepare in the input's own frame; the 6 candidate turns are applied to those points.
            up_axis="y" if query.auto else query.up_axis,
            seed=query.seed,
            min_points=min(num_points, max(info.min_points, s.min_num_points or 0)),
            nearest=nearest,
            max_vertex_labels=s.max_vertex_labels,
            max_bytes=s.max_body_bytes,
            max_vertices=s.max_input_points,
            max_faces=s.max_input_faces,
        )

    async def _single(
        self,
        uploads: Uploads,
        model: str,
        query: QueryOptions,
        run: Callable[[ServedModel, Prepared], Awaitable[Answer]],
        nearest: bool = False,
        check: Callable[[ModelInfo], object] | None = None,
        rows: int = 1,
    ) -> Answer:
        served = self.backend.model(model)
        options = self.prepare_options(served.info, query, nearest=nearest)
        if check is not None:
            check(served.info)
        check_cost(self.settings, rows, options.num_points)
        (upload,) = uploads.get()
        if upload.error is not None:
            raise upload.error

        async def work() -> Answer:
            return await run(served, await self.parser.prepare_one(upload, options))

        return await until_disconnected(uploads.client_gone, work())

    async def _batch(
        self,
        uploads: Uploads,
        model: str,
        query: QueryOptions,
        run: Callable[[ServedModel, Prepared], Awaitable[Answer]],
        response_type: type[BatchResponse[Answer]],
        rows_per_item: int = 1,
        nearest: bool = False,
        check: Callable[[ModelInfo], object] | None = None,
    ) -> BatchResponse[Answer]:
        served = self.backend.model(model)
        options = self.prepare_options(served.info, query, nearest=nearest)
        if check is not None:
            check(served.info)
        check_cost(self.settings, rows_per_item, options.num_points)
        items = uploads.get()
        check_cost(self.settings, rows_per_item, options.num_points, len(items))
        # Bounded in-flight rows per request: the micro-batcher stays full without one request flooding it.
        gate = asyncio.Semaphore(max(1, 2 * self.settings.max_batch_size // rows_per_item))

        async def answer(name: str | None, outcome: Prepared | ServingError) -> dict[str, Any]:
            try:
                if isinstance(outcome, ServingError):
                    raise outcome
                async with gate:
                    result = await run(served, outcome)
            except ServingError as exc:
                error = ErrorInfo(code=exc.code, message=exc.message, details=exc.details)
                return {"name": name, "status": exc.status, "error": error}
            return {"name": name, "status": 200, "result": result}

        async def one(upload: Upload) -> list[dict[str, Any]]:
            try:
                outcomes = await self.parser.prepare(upload, options)
            except ServingError as exc:
                if upload.document is not None:
                    raise  # the JSON body itself is unusable: it is the whole request
                outcomes = [exc]
            if upload.document is not None:
                # A JSON batch body is one upload of many shapes, counted once the worker has read it.
                check_cost(self.settings, rows_per_item, options.num_points, len(outcomes))
            return list(await asyncio.gather(*(answer(upload.name, o) for o in outcomes)))

        async def work() -> list[dict[str, Any]]:
            answers = await asyncio.gather(*(one(upload) for upload in items))
            return [{"index": i, **entry} for i, entry in enumerate(e for group in answers for e in group)]

        results = await until_disconnected(uploads.client_gone, work())
        return response_type.model_validate(
            {"items": results, "model": served.info.name, "version": served.info.version}
        )

    @staticmethod
    def _oriented_rows(query: QueryOptions) -> int:
        return len(AUTO_UP_AXES) if query.auto else 1

    # --- embed ---

    async def _embed(self, served: ServedModel, prepared: Prepared, query: EmbedOptions) -> EmbedResponse:
        trust = self.trust(served.info)
        out, receipt = await self._infer_oriented(served, prepared, query.auto, trust)
        projection = out.get("projection")
        ood = _ood_fields(trust, out["embedding"])
        return EmbedResponse(
            embedding=out["embedding"][0].tolist(),
            projection=projection[0].tolist()
            if query.include_projection and projection is not None
            else None,
            model=served.info.name,
            version=served.info.version,
            receipt=receipt,
            **ood,
        )

    async def embed(self, uploads: Uploads, query: EmbedOptions) -> EmbedResponse:
        return await self._single(
            uploads, "embed", query, lambda s, p: self._embed(s, p, query), rows=self._oriented_rows(query)
        )

    async def embed_batch(self, uploads: Uploads, query: EmbedOptions) -> BatchResponse[EmbedResponse]:
        return await self._batch(
            uploads,
            "embed",
            query,
            lambda s, p: self._embed(s, p, query),
            BatchResponse[EmbedResponse],
            rows_per_item=self._oriented_rows(query),
        )

    # --- classify ---

    async def _classify(
        self, served: ServedModel, prepared: Prepared, query: ClassifyOptions
    ) -> ClassifyResponse:
        trust = self.trust(served.info)
        out, receipt = await self._infer_oriented(served, prepared, query.auto, trust)
        probabilities = (trust.probabilities(out["logits"]) if trust else softmax(out["logits"]))[0]
        top_k = query.top_k
        names = served.info.names("class_names")
        order = np.argsort(-probabilities, kind="stable")[: min(top_k, probabilities.shape[0])]
        predictions = [
            Prediction(
                label=names[i] if i < len(names) else str(i),
                index=int(i),
                probability=float(probabilities[i]),
            )
            for i in order
        ]
        return ClassifyResponse(
            predictions=predictions,
            model=served.info.name,
            version=served.info.version,
            receipt=receipt,
            **_ood_fields(trust, out["embedding"]),
        )

    async def classify(self, uploads: Uploads, query: ClassifyOptions) -> ClassifyResponse:
        return await self._single(
            uploads,
            "classify",
            query,
            lambda s, p: self._classify(s, p, query),
            rows=self._oriented_rows(query),
        )

    async def classify_batch(
        self, uploads: Uploads, query: ClassifyOptions
    ) -> BatchResponse[ClassifyResponse]:
        return await self._batch(
            uploads,
            "classify",
            query,
            lambda s, p: self._classify(s, p, query),
            BatchResponse[ClassifyResponse],
            rows_per_item=self._oriented_rows(query),
        )

    # --- segment ---

    def _category_index(self, info: ModelInfo, category: str) -> int:
        names = info.names("category_names")
        wanted = category.strip().lower()
        for i, name in enumerate(names):
            if name.lower() == wanted:
                return i
        raise ServingError(
            "unknown_category",
            f"unknown category {category!r}; known: {', '.join(names)}",
            details={"known": names},
        )

    async def _segment(
        self, served: ServedModel, prepared: Prepared, query: SegmentOptions
    ) -> SegmentResponse:
        if query.auto:
            prepared = await self.orient_by_embed(prepared)
        info = served.info
        categories = info.names("category_names")
        parts_by_category = info.category_parts
        parts = [parts_by_category.get(name, []) for name in categories]
        n = len(categories)
        scores: dict[str, float] | None = None
        if query.category is not None:
            chosen = self._category_index(info, query.category)
            onehot = np.zeros((1, n), dtype=np.float32)
            onehot[0, chosen] = 1.0
            logits = (
                await self.backend.infer(served, {"points": prepared.points[None], "category": onehot})
            )["part_logits"][0]
        else:
            points = np.repeat(prepared.points[None], n, axis=0)
            onehot = np.eye(n, dtype=np.float32)
            all_logits = (await self.backend.infer(served, {"points": points, "category": onehot}))[
                "part_logits"
            ]
            ranking = category_scores(all_logits, parts)
            chosen = int(np.argmax(ranking))
            logits = all_logits[chosen]
            scores = {name: float(ranking[i]) for i, name in enumerate(categories)}
        ids = parts[chosen]
        if not ids:
            raise ServingError("internal_error", f"model metadata lists no parts for {categories[chosen]}")
        point_labels = np.argmax(logits[:, ids], axis=-1)
        vertex_labels: list[int] | None = None
        if prepared.nearest is not None and query.include_vertex_labels:
            vertex_labels = np.where(prepared.nearest >= 0, point_labels[prepared.nearest], -1).tolist()
        part_names = info.names("part_names")
        return SegmentResponse(
            point_labels=point_labels.tolist(),
            points=prepared.points.tolist(),
            vertex_labels=vertex_labels,
            part_names=[part_names[i] if i < len(part_names) else str(i) for i in ids],
            part_ids=list(ids),
            category=categories[chosen],
            category_source="given" if query.category is not None else "predicted",
            category_scores=scores,
            model=info.name,
            version=info.version,
            receipt=prepared.receipt,
        )

    def _segment_rows(self, query: SegmentOptions) -> int:
        rows = 1 if query.category is not None else NUM_CATEGORIES
        return rows + (len(AUTO_UP_AXES) if query.auto else 0)

    def _check_category(self, query: SegmentOptions) -> Callable[[ModelInfo], object] | None:
        category = query.category
        if category is None:
            return None
        return lambda info: self._category_index(info, category)

    async def segment(self, uploads: Uploads, query: SegmentOptions) -> SegmentResponse:
        return await self._single(
            uploads,
            "segment",
            query,
            lambda s, p: self._segment(s, p, query),
            nearest=query.include_vertex_labels,
            check=self._check_category(query),
            rows=self._segment_rows(query),
        )

    async def segment_batch(self, uploads: Uploads, query: SegmentOptions) -> BatchResponse[SegmentResponse]:
        return await self._batch(
            uploads,
            "segment",
            query,
            lambda s, p: self._segment(s, p, query),
            BatchResponse[SegmentResponse],
            rows_per_item=self._segment_rows(query),
            nearest=query.include_vertex_labels,
            check=self._check_category(query),
        )
