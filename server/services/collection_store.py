"""Persistent collections of embedded shapes: SQLite is the source of truth, usearch the search index.

Layout under the data directory (`CROSSPOINT_DATA_DIR`):

    collections.sqlite3            one row per collection, one per item (embedding float32, prepared
                                   points float16, label, metadata JSON), WAL + synchronous=FULL
    index/<cid>-<generation>.usearch   HNSW snapshot (f16, cosine) of one collection

Every mutation is one SQLite transaction that also bumps the collection's `generation` and appends
its index operations (add key / remove key) to a journal; it is committed (fsynced) before the caller
acknowledges it. The HNSW index is a cache of the rows: a snapshot is written (temp file + fsync +
rename) on close and every `snapshot_every` mutations, named by the generation it covers, and the
journal up to that generation is then dropped. On open, the snapshot is loaded and the journal after
it replayed (a crash costs the mutations since the last snapshot, not a rebuild); if the result does
not match the rows in size (a torn or missing file), the index is rebuilt from the rows. So a `kill -9` loses at most the mutations not yet committed, and no collection is ever left
unreadable. The store knows nothing of HTTP or models: the service embeds, the store keeps.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from usearch.index import Index

logger = logging.getLogger(__name__)

DB_FILE = "collections.sqlite3"
INDEX_DIR = "index"
SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT UNIQUE NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    dim INTEGER NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    key INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    item_id TEXT NOT NULL,
    label TEXT,
    metadata TEXT,
    embedding BLOB NOT NULL,
    points BLOB,
    num_points INTEGER,
    receipt TEXT,
    updated_at REAL NOT NULL,
    UNIQUE (collection_id, item_id)
);
CREATE INDEX IF NOT EXISTS items_label ON items (collection_id, label);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    op TEXT NOT NULL,
    key INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_collection ON journal (collection_id, generation);
"""


class StoreError(Exception):
    """A store operation that cannot be done; `code` is stable (the service maps it to HTTP)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    description: str
    model: str
    version: str
    dim: int
    count: int
    labels: dict[str, int]
    generation: int
    created_at: float


@dataclass(frozen=True)
class ItemRecord:
    id: str
    label: str | None
    metadata: dict[str, Any] | None
    embedding: np.ndarray  # float32 [dim]
    points: np.ndarray | None  # float16 [N, 3], model frame; None for items added as embeddings
    receipt: dict[str, Any] | None
    updated_at: float


@dataclass(frozen=True)
class NewItem:
    id: str
    embedding: np.ndarray
    label: str | None = None
    metadata: dict[str, Any] | None = None
    points: np.ndarray | None = None
    receipt: dict[str, Any] | None = None


@dataclass(frozen=True)
class Match:
    id: str
    score: float  # cosine similarity
    label: str | None
    metadata: dict[str, Any] | None


@dataclass
class _Live:
    """A collection's in-memory HNSW index and the generation it reflects."""

    cid: int
    index: Index
    generation: int
    saved_generation: int
    version: str = ""
    mutations: int = 0
    busy: str | None = None  # an operation (reembed) that owns the collection for now
    cache: dict[str, Any] = field(default_factory=dict)  # generation-keyed derived data (class means)


def new_index(
    dim: int, connectivity: int = 16, expansion_add: int = 128, expansion_search: int = 64
) -> Index:
    # f16 halves the memory of f32 at no measurable recall cost on these embeddings (bench/collections.py)
    return Index(
        ndim=dim,
        metric="cos",
        dtype="f16",
        connectivity=connectivity,
        expansion_add=expansion_add,
        expansion_search=expansion_search,
    )


