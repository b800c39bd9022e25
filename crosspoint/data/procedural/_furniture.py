"""Chair, Table and Lamp: standing on the floor (y = 0), y up; chairs face +x."""

from __future__ import annotations

import numpy as np

from crosspoint.data.procedural._geometry import (
    Mesh,
    PartBuilder,
    beam,
    box,
    cone,
    cylinder,
    ellipsoid,
    extrude,
    revolve,
    rotation,
    smooth_path,
    superellipse,
    tube,
    vec,
)


def _leg(rng_round: bool, top: np.ndarray, bottom: np.ndarray, size: float, taper: float) -> Mesh:
    if rng_round:
        return cone(size / 2 * taper, size / 2, bottom, top, 10)
    return beam(bottom, top, size)


def _star_base(b: PartBuilder, label: int, rng: np.random.Generator, column_top: float, reach: float) -> None:
    """Swivel base: column, 4-5 radial feet, castors (office chairs, pedestal tables)."""
    feet = int(rng.choice([4, 5], p=[0.3, 0.7]))
    foot_y = rng.uniform(0.04, 0.08)
    b.add(cylinder(rng.uniform(0.02, 0.035), [0, foot_y, 0], [0, column_top, 0], 12), label)
    phase = rng.uniform(0, 2 * np.pi)
    castors = rng.random() < 0.7
    for k in range(feet):
        a = phase + 2 * np.pi * k / feet
        end = np.array([np.cos(a) * reach, foot_y * 0.6, np.sin(a) * reach])
        b.add(beam([0, foot_y, 0], end, 0.035, 0.04), label)
        if castors:
            b.add(ellipsoid([0.025, 0.025, 0.02], end - vec(0, foot_y * 0.35, 0), 5, 8), label)


CHAIR_BACK, CHAIR_SEAT, CHAIR_LEG, CHAIR_ARM = range(4)


