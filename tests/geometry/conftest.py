"""Fixtures for the geometry tests; builders live in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.geometry.helpers import require_meshes


@pytest.fixture
def meshes_dir() -> Path:
    return require_meshes()
