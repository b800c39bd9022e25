"""Write the viewer's bundled sample shapes to server/static/samples/ (+ index.json).

    .venv/bin/python tools/make_viewer_samples.py

The shapes come from our procedural generator (`crosspoint.data.procedural.generate`), so they are
ours to ship; each is saved in a different format the API accepts, to show them all working.
Deterministic: rerunning it rewrites the same shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

from crosspoint.data.procedural import generate

OUT = Path(__file__).resolve().parents[1] / "server" / "static" / "samples"
MAX_BYTES = 150_000
# (category, seed, format): one shape per entry, formats spread over the mesh readers
SAMPLES = [
    ("Chair", 0, "obj"),
    ("Airplane", 0, "glb"),
    ("Mug", 0, "ply"),
    ("Lamp", 1, "stl"),
    ("Table", 0, "off"),
    ("Guitar", 0, "obj"),
]


def write_samples(out: Path = OUT) -> list[dict[str, str]]:
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for category, seed, fmt in SAMPLES:
        mesh = generate(category, seed).mesh
        name = f"{category.lower()}.{fmt}"
        data = mesh.export(file_type=fmt)
        blob = data.encode() if isinstance(data, str) else bytes(data)
        if len(blob) > MAX_BYTES:
            raise SystemExit(f"{name} is {len(blob)} bytes, over {MAX_BYTES}: pick a simpler seed")
        (out / name).write_bytes(blob)
        index.append({"title": f"{category} (procedural, {fmt.upper()})", "file": name})
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    return index


if __name__ == "__main__":
    for sample in write_samples():
        print(f"{OUT / sample['file']}")
