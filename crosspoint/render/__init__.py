"""2D views of 3D objects for CrossPoint's image branch, rendered on the CPU and cached on disk.

The reference trained on DISN's ShapeNet renderings, which we do not have: we render our own views
from the points (or from the mesh where one exists). `render_points` / `render_mesh` draw V random
viewpoints (azimuth U[0, 2pi), elevation U[10, 40] degrees, seeded per (object, view)); `ViewStore`
renders each object once and keeps the views in chunked files for the data loaders.

Renderer choice: a numpy surfel splatter (`splat.py`), not moderngl over EGL. Measured here (2 shared
cores, 224x224, 1024 points): the splatter costs ~10-12 ms of CPU per view (+ ~5 ms per object for
normals), ~150 ms CPU per object for 8 views including compression, i.e. ~25 CPU-minutes to prefill
all 9,843 ModelNet40 train shapes once. A moderngl point-sprite prototype on Mesa llvmpipe took
1.2-3.4 ms per view, but with single-pass flat discs (no normal blending), and it needs libEGL/Mesa and
a GL context in every worker process, and its pixels depend on the GL driver. Rendering happens once per
object (then views are read back in ~5 ms per object), so determinism and zero system dependencies won.
"""

from __future__ import annotations

from crosspoint.render.store import ViewStore
from crosspoint.render.views import render_mesh, render_points, view_angles

__all__ = ["ViewStore", "render_mesh", "render_points", "view_angles"]