def chair(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    seat_h = rng.uniform(0.38, 0.5)
    depth, width = rng.uniform(0.4, 0.55), rng.uniform(0.4, 0.6)
    thick = rng.uniform(0.03, 0.1)
    base = str(rng.choice(["legs", "swivel", "sled", "solid"], p=[0.6, 0.2, 0.1, 0.1]))
    if base == "solid":
        thick = rng.uniform(0.08, 0.14)
    if rng.random() < 0.6:
        b.add(box([depth, thick, width], [0, seat_h - thick / 2, 0]), CHAIR_SEAT)
    else:  # cushion
        outline = superellipse(depth / 2, width / 2, 24, rng.uniform(3, 8))
        b.add(extrude(outline, thick).moved(rotation("x", np.pi / 2), [0, seat_h - thick / 2, 0]), CHAIR_SEAT)
    _chair_back(b, rng, seat_h, depth, width)
    _chair_base(b, rng, base, seat_h - thick, depth, width)
    if rng.random() < 0.45:
        _chair_arms(b, rng, seat_h, depth, width, base == "solid")
    return b


def _chair_back(b: PartBuilder, rng: np.random.Generator, seat_h: float, depth: float, width: float) -> None:
    height = rng.uniform(0.35, 0.6)
    thick = rng.uniform(0.025, 0.07)
    tilt = rotation("z", np.radians(rng.uniform(0, 15)))  # leans back (towards -x)
    pivot = np.array([-depth / 2 + thick / 2, seat_h, 0])
    style = str(rng.choice(["slab", "rounded", "slats", "ladder"], p=[0.35, 0.25, 0.25, 0.15]))
    w = width * rng.uniform(0.85, 1.0)
    if style == "slab":
        parts = [box([thick, height, w], [0, height / 2, 0])]
    elif style == "rounded":
        outline = superellipse(w / 2, height / 2, 28, rng.uniform(2.2, 5))
        parts = [extrude(outline, thick).moved(rotation("y", np.pi / 2), [0, height / 2, 0])]
    else:
        post = rng.uniform(0.03, 0.05)
        parts = [box([thick, height, post], [0, height / 2, side * (w / 2 - post / 2)]) for side in (-1, 1)]
        rail = rng.uniform(0.05, 0.12)
        parts.append(box([thick, rail, w], [0, height - rail / 2, 0]))
        count = int(rng.integers(2, 6))
        if style == "slats":
            for z in np.linspace(-w / 2 + post, w / 2 - post, count + 2)[1:-1]:
                parts.append(box([thick * 0.7, height - rail, post * 0.8], [0, (height - rail) / 2, z]))
        else:
            for y in np.linspace(0, height - rail, count + 1)[1:]:
                parts.append(box([thick * 0.7, 0.03, w - post], [0, y - 0.015, 0]))
    for part in parts:
        b.add(part.moved(tilt, pivot), CHAIR_BACK)


def _chair_base(
    b: PartBuilder, rng: np.random.Generator, base: str, under: float, depth: float, width: float
) -> None:
    if base == "swivel":
        _star_base(b, CHAIR_LEG, rng, under, rng.uniform(0.25, 0.33))
        return
    if base == "solid":
        b.add(box([depth * 0.95, under, width * 0.95], [0, under / 2, 0]), CHAIR_LEG)
        return
    if base == "sled":  # one bent tube per side: runner on the floor and up to the seat
        r = rng.uniform(0.01, 0.02)
        for side in (-1, 1):
            z = side * (width / 2 - 0.03)
            path = [
                [-depth / 2, under, z],
                [-depth / 2 - 0.02, r, z],
                [depth / 2 + 0.03, r, z],
                [depth / 2, under, z],
            ]
            b.add(tube(smooth_path(path, 2), r, 8), CHAIR_LEG)
        return
    size = rng.uniform(0.025, 0.06)
    round_legs = rng.random() < 0.4
    splay = rng.uniform(0.0, 0.06)
    inset = size / 2 + rng.uniform(0.0, 0.03)
    feet = []
    for sx in (-1, 1):
        for sz in (-1, 1):
            top = np.array([sx * (depth / 2 - inset), under, sz * (width / 2 - inset)])
            foot = top * [1 + splay * 2, 0, 1 + splay * 2]
            feet.append(foot)
            b.add(_leg(round_legs, top, foot, size, rng.uniform(0.6, 1.0)), CHAIR_LEG)
    if rng.random() < 0.4:  # stretchers
        y = under * rng.uniform(0.2, 0.45)
        lift = np.array([0, y, 0])
        for i, j in ((0, 1), (2, 3), (0, 2), (1, 3)):
            b.add(beam(feet[i] * 0.9 + lift, feet[j] * 0.9 + lift, size * 0.5), CHAIR_LEG)


def _chair_arms(
    b: PartBuilder, rng: np.random.Generator, seat_h: float, depth: float, width: float, solid: bool
) -> None:
    height = rng.uniform(0.16, 0.28)
    aw = rng.uniform(0.04, 0.08)
    for side in (-1, 1):
        z = side * (width / 2 + (aw / 2 if solid else -aw / 2))
        if solid:  # armchair side panel
            b.add(
                box([depth, height + seat_h * 0.6, aw], [0, seat_h * 0.4 + (height + seat_h * 0.6) / 2, z]),
                CHAIR_ARM,
            )
            continue
        rest = box([depth * rng.uniform(0.75, 1.0), 0.03, aw], [0, seat_h + height, z])
        b.add(rest, CHAIR_ARM)
        x_post = depth / 2 - rng.uniform(0.03, 0.1)
        b.add(beam([x_post, seat_h, z], [x_post, seat_h + height, z], rng.uniform(0.025, 0.04)), CHAIR_ARM)


TABLE_TOP, TABLE_SUPPORT, TABLE_DRAWER = range(3)


def table(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    round_top = rng.random() < 0.35
    height = rng.uniform(0.35, 0.8)
    thick = rng.uniform(0.02, 0.06)
    if round_top:
        rx = rng.uniform(0.35, 0.6)
        rz = rx * (1.0 if rng.random() < 0.7 else rng.uniform(0.6, 0.9))
        outline = superellipse(rx, rz, 40, 2.0)
    else:
        rx, rz = rng.uniform(0.35, 0.8), rng.uniform(0.25, 0.5)
        outline = superellipse(rx, rz, 40, rng.uniform(6, 14))
    if rng.random() < 0.5:
        rx, rz = rz, rx
        outline = outline[:, ::-1].copy()
    top = extrude(outline, thick).moved(rotation("x", np.pi / 2), [0, height - thick / 2, 0])
    b.add(top, TABLE_TOP)
    under = height - thick
    support = str(rng.choice(["legs", "pedestal", "trestle"], p=[0.65, 0.25, 0.1]))
    size = rng.uniform(0.03, 0.07)
    inset = size / 2 + rng.uniform(0.01, 0.08)
    corners: list[np.ndarray] = []
    if support == "legs":
        round_legs = rng.random() < 0.5
        if round_top:
            count = int(rng.choice([3, 4, 5], p=[0.35, 0.5, 0.15]))
            ang = rng.uniform(0, np.pi) + 2 * np.pi * np.arange(count) / count
            corners = [
                np.array([np.cos(a) * (rx - inset) * 0.9, under, np.sin(a) * (rz - inset) * 0.9]) for a in ang
            ]
        else:
            corners = [
                np.array([sx * (rx - inset), under, sz * (rz - inset)]) for sx in (-1, 1) for sz in (-1, 1)
            ]
        splay = rng.uniform(0.0, 0.08) if rng.random() < 0.4 else 0.0
        for c in corners:
            b.add(
                _leg(round_legs, c, c * [1 + splay, 0, 1 + splay], size, rng.uniform(0.5, 1.0)), TABLE_SUPPORT
            )
        if rng.random() < 0.3:  # low stretchers between neighbouring legs
            lift = np.array([0, under * rng.uniform(0.15, 0.35), 0])
            for i in range(len(corners)):
                a, c = corners[i] * [1, 0, 1], corners[(i + 1) % len(corners)] * [1, 0, 1]
                if len(corners) == 4 and not round_top and i % 2 == 1 and rng.random() < 0.5:
                    continue
                b.add(beam(a + lift, c + lift, size * 0.5), TABLE_SUPPORT)
    elif support == "pedestal":
        col = rng.uniform(0.04, 0.1)
        prof = col * np.array([1.0, 1.0, rng.uniform(0.8, 1.6), 1.0, 1.0])
        b.add(revolve(prof, under * np.array([0.05, 0.2, 0.5, 0.8, 1.0]), 16), TABLE_SUPPORT)
        if rng.random() < 0.5:
            disc = rng.uniform(0.5, 0.8) * min(rx, rz)
            b.add(revolve([0, disc, disc * 0.8, col], [0, 0, 0.04, 0.06], 24), TABLE_SUPPORT)
        else:
            _star_base(b, TABLE_SUPPORT, rng, under * 0.1, rng.uniform(0.5, 0.8) * min(rx, rz))
    else:  # trestle: two end panels and a stretcher
        long_x = rx >= rz
        for s in (-1, 1):
            pos = (
                np.array([s * (rx - inset - 0.04), under / 2, 0])
                if long_x
                else np.array([0, under / 2, s * (rz - inset - 0.04)])
            )
            dims = [0.05, under, 2 * rz * 0.8] if long_x else [2 * rx * 0.8, under, 0.05]
            b.add(box(dims, pos), TABLE_SUPPORT)
        ends = (
            ([-(rx - inset), under * 0.4, 0], [rx - inset, under * 0.4, 0])
            if long_x
            else ([0, under * 0.4, -(rz - inset)], [0, under * 0.4, rz - inset])
        )
        b.add(beam(ends[0], ends[1], 0.05), TABLE_SUPPORT)
    _table_drawer(b, rng, corners, under, rx, rz, inset, round_top, support)
    return b


def _table_drawer(
    b: PartBuilder,
    rng: np.random.Generator,
    corners: list[np.ndarray],
    under: float,
    rx: float,
    rz: float,
    inset: float,
    round_top: bool,
    support: str,
) -> None:
    """ShapeNetPart's third table part: drawers, or the apron/frame right under the top."""
    roll = rng.random()
    apron_h = rng.uniform(0.02, 0.05)
    if roll < 0.3 and corners:  # apron boards between the legs
        y = under - apron_h / 2
        for i in range(len(corners)):
            a, c = corners[i].copy(), corners[(i + 1) % len(corners)].copy()
            a[1] = c[1] = y
            b.add(beam(a, c, apron_h, 0.012, up=[0, 1, 0]), TABLE_DRAWER)
    elif roll < 0.5 and not round_top:  # a drawer box hanging under one side
        long_x = rx >= rz
        dh = rng.uniform(0.08, 0.16)
        dw = rng.uniform(0.3, 0.6) * (rx if long_x else rz)
        depth = 2 * (rz if long_x else rx) - 2 * inset - 0.06
        centre_l = rng.uniform(-0.4, 0.4) * (rx if long_x else rz)
        size = [2 * dw, dh, depth] if long_x else [depth, dh, 2 * dw]
        centre = [centre_l, under - dh / 2, 0] if long_x else [0, under - dh / 2, centre_l]
        b.add(box(size, centre), TABLE_DRAWER)
        knob = (
            [centre_l, under - dh / 2, depth / 2 + 0.01]
            if long_x
            else [depth / 2 + 0.01, under - dh / 2, centre_l]
        )
        b.add(ellipsoid([0.015, 0.015, 0.015], knob, 4, 8), TABLE_DRAWER)
    elif roll < 0.6 and support == "pedestal":  # the block where the column meets the top
        hub = rng.uniform(0.12, 0.25) * min(rx, rz)
        b.add(box([2 * hub, apron_h, 2 * hub], [0, under - apron_h / 2, 0]), TABLE_DRAWER)


LAMP_BASE, LAMP_SHADE, LAMP_CANOPY, LAMP_TUBE = range(4)


def _shade(rng: np.random.Generator, radius: float, height: float, open_up: bool = False) -> Mesh:
    """Open lampshade (drum/cone, bowl or bell) hanging from its top at the origin, or a cup opening up."""
    kind = int(rng.integers(3))
    t = np.linspace(0, 1, 8)  # from the narrow end to the mouth
    if kind == 0:
        narrow = rng.uniform(0.45, 1.0)
        r = radius * (narrow + (1 - narrow) * t)
    elif kind == 1:
        r = radius * np.sqrt(np.clip(t * (2 - t), 0.03, 1))
    else:
        r = radius * (0.3 + 0.7 * t**1.8)
    return revolve(r, height * t if open_up else -height * t, 20, cap_start=kind != 0)


def lamp(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    style = str(rng.choice(["table", "floor", "desk", "hanging"], p=[0.3, 0.22, 0.2, 0.28]))
    if style == "hanging":
        drop = rng.uniform(0.4, 0.9)
        plate = rng.uniform(0.04, 0.07)
        b.add(revolve([0, plate, plate, plate * 0.6, 0], [1, 1, 0.98, 0.965, 0.965], 16), LAMP_CANOPY)
        arms = int(rng.choice([1, 3, 4, 5], p=[0.6, 0.15, 0.15, 0.1]))
        stem_end = np.array([0, 1 - drop, 0])
        b.add(cylinder(rng.uniform(0.005, 0.012), [0, 0.965, 0], stem_end, 8), LAMP_TUBE)
        if arms == 1:
            radius = rng.uniform(0.12, 0.3)
            b.add(_shade(rng, radius, radius * rng.uniform(0.5, 1.1)).moved(None, stem_end), LAMP_SHADE)
            return b
        reach = rng.uniform(0.2, 0.4)
        for k in range(arms):
            a = 2 * np.pi * k / arms
            tip = stem_end + vec(np.cos(a) * reach, rng.uniform(0.0, 0.1), np.sin(a) * reach)
            b.add(
                tube(smooth_path([stem_end, (stem_end + tip) / 2 - vec(0, 0.05, 0), tip], 2), 0.01, 8),
                LAMP_TUBE,
            )
            radius = rng.uniform(0.05, 0.1)
            b.add(_shade(rng, radius, radius * 1.2, open_up=True).moved(None, tip), LAMP_SHADE)
        return b
    base_r = rng.uniform(0.12, 0.25)
    base_h = rng.uniform(0.02, 0.06)
    if style == "table" and rng.random() < 0.6:  # vase-like body is the base
        vase_h = rng.uniform(0.25, 0.45)
        prof = base_r * np.array([0.6, 0.9, rng.uniform(0.9, 1.3), rng.uniform(0.5, 1.0), 0.3, 0.15])
        b.add(
            revolve([0, *prof], vase_h * np.array([0, 0, 0.1, 0.45, 0.75, 0.95, 1.0]), 18, cap_end=True),
            LAMP_BASE,
        )
        top_y = vase_h
    else:
        if rng.random() < 0.75:
            b.add(revolve([0, base_r, base_r * 0.85, 0.02], [0, 0, base_h, base_h * 1.2], 20), LAMP_BASE)
        else:
            b.add(box([2 * base_r, base_h, 1.6 * base_r], [0, base_h / 2, 0]), LAMP_BASE)
        top_y = base_h
    pole_r = rng.uniform(0.008, 0.02)
    if style == "desk":  # articulated arm ending in a shade pointing down and forward
        lower = np.radians(rng.uniform(-35, 35))
        l1, l2 = rng.uniform(0.3, 0.45), rng.uniform(0.3, 0.45)
        elbow = np.array([np.sin(lower) * l1, top_y + np.cos(lower) * l1, 0])
        upper = np.radians(rng.uniform(40, 110))
        tip = elbow + vec(np.sin(upper) * l2, np.cos(upper) * l2, 0)
        for p0, p1 in (([0, top_y, 0], elbow), (elbow, tip)):
            b.add(cylinder(pole_r, p0, p1, 8), LAMP_TUBE)
        b.add(ellipsoid([pole_r * 2] * 3, elbow, 5, 8), LAMP_TUBE)
        radius = rng.uniform(0.07, 0.14)
        tilt = rotation("z", -np.radians(rng.uniform(10, 60)))
        b.add(
            _shade(rng, radius, radius * rng.uniform(0.8, 1.5)).moved(tilt, tip + vec(0.02, 0.03, 0)),
            LAMP_SHADE,
        )
        return b
    pole_h = rng.uniform(1.0, 1.6) if style == "floor" else rng.uniform(0.15, 0.35)
    top = np.array([0, top_y + pole_h, 0])
    b.add(cylinder(pole_r, [0, top_y, 0], top, 8), LAMP_TUBE)
    radius = rng.uniform(0.15, 0.3) if style == "table" else rng.uniform(0.15, 0.28)
    shade_h = radius * rng.uniform(0.6, 1.3)
    if style == "floor" and rng.random() < 0.3:  # torchiere: bowl opening upwards
        b.add(_shade(rng, radius, shade_h * 0.6, open_up=True).moved(None, top - vec(0, 0.02, 0)), LAMP_SHADE)
    else:
        lift = max(shade_h * rng.uniform(0.3, 0.7), shade_h - 0.65 * pole_h)  # keep the pole's foot visible
        b.add(_shade(rng, radius, shade_h).moved(None, top + vec(0, lift, 0)), LAMP_SHADE)
    if rng.random() < 0.25:  # the bracket that holds the shade on the pole
        b.add(cylinder(pole_r * 2.5, top - vec(0, 0.04, 0), top + vec(0, 0.01, 0), 10), LAMP_CANOPY)
    return b
