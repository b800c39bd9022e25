"""`Accept: application/x-npy` on /v1/embed: the embedding as a float32 `.npy` instead of 2048 floats
of JSON text (~8 KB binary against ~40 KB of JSON, and no float formatting or parsing).

The rest of the answer travels in headers: `X-CrossPoint-Model`, `X-CrossPoint-Version`, and
`X-CrossPoint-OOD-Score` / `X-CrossPoint-In-Distribution` when the version is calibrated. JSON stays
the default; the binary answer is sent only when the client ranks it above JSON.
"""

from __future__ import annotations

import io

import numpy as np
from fastapi.responses import Response

from server.schemas import EmbedResponse

NPY = "application/x-npy"
_JSON_RANGES = ("application/json", "application/*", "*/*")


def _quality(accept: str) -> dict[str, float]:
    """Media range -> q of an Accept header (malformed q values count as 0)."""
    ranks: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if not media:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranks[media.lower()] = max(q, ranks.get(media.lower(), 0.0))
    return ranks


def wants_npy(accept: str | None) -> bool:
    """True when `Accept` ranks application/x-npy above JSON (a tie keeps JSON)."""
    ranks = _quality(accept or "")
    npy = ranks.get(NPY, 0.0)
    return npy > 0 and npy > max((ranks.get(media, 0.0) for media in _JSON_RANGES), default=0.0)


def npy_response(answer: EmbedResponse) -> Response:
    """The embedding of `answer` as one float32 `.npy` array of shape [D]."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(answer.embedding, dtype=np.float32), allow_pickle=False)
    headers = {"X-CrossPoint-Model": answer.model, "X-CrossPoint-Version": str(answer.version)}
    if answer.ood_score is not None:
        headers["X-CrossPoint-OOD-Score"] = repr(float(answer.ood_score))
    if answer.in_distribution is not None:
        headers["X-CrossPoint-In-Distribution"] = "true" if answer.in_distribution else "false"
    return Response(buffer.getvalue(), media_type=NPY, headers=headers)
