"""Settings from CROSSPOINT_* environment variables, with checked values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from server.core.config import REPO_ROOT, Settings


def test_defaults_serve_the_checkout_repository_on_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("CROSSPOINT_BACKEND", "CROSSPOINT_MODEL_REPOSITORY", "CROSSPOINT_API_KEY"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings()
    assert settings.backend == "onnxruntime" and settings.model_repository == REPO_ROOT / "model_repository"
    assert settings.max_body_bytes == 32 * 1024 * 1024 and settings.api_key is None


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CROSSPOINT_BACKEND", "triton")
    monkeypatch.setenv("CROSSPOINT_TRITON_URL", "triton:8001")
    monkeypatch.setenv("CROSSPOINT_MODEL_REPOSITORY", str(tmp_path))
    monkeypatch.setenv("CROSSPOINT_MAX_BATCH_SIZE", "4")
    monkeypatch.setenv("CROSSPOINT_API_KEY", "hunter2-key")
    monkeypatch.setenv("CROSSPOINT_MODELS", '["embed"]')
    settings = Settings()
    assert (settings.backend, settings.triton_url, settings.model_repository) == (
        "triton",
        "triton:8001",
        tmp_path,
    )
    assert settings.max_batch_size == 4 and settings.models == ["embed"]
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "hunter2-key"
    assert "hunter2" not in repr(settings)


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(backend="tensorflow")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Settings(max_batch_size=0)
    with pytest.raises(ValidationError):
        Settings(models=["embed", "detect"])
    with pytest.raises(ValidationError):
        Settings(min_num_points=100, max_num_points=10)
