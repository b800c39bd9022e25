"""The web viewer end to end: the real gateway under uvicorn, the page in headless Debian Chromium.

    .venv/bin/python -m pytest -q tests/server/test_viewer_e2e.py

Needs `chromium` (Debian package; the Makefile's APT_PKGS installs it) and the `playwright` Python
package (the `dev` extra); Playwright's own browser download is never used. Serves the committed
model_repository/ when it holds all three models, else the tiny exported one of tests/server/conftest.py.
Writes the page's screenshot to artifacts/viewer_e2e.png.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from server.app import create_app
from tests.server.helpers import MESHES, REPO_ROOT, gateway_settings, live_server, require

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

CHROMIUM = os.environ.get("CROSSPOINT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
# SwiftShader gives WebGL on the CPU; newer Chromium only falls back to it when told it may.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "artifacts"
SAMPLES = REPO_ROOT / "server" / "static" / "samples"
BACKGROUND = np.array([0x1D, 0x20, 0x26])
MAX_BODY_BYTES = 1024 * 1024  # small, so the "too large" message can be shown with a small file
RESULT_TIMEOUT_MS = 90_000  # the tiny test models answer in about a second; trained ones take longer

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason=f"no Chromium at {CHROMIUM}: apt-get install chromium (make system-deps) or set CROSSPOINT_CHROMIUM",
)


def _committed_repository() -> Path | None:
    root = REPO_ROOT / "model_repository"
    complete = all(any(root.glob(f"{name}/[0-9]*/model.onnx")) for name in ("embed", "classify", "segment"))
    return root if complete else None


@pytest.fixture(scope="module")
def viewer_url(request: pytest.FixtureRequest) -> Iterator[str]:
    repository = _committed_repository() or request.getfixturevalue("repository")
    settings = gateway_settings(repository, max_body_bytes=MAX_BODY_BYTES)
    with live_server(create_app(settings), timeout=120) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, viewer_url: str) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1400, "height": 860})
    console_errors: list[str] = []
    page.on("pageerror", lambda exc: console_errors.append(str(exc)))
    page.goto(f"{viewer_url}/")
    page.wait_for_function("document.querySelectorAll('#category option').length > 1")
    yield page
    page.close()
    assert not console_errors, console_errors


def api(viewer_url: str, endpoint: str, path: Path, **params: Any) -> httpx.Response:
    files = {"file": (path.name, path.read_bytes())}
    return httpx.post(f"{viewer_url}/v1/{endpoint}", files=files, params=params, timeout=60)


def wait_for_result(page: Any, name: str) -> None:
    page.wait_for_function(
        "(name) => document.getElementById('status').textContent === `${name}: done`"
        " || !document.getElementById('error').hidden",
        arg=name,
        timeout=RESULT_TIMEOUT_MS,
    )
    assert page.locator("#error").is_hidden(), page.locator("#error").text_content()


def canvas_pixels(page: Any) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(BytesIO(page.locator("#canvas").screenshot())).convert("RGB")).astype(int)


def legend_entries(page: Any) -> list[tuple[str, np.ndarray]]:
    """(part name, swatch colour) per legend row."""
    rows = page.eval_on_selector_all(
        "#legend .legend-row",
        "rows => rows.map(r => [r.querySelector('.part').textContent,"
        " getComputedStyle(r.querySelector('.swatch')).backgroundColor])",
    )
    return [(name, np.array([int(v) for v in colour[4:-1].split(",")])) for name, colour in rows]


def test_samples_are_small_parseable_shapes() -> None:
    from crosspoint.geometry import load

    index = json.loads((SAMPLES / "index.json").read_text())
    assert len(index) >= 4
    for sample in index:
        blob = (SAMPLES / sample["file"]).read_bytes()
        assert len(blob) < 150_000, sample
        assert len(load(blob, sample["file"].rsplit(".", 1)[1]).vertices) >= 100, sample


def test_upload_shows_classes_parts_and_points(page: Any, viewer_url: str) -> None:
    mesh = require(MESHES / "chair_model.obj")
    axis = page.locator("#up-axis").input_value()  # auto when the served versions are calibrated
    classified = api(viewer_url, "classify", mesh, top_k=5, up_axis=axis).json()
    segmented = api(viewer_url, "segment", mesh, category="Chair", up_axis=axis).json()

    page.select_option("#category", "Chair")
    page.locator("#file-input").set_input_files(str(mesh))
    wait_for_result(page, mesh.name)

    rows = page.locator("#top-classes li")
    assert rows.count() == 5
    for row, expected in zip(rows.all(), classified["predictions"], strict=True):
        assert row.locator(".label").text_content() == expected["label"]
        shown = float(row.locator(".probability").text_content().rstrip("%"))
        assert shown == pytest.approx(100 * expected["probability"], abs=0.051)

    used = sorted(set(segmented["point_labels"]))
    legend = legend_entries(page)
    assert [name for name, _ in legend] == [segmented["part_names"][label] for label in used]
    assert page.locator("#segment-summary").text_content().startswith("Chair (given), ")
    verdict = page.locator("#ood-verdict").text_content()
    if classified["in_distribution"] is None:
        assert verdict == "no OOD statistics for this model version"
    else:
        word = "in distribution" if classified["in_distribution"] else "out of distribution"
        assert verdict.startswith(f"{word} (ood_score {classified['ood_score']:.2f})")

    receipt = json.loads(page.locator("#receipt").text_content())
    assert receipt == classified["receipt"]
    assert f"{receipt['source_vertices']} vertices" in page.locator("#receipt-summary").text_content()
    info = page.locator("#model-info").text_content()
    for name in ("embed", "classify", "segment"):
        assert name in info

    pixels = canvas_pixels(page)
    foreground = np.abs(pixels - BACKGROUND).sum(axis=2) > 30
    assert foreground.mean() > 0.01, f"only {foreground.sum()} non-background pixels"
    # every part with a visible share of the points shows up in its legend colour
    counts = np.bincount(segmented["point_labels"], minlength=len(segmented["part_names"]))
    for (name, colour), label in zip(legend, used, strict=True):
        if counts[label] >= 0.05 * len(segmented["point_labels"]):
            near = np.abs(pixels - colour).max(axis=2) <= 6
            assert near.sum() >= 20, f"part {name!r} ({colour}) is not drawn"

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer_e2e.png"))


def test_sample_from_the_list_loads(page: Any, viewer_url: str) -> None:
    index = json.loads((SAMPLES / "index.json").read_text())
    options = page.eval_on_selector_all("#sample-select option", "os => os.map(o => o.value).filter(Boolean)")
    assert options == [sample["file"] for sample in index]
    page.select_option("#category", "Table")  # a given category: one network row instead of 16
    page.select_option("#sample-select", "table.off")
    wait_for_result(page, "table.off")
    axis = page.locator("#up-axis").input_value()
    expected = api(viewer_url, "classify", SAMPLES / "table.off", top_k=5, up_axis=axis).json()[
        "predictions"
    ][0]
    assert page.locator("#top-classes li .label").first.text_content() == expected["label"]
    assert page.locator("#legend .legend-row").count() >= 1


def drop_file(page: Any, path: Path) -> None:
    """Drop a file on the drop zone as a drag from the desktop would."""
    page.evaluate(
        """([name, bytes]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name));
            document.getElementById("dropzone").dispatchEvent(
                new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""",
        [path.name, list(path.read_bytes())],
    )


def test_dropped_bad_file_shows_the_api_message(page: Any, viewer_url: str) -> None:
    empty = require(MESHES / "empty.stl")
    error = api(viewer_url, "classify", empty).json()["error"]
    drop_file(page, empty)
    page.locator("#error").wait_for(state="visible", timeout=RESULT_TIMEOUT_MS)
    text = page.locator("#error").text_content()
    assert error["message"] in text and error["code"] in text


def test_too_large_and_busy_are_explained(page: Any, tmp_path: Path) -> None:
    big = tmp_path / "big.xyz"
    big.write_text("0.1 0.2 0.3\n" * (MAX_BODY_BYTES // 12 + 10))
    page.locator("#file-input").set_input_files(str(big))
    page.locator("#error").wait_for(state="visible", timeout=RESULT_TIMEOUT_MS)
    assert "too large" in page.locator("#error").text_content()

    # A real overload needs a full queue; the page's handling of the 503 the gateway sends is what counts.
    body = {"error": {"code": "overloaded", "message": "the inference queue is full"}}
    page.route(
        "**/v1/classify*",
        lambda route: route.fulfill(status=503, headers={"Retry-After": "2"}, json=body),
    )
    page.select_option("#category", "Chair")
    page.select_option("#sample-select", "chair.obj")
    page.wait_for_function("document.getElementById('error').textContent.includes('busy')")
    text = page.locator("#error").text_content()
    assert "try again in 2 s" in text and "the inference queue is full" in text


def test_similar_shapes_panel_searches_the_chosen_collection(page: Any, viewer_url: str) -> None:
    chair, bunny = require(MESHES / "chair_model.obj"), require(MESHES / "bunny.ply")
    axis = page.locator("#up-axis").input_value()
    assert httpx.post(f"{viewer_url}/v1/collections", json={"name": "viewer"}).status_code == 201
    for path, label in ((chair, "chair"), (bunny, "animal")):
        added = httpx.post(
            f"{viewer_url}/v1/collections/viewer/items",
            files={"file": (path.name, path.read_bytes())},
            data={"label": label},
            params={"up_axis": axis},
            timeout=120,
        )
        assert added.status_code == 201, added.text
    page.reload()
    page.wait_for_function("document.querySelectorAll('#collection option').length > 1")
    page.select_option("#collection", "viewer")
    page.locator("#file-input").set_input_files(str(chair))
    wait_for_result(page, chair.name)
    page.wait_for_function("document.querySelectorAll('#similar li').length > 0", timeout=RESULT_TIMEOUT_MS)
    rows = page.locator("#similar li")
    assert rows.count() == 2
    assert rows.first.locator(".label").text_content() == "chair_model"
    assert "(chair)" in rows.first.text_content()
    assert float(rows.first.locator(".probability").text_content()) == pytest.approx(1.0, abs=1e-3)
