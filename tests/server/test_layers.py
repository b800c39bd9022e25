"""The gateway's layers, read from the source: services know no HTTP, backends do not call back into
services, and the error map imports no web framework (so services and backends may raise its errors)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"
WEB = ("fastapi", "starlette")


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (lazy imports inside functions included)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def offenders(files: list[Path], banned: tuple[str, ...]) -> dict[str, list[str]]:
    """File name -> the imports of `banned` packages or modules (and anything below them) it makes."""
    found = {}
    for path in files:
        bad = sorted(
            m for m in imported_modules(path) if any(m == b or m.startswith(f"{b}.") for b in banned)
        )
        if bad:
            found[path.name] = bad
    return found


def test_the_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import fastapi.responses\nfrom starlette import types\ndef f():\n    from a.b import c\n"
    )
    assert {"fastapi.responses", "starlette", "starlette.types", "a.b", "a.b.c"} <= imported_modules(source)
    assert offenders([source], WEB) == {"sample.py": ["fastapi.responses", "starlette", "starlette.types"]}
    assert offenders([source], ("a",)) == {"sample.py": ["a.b", "a.b.c"]}
    assert offenders([source], ("a.b.c",)) == {"sample.py": ["a.b.c"]}


@pytest.mark.parametrize(
    ("files", "banned"),
    [
        (sorted((SERVER / "services").glob("*.py")), WEB),
        (sorted((SERVER / "backends").glob("*.py")), (*WEB, "server.services", "server.api")),
        ([SERVER / "errors.py"], WEB),
    ],
    ids=["services-know-no-http", "backends-call-no-service", "errors-without-web-framework"],
)
def test_layers(files: list[Path], banned: tuple[str, ...]) -> None:
    assert files
    assert offenders(files, banned) == {}
