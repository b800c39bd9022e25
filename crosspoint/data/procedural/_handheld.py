"""Earphone, Guitar, Knife and Pistol.

Frames follow the real shapes: headphones' band up with the cups at +-z; guitars and knives stand along
y (head / blade up) and are thin in x (guitar) or z (knife); pistols point the muzzle to +x, grip down.
"""

from __future__ import annotations

import numpy as np

from crosspoint.data.procedural._geometry import (
    PartBuilder,
    align,
    box,
    cylinder,
    ellipsoid,
    extrude,
    loft_y,
    revolve,
    rotation,
    smooth_path,
    superellipse,
    tube,
    vec,
)

TO_Z = align([0, 1, 0], [0, 0, 1])

EAR_CUP, EAR_BAND, EAR_WIRE = range(3)


def earphone(rng: np.random.Generator) -> PartBuilder:
    if rng.random() < 0.25:
        return _earbuds(rng)
    b = PartBuilder()
    half = rng.uniform(0.32, 0.42)  # cup centres at z = +-half
    cup_ry = rng.uniform(0.16, 0.26)
    cup_rx = cup_ry * rng.uniform(0.7, 1.0)
    cup_w = rng.uniform(0.07, 0.12)
    band_h = rng.uniform(0.3, 0.5)
    for side in (-1, 1):
        prof = np.array([0.0, 0.85, 1.0, 1.0, 0.9, 0.75, 0.0])
        ys = np.array([0.0, 0.0, 0.2, 0.6, 0.9, 1.0, 1.0]) * cup_w
        cup = revolve(prof, ys - cup_w / 2, 20).moved(TO_Z).moved(None, None, [cup_rx, cup_ry, 1])
        if side < 0:
            cup = cup.mirrored(2)
        b.add(cup.moved(None, [0, 0, side * half]), EAR_CUP)
    # band: an arch from cup top to cup top, flattened so it is wide front-to-back
    t = np.linspace(0, np.pi, 24)
    power = rng.uniform(2.0, 3.5)
    zc = np.sign(np.cos(t)) * np.abs(np.cos(t)) ** (2 / power) * (half + cup_w * 0.2)
    yc = cup_ry * 0.6 + np.abs(np.sin(t)) ** (2 / power) * band_h
    band = np.column_stack([np.zeros_like(t), yc, zc])
    b.add(tube(band, rng.uniform(0.012, 0.025), 10, flatten=rng.uniform(0.3, 0.6)), EAR_BAND)
    for side in (-1, 1):  # yokes holding the cups
        z = side * (half + cup_w * 0.2)
        yoke = [
            [-cup_rx * 0.9, 0, z],
            [-cup_rx * 0.9, cup_ry * 0.9, z],
            [cup_rx * 0.9, cup_ry * 0.9, z],
            [cup_rx * 0.9, 0, z],
        ]
        b.add(tube(smooth_path(yoke, 2), 0.01, 6), EAR_BAND)
    wiring = rng.random()
    if wiring < 0.25:  # cable hanging out of one cup
        side = rng.choice([-1, 1])
        start = np.array([0, -cup_ry * 0.8, side * half])
        length = rng.uniform(0.25, 0.6)
        middle = start + vec(rng.uniform(-0.05, 0.05), -length * 0.4, -side * rng.uniform(0.0, 0.1))
        pts = [start, middle, start + vec(rng.uniform(-0.1, 0.1), -length, -side * rng.uniform(0.05, 0.3))]
        b.add(tube(smooth_path(pts, 3), rng.uniform(0.006, 0.01), 6), EAR_WIRE)
    elif wiring < 0.75:  # cable joining the cups behind the head, as in the real ShapeNet headset
        y = cup_ry * rng.uniform(0.4, 0.9)
        sag = rng.uniform(0.02, 0.15)
        x = -cup_rx * rng.uniform(0.3, 0.9)
        pts = [[x, y, -half], [x - 0.03, y - sag, -half * 0.4], [x - 0.03, y - sag, half * 0.4], [x, y, half]]
        b.add(tube(smooth_path(pts, 3), rng.uniform(0.006, 0.012), 6), EAR_WIRE)
    return b


