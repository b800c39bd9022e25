"""CollectionStore on its own: SQLite is the truth, the usearch index is verified or rebuilt on open."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from server.services import fewshot
from server.services.collection_store import CollectionStore, NewItem, StoreError

DIM = 32


def items(count: int, seed: int = 0, prefix: str = "i") -> list[NewItem]:
    rng = np.random.default_rng(seed)
    return [
        NewItem(f"{prefix}{i}", rng.standard_normal(DIM).astype(np.float32), label=f"c{i % 3}")
        for i in range(count)
    ]


def open_store(path: Path) -> CollectionStore:
    return CollectionStore(path, snapshot_every=1_000_000)


def nearest(store: CollectionStore, name: str, vector: np.ndarray) -> str:
    return store.search(name, vector, 1)[0].id


def test_snapshot_is_used_when_it_matches_and_rebuilt_when_stale(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.create("c", "", "embed", "1", DIM)
    first = items(20)
    store.upsert("c", first, max_items=100)
    store.close()
    snapshots = list((tmp_path / "index").glob("*.usearch"))
    assert len(snapshots) == 1  # written on close, named by the generation it covers

    store = open_store(tmp_path)
    assert all(nearest(store, "c", it.embedding) == it.id for it in first)
    # a "crash": more rows committed, no snapshot written (the object is dropped without close)
    more = items(10, seed=1, prefix="j")
    store.upsert("c", more, max_items=100)
    store.remove("c", "i0")
    del store

    store = open_store(tmp_path)
    rebuilt = store._rebuild
    store._rebuild = lambda *a: pytest.fail("the journal after the snapshot should have been replayed")  # type: ignore[method-assign]
    assert store.count("c") == 29
    assert nearest(store, "c", more[0].embedding) == "j0"  # opens: snapshot + journal
    store._rebuild = rebuilt  # type: ignore[method-assign]
    assert all(nearest(store, "c", it.embedding) == it.id for it in first[1:] + more)
    assert "i0" not in {m.id for m in store.search("c", first[0].embedding, 29)}
    store.close()


def test_reembed_crash_before_its_snapshot_rebuilds(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.create("c", "", "embed", "1", DIM)
    old = items(8)
    store.upsert("c", old, max_items=100)
    store.close()
    store = open_store(tmp_path)
    rows = list(store.iter_points("c"))
    moved = {key: -store.get("c", item_id).embedding for key, item_id, _ in rows}
    store._snapshot = lambda *a: None  # type: ignore[method-assign]  # killed right after the commit
    store.replace_embeddings("c", "2", moved)
    del store
    store = open_store(tmp_path)
    assert store.info("c").version == "2"
    assert all(
        nearest(store, "c", -it.embedding) == it.id for it in old
    )  # the new vectors, not the snapshot's
    store.close()


def test_torn_snapshot_is_rebuilt_from_the_rows(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.create("c", "", "embed", "1", DIM)
    stored = items(15)
    store.upsert("c", stored, max_items=100)
    store.close()
    (snapshot,) = (tmp_path / "index").glob("*.usearch")
    snapshot.write_bytes(snapshot.read_bytes()[:100])  # torn write
    store = open_store(tmp_path)
    assert store.count("c") == 15
    assert all(nearest(store, "c", it.embedding) == it.id for it in stored)
    store.close()


def test_replace_limits_and_errors(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.create("c", "d", "embed", "1", DIM)
    with pytest.raises(StoreError) as exc:
        store.create("c", "", "embed", "1", DIM)
    assert exc.value.code == "collection_exists"
    assert store.upsert("c", items(3), max_items=3) == [True, True, True]
    replaced = NewItem("i1", np.ones(DIM, dtype=np.float32), label="new")
    assert store.upsert("c", [replaced], max_items=3) == [False]
    assert store.get("c", "i1").label == "new" and store.count("c") == 3
    assert nearest(store, "c", np.ones(DIM, dtype=np.float32)) == "i1"
    with pytest.raises(StoreError) as exc:
        store.upsert("c", items(1, prefix="x"), max_items=3)
    assert exc.value.code == "collection_full"
    with pytest.raises(StoreError) as exc:
        store.get("nope", "x")
    assert exc.value.code == "collection_not_found"
    assert store.info("c").labels == {"c0": 1, "c2": 1, "new": 1}
    # label filter is exact among that label
    assert [m.id for m in store.search_label("c", np.ones(DIM, dtype=np.float32), 5, "c0")] == ["i0"]
    store.delete("c")
    assert store.names() == [] and not list((tmp_path / "index").glob("*"))
    store.close()


def test_two_stores_on_one_directory_see_each_others_writes(tmp_path: Path) -> None:
    """Two gateway worker processes share the data dir: a changed generation reloads the index."""
    a, b = open_store(tmp_path), open_store(tmp_path)
    a.create("c", "", "embed", "1", DIM)
    first = items(5)
    a.upsert("c", first, max_items=100)
    assert nearest(b, "c", first[2].embedding) == "i2"
    later = items(5, seed=3, prefix="k")
    b.upsert("c", later, max_items=100)
    assert nearest(a, "c", later[4].embedding) == "k4"
    a.close()
    b.close()


def test_fewshot_methods_separate_clusters() -> None:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((4, DIM)) * 3
    labels = [f"c{i}" for i in range(4) for _ in range(5)]
    x = np.repeat(centers, 5, axis=0) + rng.standard_normal((20, DIM))
    queries = centers + 0.5 * rng.standard_normal((4, DIM))
    for method in fewshot.METHODS:
        model = fewshot.fit(method, labels, x)
        p = model.probabilities(queries)
        assert p.shape == (4, 4) and np.allclose(p.sum(axis=1), 1)
        assert [model.classes[i] for i in p.argmax(axis=1)] == ["c0", "c1", "c2", "c3"], method
    single = fewshot.fit("logistic", ["only"] * 3, x[:3])
    assert single.probabilities(queries).tolist() == [[1.0]] * 4
