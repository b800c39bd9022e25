"""The server a user would write first: FastAPI + eager PyTorch, one request per forward pass.

    python -m bench.naive_server --classifier cls.safetensors --segmenter seg.safetensors --port 8100

The yardstick of `bench/gateway.py`. Same checkpoints (training form: `create_model` + weights), same
preprocessing (`crosspoint.geometry.prepare`, in the request), same JSON inputs as the gateway
(`{"points": [[x, y, z], ...]}` parsed by pydantic, or a multipart `file`), a similar answer. No
parse workers, no batching, no ONNX. Endpoints are `async def` running the model inline: requests are
served strictly one at a time, which on 2 cores is the naive server's best case (a `def` endpoint
would run up to 40 forward passes at once in Starlette's thread pool: slower, and ~150 MB each for
segment). torch uses `--threads` threads; bench/gateway.py starts it with OMP_WAIT_POLICY=PASSIVE (on this
busy machine OpenMP's spinning made 2-thread torch up to 2.4x slower than 1 thread).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from pydantic import BaseModel


class PointsIn(BaseModel):
    points: list[list[float]]


def create_app(classifier: Path, segmenter: Path | None, threads: int = 2, num_points: int = 1024) -> FastAPI:
    import torch

    from crosspoint import checkpoint
    from crosspoint.data.shapenetpart_meta import CATEGORY_NAMES, category_index, part_range
    from crosspoint.geometry import GeometryError, load, prepare

    torch.set_num_threads(threads)
    cls = checkpoint.load(classifier)
    net = cls.model.eval()
    class_names = cls.class_names or [str(i) for i in range(net.config.num_classes)]
    seg = checkpoint.load(segmenter) if segmenter else None
    seg_points = int(seg.preprocess["num_points"]) if seg else 0
    app = FastAPI(title="naive CrossPoint server")

    def points_of(body: PointsIn | np.ndarray, n: int) -> np.ndarray:
        try:
            return prepare(np.asarray(body.points if isinstance(body, PointsIn) else body), n, "y", 0)[0]
        except GeometryError as exc:
            raise HTTPException(422, str(exc)) from None

    def classify_points(points: np.ndarray, top_k: int) -> dict[str, Any]:
        with torch.no_grad():
            logits = net(torch.from_numpy(points)[None])[0]
        probs = torch.softmax(logits, dim=0)
        top = torch.topk(probs, min(top_k, len(class_names)))
        return {
            "predictions": [
                {"label": class_names[i], "index": int(i), "probability": float(p)}
                for p, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
            ]
        }

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/embed")
    async def embed(body: PointsIn, include_projection: bool = False) -> dict[str, Any]:
        points = points_of(body, num_points)
        with torch.no_grad():
            features = net.forward_features(torch.from_numpy(points)[None])
            answer: dict[str, Any] = {"embedding": features[0].tolist()}
            if include_projection:
                answer["projection"] = net.project(features)[0].tolist()
        return answer

    @app.post("/v1/classify")
    async def classify(body: PointsIn, top_k: int = 5) -> dict[str, Any]:
        return classify_points(points_of(body, num_points), top_k)

    async def file_points(file: UploadFile) -> np.ndarray:
        fmt = Path(file.filename or "").suffix.lstrip(".").lower()
        try:
            return prepare(load(await file.read(), fmt), num_points, "y", 0)[0]
        except GeometryError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.post("/v1/classify:file")
    async def classify_file(file: UploadFile = File(...), top_k: int = 5) -> dict[str, Any]:
        return classify_points(await file_points(file), top_k)

    @app.post("/v1/embed:file")
    async def embed_file(file: UploadFile = File(...)) -> dict[str, Any]:
        points = await file_points(file)
        with torch.no_grad():
            return {"embedding": net.forward_features(torch.from_numpy(points)[None])[0].tolist()}

    @app.post("/v1/segment")
    async def segment(body: PointsIn, category: str = Query(...)) -> dict[str, Any]:
        if seg is None:
            raise HTTPException(404, "no segmenter loaded")
        try:
            c = category_index(category)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        points = points_of(body, seg_points)
        one_hot = torch.zeros(1, len(CATEGORY_NAMES))
        one_hot[0, c] = 1.0
        with torch.no_grad():
            logits = seg.model(torch.from_numpy(points)[None], one_hot)[0]
        parts = part_range(c)
        labels = logits[:, parts.start : parts.stop].argmax(dim=1)
        return {"point_labels": labels.tolist(), "points": points.tolist(), "category": CATEGORY_NAMES[c]}

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--classifier", type=Path, required=True)
    parser.add_argument("--segmenter", type=Path, default=None)
    parser.add_argument("--num-points", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args(argv)
    app = create_app(args.classifier, args.segmenter, args.threads, args.num_points)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
