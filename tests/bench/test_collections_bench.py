"""bench/collections.py end to end at a tiny size (a smoke test: no timing is asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.collections import main


def test_collections_bench_writes_its_table(tmp_path: Path) -> None:
    main(["--sizes", "300", "--queries", "20", "--out", str(tmp_path / "collections")])
    doc = json.loads((tmp_path / "collections.json").read_text())
    (row,) = doc["rows"]
    assert row["items"] == 300 and row["recall_at_10"] > 0.9
    assert row["search_p50_ms"] > 0 and row["rebuild_from_rows_s"] > 0
    assert "| 300 |" in (tmp_path / "collections.md").read_text()
