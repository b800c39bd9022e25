"""The gateway's side of export/ (repository, validate, configs, contract, metadata) never imports torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_importing_the_serving_side_does_not_import_torch() -> None:
    _run(
        "import sys, export, export.repository, export.validate, export.triton_config, export.contract, "
        "export.metadata\nassert 'torch' not in sys.modules and 'onnx' not in sys.modules, sorted(sys.modules)"
    )


def test_validating_and_reading_a_repository_does_not_import_torch(repository_copy: Path) -> None:
    _run(
        f"import sys\nfrom export import validate_repository\nfrom export.repository import read_model_metadata, "
        f"latest_version\nroot = {str(repository_copy)!r}\nassert validate_repository(root) == []\n"
        f"assert latest_version(root, 'embed') == 1\nassert read_model_metadata(root, 'segment').k == 10\n"
        f"assert 'torch' not in sys.modules"
    )