def _earbuds(rng: np.random.Generator) -> PartBuilder:
    """In-ear buds on a Y cable (no headband)."""
    b = PartBuilder()
    gap = rng.uniform(0.1, 0.3)
    bud_r = rng.uniform(0.035, 0.06)
    joint = np.array([0, -rng.uniform(0.25, 0.45), 0])
    end = joint - [0, rng.uniform(0.2, 0.5), 0]
    for side in (-1, 1):
        c = np.array([0, 0, side * gap])
        b.add(ellipsoid([bud_r, bud_r, bud_r * 0.8], c, 8, 12), EAR_CUP)
        stem_end = c - [0, bud_r * rng.uniform(1.5, 3.0), 0]
        b.add(cylinder(bud_r * 0.35, c, stem_end, 8), EAR_CUP)
        wire = smooth_path([stem_end, (stem_end + joint) / 2 + [rng.uniform(-0.05, 0.05), 0, 0], joint], 2)
        b.add(tube(wire, 0.006, 6), EAR_WIRE)
    b.add(
        tube(smooth_path([joint, (joint + end) / 2 + [rng.uniform(-0.05, 0.05), 0, 0], end], 2), 0.007, 6),
        EAR_WIRE,
    )
    return b


GUITAR_HEAD, GUITAR_NECK, GUITAR_BODY = range(3)


def _bouts(length: float, lower: float, upper: float, n: int = 36) -> np.ndarray:
    """Guitar outline (z, y): union of a lower and an upper ellipse, bottom at y = 0."""
    r1, r2 = length * 0.33, length * 0.25
    y = length * (1 - np.cos(np.linspace(0, np.pi, n))) / 2
    e1 = lower * np.sqrt(np.clip(1 - ((y - r1) / r1) ** 2, 0, 1))
    e2 = upper * np.sqrt(np.clip(1 - ((y - (length - r2)) / r2) ** 2, 0, 1))
    hw = np.maximum(np.maximum(e1, e2), 1e-3)
    return np.concatenate([np.column_stack([hw, y]), np.column_stack([-hw, y])[::-1][1:-1]])


