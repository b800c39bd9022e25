"""The app as a whole: the torch wall, the OpenAPI document, the web viewer mount."""

from __future__ import annotations

import subprocess
import sys

from fastapi.testclient import TestClient

from tests.server.helpers import REPO_ROOT


def test_server_never_imports_torch() -> None:
    code = (
        "import sys, server.app, server.cli, server.backends.onnxruntime, server.backends.triton, "
        "server.services.parse_worker; "
        "bad = [m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'crosspoint.models', "
        "'crosspoint.train'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v1/embed", "/v1/classify", "/v1/segment"):
        for form in (path, f"{path}:batch"):
            assert "post" in paths[form], form
            content = paths[form]["post"]["requestBody"]["content"]
            assert {"application/json", "multipart/form-data"} <= set(content)
    assert "application/x-npy" in paths["/v1/embed"]["post"]["requestBody"]["content"]
    params = {p["name"] for p in paths["/v1/segment"]["post"]["parameters"]}
    assert {"up_axis", "num_points", "seed", "category", "include_vertex_labels", "format"} <= params
    assert {p["name"] for p in paths["/v1/classify"]["post"]["parameters"]} >= {"top_k"}
    assert {"/v1/models", "/healthz", "/readyz", "/metrics"} <= set(paths)
    assert "ErrorResponse" in spec["components"]["schemas"]


def test_viewer_is_served(client: TestClient) -> None:
    if not (REPO_ROOT / "server" / "static" / "index.html").is_file():
        return
    page = client.get("/")
    assert page.status_code == 200 and "CrossPoint" in page.text
    assert client.get("/static/viewer.js").status_code == 200