def _normalized(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CollectionStore:
    """Thread-safe: every method takes the store's lock (SQLite commits and index updates are short)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        snapshot_every: int = 1000,
        connectivity: int = 16,
        expansion_add: int = 128,
        expansion_search: int = 64,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.index_dir = self.data_dir / INDEX_DIR
        self.index_dir.mkdir(parents=True, exist_ok=True)
        self.snapshot_every = snapshot_every
        self._hnsw = (connectivity, expansion_add, expansion_search)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.data_dir / DB_FILE, check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk when it returns, so an acknowledged add survives kill -9 and power loss.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._live: dict[str, _Live] = {}

    # --- lifecycle ---

    def close(self) -> None:
        with self._lock:
            for name, live in self._live.items():
                if live.generation != live.saved_generation:
                    self._snapshot(name, live)
            self._live.clear()
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- collections ---

    def create(self, name: str, description: str, model: str, version: str, dim: int) -> CollectionInfo:
        with self._lock:
            try:
                with self._transaction() as db:
                    db.execute(
                        "INSERT INTO collections (name, description, model, version, dim, created_at) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (name, description, model, version, dim, time.time()),
                    )
            except sqlite3.IntegrityError:
                raise StoreError("collection_exists", f"collection '{name}' already exists") from None
            return self.info(name)

    def names(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT name FROM collections ORDER BY name")]

    def _row(self, name: str) -> tuple[int, str, str, str, int, int, float]:
        row = self._db.execute(
            "SELECT id, description, model, version, dim, generation, created_at FROM collections WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            raise StoreError("collection_not_found", f"no collection named '{name}'")
        return row

    def info(self, name: str) -> CollectionInfo:
        with self._lock:
            cid, description, model, version, dim, generation, created = self._row(name)
            labels = {
                str(label): int(count)
                for label, count in self._db.execute(
                    "SELECT label, count(*) FROM items WHERE collection_id = ? AND label IS NOT NULL "
                    "GROUP BY label ORDER BY label",
                    (cid,),
                )
            }
            (count,) = self._db.execute(
                "SELECT count(*) FROM items WHERE collection_id = ?", (cid,)
            ).fetchone()
            return CollectionInfo(name, description, model, version, dim, count, labels, generation, created)

    def delete(self, name: str) -> None:
        with self._lock:
            cid = self._row(name)[0]
            with self._transaction() as db:
                db.execute("DELETE FROM items WHERE collection_id = ?", (cid,))
                db.execute("DELETE FROM collections WHERE id = ?", (cid,))
            self._live.pop(name, None)
            with self._transaction() as db:
                db.execute("DELETE FROM journal WHERE collection_id = ?", (cid,))
            for path in self.index_dir.glob(f"{cid}-*.usearch"):
                path.unlink(missing_ok=True)

    def count(self, name: str) -> int:
        with self._lock:
            cid = self._row(name)[0]
            return int(
                self._db.execute("SELECT count(*) FROM items WHERE collection_id = ?", (cid,)).fetchone()[0]
            )

    def set_busy(self, name: str, reason: str | None) -> None:
        """Mark a collection as owned by a long operation (adds are refused meanwhile)."""
        with self._lock:
            live = self._open(name)
            if reason is not None and live.busy is not None:
                raise StoreError("collection_busy", f"collection '{name}' is busy ({live.busy})")
            live.busy = reason

    # --- the index, opened lazily and verified against the rows ---

    def _open(self, name: str) -> _Live:
        cid, _, _, version, dim, generation, _ = self._row(name)
        live = self._live.get(name)
        if live is not None and live.cid == cid and live.generation == generation:
            return live
        # Not open yet, or another process (a second uvicorn worker) changed the rows: load or rebuild.
        busy = live.busy if live is not None and live.cid == cid else None
        index = self._load_snapshot(cid, dim) or self._rebuild(cid, dim)
        live = _Live(cid=cid, index=index, generation=generation, saved_generation=generation, busy=busy)
        live.version = version
        self._live[name] = live
        return live

    def _snapshot_path(self, cid: int, generation: int) -> Path:
        return self.index_dir / f"{cid}-{generation}.usearch"

    def _load_snapshot(self, cid: int, dim: int) -> Index | None:
        """The newest snapshot with the journal after it replayed, or None when that does not match."""
        found = sorted(
            (int(p.stem.split("-")[1]), p)
            for p in self.index_dir.glob(f"{cid}-*.usearch")
            if p.stem.count("-") == 1
        )
        if not found:
            return None
        saved, path = found[-1]
        try:
            index = Index.restore(str(path), view=False)
        except Exception as exc:  # a torn or foreign file: the rows are the truth
            logger.warning("index snapshot %s unreadable (%s); rebuilding from the rows", path, exc)
            return None
        if index is None or index.ndim != dim:
            return None
        replayed = 0
        for op, key in self._db.execute(
            "SELECT op, key FROM journal WHERE collection_id = ? AND generation > ? ORDER BY seq",
            (cid, saved),
        ).fetchall():
            replayed += 1
            if op == "reset":
                return None
            if op == "remove":
                if key in index:
                    index.remove(key)
                continue
            row = self._db.execute("SELECT embedding FROM items WHERE key = ?", (key,)).fetchone()
            if row is not None and key not in index:  # None: removed again later in the journal
                index.add(key, _normalized(np.frombuffer(row[0], dtype=np.float32)[None])[0])
        (count,) = self._db.execute("SELECT count(*) FROM items WHERE collection_id = ?", (cid,)).fetchone()
        if len(index) != count:
            logger.warning("index snapshot %s + journal do not match the rows; rebuilding", path)
            return None
        if replayed:
            logger.info("collection %d: snapshot of generation %d + %d journal entries", cid, saved, replayed)
        return index

    def _rebuild(self, cid: int, dim: int) -> Index:
        index = new_index(dim, *self._hnsw)
        keys: list[int] = []
        vectors: list[np.ndarray] = []
        for key, blob in self._db.execute("SELECT key, embedding FROM items WHERE collection_id = ?", (cid,)):
            keys.append(key)
            vectors.append(np.frombuffer(blob, dtype=np.float32))
            if len(keys) == 4096:
                index.add(np.array(keys, dtype=np.uint64), _normalized(np.stack(vectors)))
                keys, vectors = [], []
        if keys:
            index.add(np.array(keys, dtype=np.uint64), _normalized(np.stack(vectors)))
        return index

    def _snapshot(self, name: str, live: _Live) -> None:
        final = self._snapshot_path(live.cid, live.generation)
        temp = final.with_suffix(".tmp")
        live.index.save(str(temp))
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, final)
        _fsync_dir(self.index_dir)
        # The snapshot is durable: the journal up to it and older snapshots are no longer needed.
        with self._transaction() as db:
            db.execute(
                "DELETE FROM journal WHERE collection_id = ? AND generation <= ?", (live.cid, live.generation)
            )
        for old in self.index_dir.glob(f"{live.cid}-*.usearch"):
            if old != final:
                old.unlink(missing_ok=True)
        live.saved_generation = live.generation
        live.mutations = 0

    def _bump(
        self,
        name: str,
        live: _Live,
        db: sqlite3.Connection,
        mutations: int,
        removed: Sequence[int] = (),
        added: Sequence[int] = (),
        reset: bool = False,
    ) -> None:
        db.execute("UPDATE collections SET generation = generation + 1 WHERE id = ?", (live.cid,))
        db.executemany(
            "INSERT INTO journal (collection_id, generation, op, key) VALUES (?, ?, ?, ?)",
            [(live.cid, live.generation + 1, "remove", k) for k in removed]
            + [(live.cid, live.generation + 1, "add", k) for k in added]
            + ([(live.cid, live.generation + 1, "reset", 0)] if reset else []),
        )
        live.generation += 1
        live.mutations += mutations
        live.cache.clear()

    def _after_commit(self, name: str, live: _Live) -> None:
        if live.mutations >= self.snapshot_every:
            self._snapshot(name, live)

    # --- items ---

    def upsert(self, name: str, items: list[NewItem], max_items: int) -> list[bool]:
        """Add or replace items in one transaction; returns, per item, whether it was new."""
        with self._lock:
            live = self._open(name)
            if live.busy is not None:
                raise StoreError(
                    "collection_busy", f"collection '{name}' is busy ({live.busy}); try again later"
                )
            dim = int(live.index.ndim)
            for item in items:
                if item.embedding.shape != (dim,):
                    raise StoreError("invalid_embedding", f"an embedding must have {dim} values")
            created: list[bool] = []
            removed: list[int] = []
            added: list[tuple[int, np.ndarray]] = []
            now = time.time()
            with self._transaction() as db:
                (count,) = db.execute(
                    "SELECT count(*) FROM items WHERE collection_id = ?", (live.cid,)
                ).fetchone()
                for item in items:
                    old = db.execute(
                        "SELECT key FROM items WHERE collection_id = ? AND item_id = ?", (live.cid, item.id)
                    ).fetchone()
                    if old is not None:
                        db.execute("DELETE FROM items WHERE key = ?", (old[0],))
                        removed.append(int(old[0]))
                    elif count >= max_items:
                        raise StoreError(
                            "collection_full", f"collection '{name}' holds its maximum of {max_items} items"
                        )
                    else:
                        count += 1
                    points = item.points.astype(np.float16) if item.points is not None else None
                    cursor = db.execute(
                        "INSERT INTO items (collection_id, item_id, label, metadata, embedding, points, "
                        "num_points, receipt, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            live.cid,
                            item.id,
                            item.label,
                            json.dumps(item.metadata) if item.metadata is not None else None,
                            np.ascontiguousarray(item.embedding, dtype=np.float32).tobytes(),
                            points.tobytes() if points is not None else None,
                            len(points) if points is not None else None,
                            json.dumps(item.receipt) if item.receipt is not None else None,
                            now,
                        ),
                    )
                    added.append((int(cursor.lastrowid or 0), item.embedding))
                    created.append(old is None)
                self._bump(name, live, db, len(items), removed, [k for k, _ in added])
            # Committed: the index follows (a crash from here on is repaired by the rebuild on open).
            if removed:
                live.index.remove(np.array(removed, dtype=np.uint64))
            live.index.add(
                np.array([k for k, _ in added], dtype=np.uint64),
                _normalized(np.stack([e for _, e in added])),
            )
            self._after_commit(name, live)
            return created

    def get(self, name: str, item_id: str) -> ItemRecord:
        with self._lock:
            cid = self._row(name)[0]
            row = self._db.execute(
                "SELECT item_id, label, metadata, embedding, points, receipt, updated_at FROM items "
                "WHERE collection_id = ? AND item_id = ?",
                (cid, item_id),
            ).fetchone()
            if row is None:
                raise StoreError("item_not_found", f"collection '{name}' has no item '{item_id}'")
            return _record(row)

    def remove(self, name: str, item_id: str) -> None:
        with self._lock:
            live = self._open(name)
            if live.busy is not None:
                raise StoreError(
                    "collection_busy", f"collection '{name}' is busy ({live.busy}); try again later"
                )
            with self._transaction() as db:
                row = db.execute(
                    "SELECT key FROM items WHERE collection_id = ? AND item_id = ?", (live.cid, item_id)
                ).fetchone()
                if row is None:
                    raise StoreError("item_not_found", f"collection '{name}' has no item '{item_id}'")
                db.execute("DELETE FROM items WHERE key = ?", (row[0],))
                self._bump(name, live, db, 1, removed=[int(row[0])])
            live.index.remove(int(row[0]))
            self._after_commit(name, live)

    def iter_points(self, name: str) -> Iterator[tuple[int, str, np.ndarray | None]]:
        """(key, id, float16 points or None) of every item, for re-embedding (read in one snapshot)."""
        with self._lock:
            cid = self._row(name)[0]
            rows = self._db.execute(
                "SELECT key, item_id, points, num_points FROM items WHERE collection_id = ? ORDER BY key",
                (cid,),
            ).fetchall()
        for key, item_id, blob, n in rows:
            yield (
                key,
                item_id,
                (np.frombuffer(blob, dtype=np.float16).reshape(n, 3) if blob is not None else None),
            )

    def replace_embeddings(self, name: str, version: str, embeddings: dict[int, np.ndarray]) -> None:
        """Swap every item's embedding and the pinned version in one transaction (reembed)."""
        with self._lock:
            live = self._open(name)
            with self._transaction() as db:
                keys = {
                    k for (k,) in db.execute("SELECT key FROM items WHERE collection_id = ?", (live.cid,))
                }
                if keys != set(embeddings):
                    raise StoreError("collection_changed", f"collection '{name}' changed while re-embedding")
                db.executemany(
                    "UPDATE items SET embedding = ? WHERE key = ?",
                    [(np.ascontiguousarray(e, dtype=np.float32).tobytes(), k) for k, e in embeddings.items()],
                )
                db.execute("UPDATE collections SET version = ? WHERE id = ?", (version, live.cid))
                # every vector changed: a crash before the new snapshot must rebuild, not replay
                self._bump(name, live, db, len(embeddings), reset=True)
            live.index = self._rebuild(live.cid, int(live.index.ndim))
            live.version = version
            self._snapshot(name, live)

    # --- reading for search and classification ---

    def search(self, name: str, query: np.ndarray, k: int, exclude: str | None = None) -> list[Match]:
        with self._lock:
            live = self._open(name)
            size = len(live.index)
            if size == 0:
                return []
            want = min(size, k + (1 if exclude is not None else 0))
            found = live.index.search(_normalized(query[None])[0], want)
            keys = [int(x) for x in np.atleast_1d(found.keys)]
            distances = [float(x) for x in np.atleast_1d(found.distances)]
            return self._matches(live.cid, keys, distances, k, exclude)

    def search_label(
        self, name: str, query: np.ndarray, k: int, label: str, exclude: str | None = None
    ) -> list[Match]:
        """Exact search among the items with one label (HNSW cannot filter; a label's rows are few)."""
        with self._lock:
            live = self._open(name)
            keys, vectors = self._labelled(live.cid, label)
            if not keys:
                return []
            scores = _normalized(vectors) @ _normalized(query[None])[0]
            order = np.argsort(-scores, kind="stable")[: k + 1]
            return self._matches(
                live.cid, [keys[i] for i in order], [1.0 - float(scores[i]) for i in order], k, exclude
            )

    def _labelled(self, cid: int, label: str | None) -> tuple[list[int], np.ndarray]:
        sql = "SELECT key, embedding FROM items WHERE collection_id = ? AND label " + (
            "= ?" if label is not None else "IS NOT NULL"
        )
        args: tuple[Any, ...] = (cid, label) if label is not None else (cid,)
        rows = self._db.execute(sql + " ORDER BY key", args).fetchall()
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [r[0] for r in rows], np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])

    def _matches(
        self, cid: int, keys: list[int], distances: list[float], k: int, exclude: str | None
    ) -> list[Match]:
        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        rows = {
            r[0]: r[1:]
            for r in self._db.execute(
                # by primary key alone: with collection_id in the WHERE, SQLite scans that collection's rows
                f"SELECT key, item_id, label, metadata FROM items WHERE key IN ({marks})",
                keys,
            )
        }
        matches = []
        for key, distance in zip(keys, distances, strict=True):
            row = rows.get(key)
            if row is None or row[0] == exclude:
                continue
            matches.append(
                Match(
                    id=row[0],
                    score=1.0 - distance,
                    label=row[1],
                    metadata=json.loads(row[2]) if row[2] is not None else None,
                )
            )
        return matches[:k]

    def labelled_embeddings(self, name: str) -> tuple[int, list[str], np.ndarray]:
        """(generation, labels, float32 embeddings) of every labelled item, for few-shot classification."""
        with self._lock:
            live = self._open(name)
            rows = self._db.execute(
                "SELECT label, embedding FROM items WHERE collection_id = ? AND label IS NOT NULL ORDER BY key",
                (live.cid,),
            ).fetchall()
            vectors = (
                np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
                if rows
                else np.zeros((0, int(live.index.ndim)), dtype=np.float32)
            )
            return live.generation, [r[0] for r in rows], vectors

    def cached(self, name: str, key: str) -> Any:
        with self._lock:
            return self._open(name).cache.get(key)

    def cache(self, name: str, generation: int, key: str, value: Any) -> None:
        with self._lock:
            live = self._open(name)
            if live.generation == generation:
                live.cache[key] = value

    def memory_bytes(self, name: str) -> int:
        with self._lock:
            return int(self._open(name).index.memory_usage)


def _record(row: tuple[Any, ...]) -> ItemRecord:
    item_id, label, metadata, embedding, points, receipt, updated = row
    return ItemRecord(
        id=item_id,
        label=label,
        metadata=json.loads(metadata) if metadata is not None else None,
        embedding=np.frombuffer(embedding, dtype=np.float32).copy(),
        points=np.frombuffer(points, dtype=np.float16).reshape(-1, 3).copy() if points is not None else None,
        receipt=json.loads(receipt) if receipt is not None else None,
        updated_at=updated,
    )
