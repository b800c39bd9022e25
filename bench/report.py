"""A benchmark's output: markdown (tables + notes) and JSON (every number), written side by side.

`Report(name, argv)` records the machine and the load average when it is made; `note` and `table`
add sections (printed as they come); `write(out_dir)` writes `<out>/<name>.md` and `.json` with the
load average at the end (default out: bench/results/).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.measure import REPO_ROOT, load_average, machine

RESULTS = REPO_ROOT / "bench" / "results"
Column = tuple[str, str, str]  # (key in the row, header, format)


def _cell(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    lines = ["| " + " | ".join(header for _, header, _ in columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key), fmt) for key, _, fmt in columns) + " |")
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _jsonable(value.item())
    if isinstance(value, Path):
        return str(value)
    return value


class Report:
    def __init__(self, name: str, argv: Sequence[str] | None = None) -> None:
        self.name = name
        args = list(sys.argv[1:] if argv is None else argv)
        self.command = f"python -m bench.{name}" + (" " + shlex.join(args) if args else "")
        self.started = dt.datetime.now(dt.UTC)
        self.load_start = load_average()
        self.sections: list[str] = []
        self.data: dict[str, Any] = {"tables": {}}

    def note(self, text: str) -> None:
        self.sections.append(text)
        print(text, flush=True)

    def table(self, key: str, title: str, rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> None:
        text = f"**{title}**\n\n{markdown_table(rows, columns)}"
        self.sections.append(text)
        self.data["tables"][key] = list(rows)
        print("\n" + text + "\n", flush=True)

    def write(self, out_dir: Path | None = None) -> tuple[Path, Path]:
        out = Path(out_dir) if out_dir is not None else RESULTS
        out.mkdir(parents=True, exist_ok=True)
        finished = dt.datetime.now(dt.UTC)
        info = machine()
        load_end = load_average()
        header = [
            f"# bench/{self.name}",
            "",
            f"`{self.command}` — {self.started:%Y-%m-%d %H:%M} UTC, "
            f"{(finished - self.started).total_seconds():.0f} s, commit {info['commit']}",
            "",
            f"Machine: {info['cores']} cores ({info['cpu']}), no GPU; shared with other work. "
            f"Load average (1/5/15 min) at start {self.load_start}, at end {load_end}.",
        ]
        md_path, json_path = out / f"{self.name}.md", out / f"{self.name}.json"
        md_path.write_text("\n".join(header) + "\n\n" + "\n\n".join(self.sections) + "\n")
        document = {
            "name": self.name,
            "command": self.command,
            "started": self.started.isoformat(timespec="seconds"),
            "seconds": round((finished - self.started).total_seconds(), 1),
            "machine": info,
            "load_average": {"start": self.load_start, "end": load_end},
            **self.data,
        }
        json_path.write_text(json.dumps(_jsonable(document), indent=2) + "\n")
        print(f"wrote {md_path} and {json_path}", flush=True)
        return md_path, json_path