def guitar(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    electric = rng.random() < 0.4
    body_len = rng.uniform(0.38, 0.5)
    lower = rng.uniform(0.15, 0.21)
    upper = lower * (rng.uniform(0.7, 0.85) if not electric else rng.uniform(0.8, 1.0))
    depth = rng.uniform(0.04, 0.06) if electric else rng.uniform(0.08, 0.12)
    to_yz = rotation("y", np.pi / 2)  # outlines are drawn in (z, y); the body is thin along x
    b.add(extrude(_bouts(body_len, lower, upper), depth).moved(to_yz), GUITAR_BODY)
    if electric and rng.random() < 0.75:  # cutaway horns either side of the neck, the bass-side one longer
        for side, length in ((1, rng.uniform(0.12, 0.2)), (-1, rng.uniform(0.07, 0.14))):
            horn = extrude(superellipse(upper * 0.25, length, 16, 2.2), depth)
            lean = rotation("z", side * np.radians(rng.uniform(5, 20)))  # tips lean in towards the neck
            b.add(horn.moved(lean, [side * upper * 0.6, body_len * 0.82, 0]).moved(to_yz), GUITAR_BODY)
    if rng.random() < 0.6:  # bridge
        b.add(box([0.01, 0.025, lower * 0.6], [depth / 2, body_len * 0.25, 0]), GUITAR_BODY)
    neck_len = rng.uniform(0.3, 0.42)
    nw = rng.uniform(0.045, 0.06)
    y0 = body_len * (0.85 if not electric else 0.75)
    y1 = body_len + neck_len
    neck = loft_y([y0, y1], [0.018, 0.016], [nw / 2 * 1.15, nw / 2], n=12, power=3, centre_x=depth * 0.3)
    b.add(neck, GUITAR_NECK)
    head_len = rng.uniform(0.1, 0.16)
    hw = rng.uniform(0.03, 0.05)
    plate = np.array(
        [
            [-nw / 2, 0],
            [nw / 2, 0],
            [hw, head_len * 0.8],
            [hw * 0.8, head_len],
            [-hw * 0.8, head_len],
            [-hw, head_len * 0.8],
        ]
    )
    if rng.random() < 0.4:  # one-sided (Fender-like) headstock
        plate[:, 0] = np.clip(plate[:, 0], -nw / 2, None)
        plate[2:4, 0] += hw * 0.6
    tilt = rotation("z", np.radians(rng.uniform(0, 14)))  # head angled back (towards -x)
    head = extrude(plate, 0.016).moved(rotation("y", np.pi / 2))
    head_pos = np.array([depth * 0.3, y1, 0])
    b.add(head.moved(tilt, head_pos), GUITAR_HEAD)
    if rng.random() < 0.75:  # tuning pegs
        for k in range(3):
            y = head_len * (0.25 + 0.25 * k)
            for side in (-1, 1):
                p = np.array([0, y, side * hw * 0.9])
                b.add(cylinder(0.006, p, p + vec(0, 0, side * 0.02), 6).moved(tilt, head_pos), GUITAR_HEAD)
    return b


KNIFE_BLADE, KNIFE_HANDLE = range(2)


def knife(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    style = str(rng.choice(["kitchen", "dagger", "cleaver", "pocket"], p=[0.4, 0.35, 0.1, 0.15]))
    handle_len = rng.uniform(0.25, 0.4) if style != "pocket" else rng.uniform(0.4, 0.5)
    blade_len = 1 - handle_len
    spine = rng.uniform(0.008, 0.02)
    if style == "dagger":
        w = rng.uniform(0.03, 0.07)
        t = np.linspace(0, 1, 10)
        edge = w * (1 - t ** rng.uniform(1.5, 3)) + 1e-3
        outline = np.concatenate(
            [np.column_stack([edge, t * blade_len]), np.column_stack([-edge, t * blade_len])[::-1]]
        )
        thickness = np.concatenate([np.full(10, spine), np.full(10, spine)]) * np.concatenate(
            [1 - 0.6 * t, (1 - 0.6 * t)[::-1]]
        )
    else:
        w = {"kitchen": rng.uniform(0.05, 0.12), "cleaver": rng.uniform(0.12, 0.18)}.get(
            style, rng.uniform(0.04, 0.07)
        )
        drop = rng.uniform(0.15, 0.4) if style != "cleaver" else 0.02
        pts = [
            [-w / 2, 0],
            [w / 2, 0],
            [w / 2, blade_len * (1 - drop)],
            [w * 0.2, blade_len * (1 - drop * 0.2)],
            [-w / 2 + 0.002, blade_len],
            [-w / 2, blade_len * 0.5],
        ]
        outline = np.array(pts)
        # thin along the edge (+x), full thickness along the spine
        thickness = np.array([0.3, 0.3, 0.3, 0.3, 1.0, 1.0]) * spine
    b.add(extrude(outline, thickness), KNIFE_BLADE)
    hx, hz = rng.uniform(0.018, 0.035), rng.uniform(0.012, 0.022)
    if style == "dagger" or rng.random() < 0.2:  # cross-guard; the real dagger labels it blade
        gw = rng.uniform(0.08, 0.15)
        guard = smooth_path([[-gw, 0.02, 0], [-gw * 0.5, -0.005, 0], [gw * 0.5, -0.005, 0], [gw, 0.02, 0]], 2)
        b.add(tube(guard, rng.uniform(0.008, 0.014), 8, flatten=1.5), KNIFE_BLADE)
    hy = np.linspace(-handle_len, 0, 8)
    bulge = 1 + 0.15 * np.sin(np.linspace(0, np.pi, 8))
    b.add(loft_y(hy, hx * bulge, hz * bulge, 14, power=rng.uniform(2, 4)), KNIFE_HANDLE)
    if rng.random() < 0.4:  # pommel
        b.add(ellipsoid([hx * 1.3, hx, hz * 1.3], [0, -handle_len, 0], 6, 10), KNIFE_HANDLE)
    return b


PISTOL_BARREL, PISTOL_HANDLE, PISTOL_TRIGGER = range(3)


def pistol(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    style = str(rng.choice(["automatic", "revolver", "long"], p=[0.6, 0.25, 0.15]))
    length = 1.0
    slide_h = rng.uniform(0.12, 0.18)
    slide_w = rng.uniform(0.06, 0.09)
    back = -length / 2
    if style == "revolver":
        bore = rng.uniform(0.025, 0.04)
        drum_x = back + rng.uniform(0.25, 0.35)
        drum_r = rng.uniform(0.06, 0.08)
        b.add(cylinder(bore, [drum_x, slide_h * 0.7, 0], [length / 2, slide_h * 0.7, 0], 14), PISTOL_BARREL)
        b.add(
            cylinder(drum_r, [drum_x - 0.09, slide_h * 0.5, 0], [drum_x + 0.05, slide_h * 0.5, 0], 16),
            PISTOL_BARREL,
        )
        b.add(
            box([drum_x - back + 0.02, slide_h, slide_w * 0.8], [(back + drum_x) / 2, slide_h / 2, 0]),
            PISTOL_BARREL,
        )
    else:
        slide_end = length / 2 if style == "automatic" else rng.uniform(0.0, 0.2)
        b.add(
            box([slide_end - back, slide_h, slide_w], [(back + slide_end) / 2, slide_h / 2, 0]), PISTOL_BARREL
        )
        if style == "long":
            b.add(
                cylinder(
                    rng.uniform(0.02, 0.035),
                    [slide_end - 0.02, slide_h * 0.6, 0],
                    [length / 2, slide_h * 0.6, 0],
                    14,
                ),
                PISTOL_BARREL,
            )
        if rng.random() < 0.5:  # frame / dust cover under the slide in front of the guard
            b.add(box([0.3, 0.05, slide_w * 0.9], [back + 0.45, -0.025, 0]), PISTOL_BARREL)
    grip_w = rng.uniform(0.16, 0.22)
    grip_h = rng.uniform(0.26, 0.4)
    rake = np.tan(np.radians(rng.uniform(8, 25)))
    x0 = back + rng.uniform(0.02, 0.06)
    grip = np.array(
        [
            [x0, 0.01],
            [x0 + grip_w, 0.01],
            [x0 + grip_w - grip_h * rake, -grip_h],
            [x0 - grip_h * rake - 0.01, -grip_h],
        ]
    )
    b.add(extrude(grip, slide_w * rng.uniform(1.0, 1.2)), PISTOL_HANDLE)
    # guard loop from the frame down round the trigger to the grip's front face
    gx = x0 + grip_w
    span = rng.uniform(0.12, 0.2)
    depth = rng.uniform(0.09, 0.14)
    loop = smooth_path(
        [
            [gx + span, 0, 0],
            [gx + span, -depth * 0.8, 0],
            [gx + span * 0.7, -depth, 0],
            [gx - depth * rake * 0.5, -depth, 0],
        ],
        2,
    )
    b.add(tube(loop, 0.01, 8, flatten=1.5), PISTOL_TRIGGER)
    trig = smooth_path(
        [[gx + span * 0.45, 0, 0], [gx + span * 0.45, -depth * 0.45, 0], [gx + span * 0.3, -depth * 0.7, 0]],
        2,
    )
    b.add(tube(trig, 0.009, 8, flatten=1.3), PISTOL_TRIGGER)
    if style == "revolver":  # hammer
        b.add(box([0.04, 0.06, 0.025], [back + 0.02, slide_h + 0.02, 0], rotation("z", 0.5)), PISTOL_BARREL)
    return b
