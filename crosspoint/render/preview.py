"""Write example views so a person can judge them: `python -m crosspoint.render.preview [out_dir]`.

- `views_modelnet.png`: shared ModelNet40 train shapes (1024 points each), one row per class, V views.
- `views_mesh.png`: shared meshes rendered from the mesh (`render_mesh`), same cameras.
- `views_augmented.png`: one rendered view through the training image augmentation, several draws.
Also prints the CPU time per view (process time: the machine is shared, wall time is not telling).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from crosspoint.data.prepared import REPO_ROOT, shared_data_dir
from crosspoint.data.sets import shape_seed
from crosspoint.render.views import render_mesh, render_points

CLASSES = ("airplane", "bed", "car", "chair", "guitar", "lamp", "person", "piano", "table", "toilet")
MESHES = {"chair_model.obj": "y", "bunny.ply": "y", "teapot.stl": "z", "rabbit.obj": "y"}  # file: up axis
VIEWS = 5
LABEL_WIDTH = 110


def _labelled_row(label: str, views: np.ndarray) -> np.ndarray:
    strip = Image.new("RGB", (LABEL_WIDTH, views.shape[1]), "white")
    ImageDraw.Draw(strip).text((6, views.shape[1] // 2 - 6), label, fill="black")
    return np.concatenate([np.asarray(strip), *views], axis=1)


def modelnet_grid(example: int = 0) -> tuple[np.ndarray, float]:
    """Rows of ModelNet40 classes; returns (grid, seconds per view)."""
    from crosspoint.data.modelnet import load_modelnet40_npz

    data = load_modelnet40_npz(split="train")
    rows, elapsed = [], 0.0
    for name in CLASSES:
        i = int(np.flatnonzero(data.labels == data.class_names.index(name))[example])
        sid = data.shape_ids[i]
        start = time.process_time()
        views = render_points(data.points[i], views=VIEWS, seed=shape_seed(sid))
        elapsed += time.process_time() - start
        rows.append(_labelled_row(sid, views))
    return np.concatenate(rows, axis=0), elapsed / (len(CLASSES) * VIEWS)


def mesh_grid() -> tuple[np.ndarray, float]:
    rows, elapsed = [], 0.0
    for name, up in MESHES.items():
        start = time.process_time()
        views = render_mesh(
            shared_data_dir() / "meshes" / name, views=VIEWS, seed=shape_seed(name), up_axis=up
        )
        elapsed += time.process_time() - start
        rows.append(_labelled_row(name, views))
    return np.concatenate(rows, axis=0), elapsed / (len(MESHES) * VIEWS)


def augmented_row(view: np.ndarray, draws: int = 6) -> np.ndarray:
    """A rendered view and `draws` outputs of `augment_image`, un-normalized back to pixels."""
    from crosspoint.augment import IMAGENET_MEAN, IMAGENET_STD, augment_image

    rng = np.random.default_rng(0)
    out = [view]
    for _ in range(draws):
        img = augment_image(view, rng).numpy().transpose(1, 2, 0)
        out.append(np.clip((img * IMAGENET_STD + IMAGENET_MEAN) * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return np.concatenate(out, axis=1)


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    grid, per_view = modelnet_grid()
    Image.fromarray(grid).save(out_dir / "views_modelnet.png")
    print(f"views_modelnet.png: {per_view * 1000:.1f} ms per 224x224 view from 1024 points (incl. normals)")
    grid, per_view = mesh_grid()
    Image.fromarray(grid).save(out_dir / "views_mesh.png")
    print(f"views_mesh.png: {per_view * 1000:.1f} ms per view from a mesh (incl. surface sampling)")
    from crosspoint.data.modelnet import load_modelnet40_npz

    data = load_modelnet40_npz(split="train")
    i = int(np.flatnonzero(data.labels == data.class_names.index("chair"))[0])
    view = render_points(data.points[i], views=1, seed=shape_seed(data.shape_ids[i]))[0]
    Image.fromarray(augmented_row(view)).save(out_dir / "views_augmented.png")
    print(f"wrote {out_dir}/views_*.png")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT / "docs" / "images")
