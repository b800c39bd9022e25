"""Car, Motorbike and Skateboard: length along x, front at +x, wheels on the ground (y = 0)."""

from __future__ import annotations

import numpy as np

from crosspoint.data.procedural._geometry import (
    Mesh,
    PartBuilder,
    align,
    beam,
    box,
    cylinder,
    ellipsoid,
    face_centres_normals,
    grid,
    loft_x,
    revolve,
    smooth_path,
    torus,
    tube,
    vec,
)

TO_Z = align([0, 1, 0], [0, 0, 1])
TO_X = align([0, 1, 0], [1, 0, 0])


def wheel(radius: float, width: float, hub: float = 0.6) -> Mesh:
    """Solid tyre with a recessed hub, axle along z, centred at the origin."""
    r, w = radius, width / 2
    radii = np.array([0, hub, 0.75, 0.93, 1, 1, 0.93, 0.75, hub, 0]) * r
    heights = np.array([-0.6, -0.7, -1, -1, -0.7, 0.7, 1, 1, 0.7, 0.6]) * w
    return revolve(radii, heights, 20).moved(TO_Z)


CAR_ROOF, CAR_HOOD, CAR_WHEEL, CAR_BODY = range(4)


def car(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    style = str(rng.choice(["sedan", "hatch", "suv", "sports", "pickup"], p=[0.35, 0.2, 0.2, 0.15, 0.1]))
    tall = style in ("suv", "pickup")
    width = rng.uniform(0.38, 0.46)
    r_w = rng.uniform(0.075, 0.09) * (1.2 if tall else 1.0)
    clearance = r_w * rng.uniform(0.35, 0.6) * (1.3 if tall else 1.0)
    belt = {
        "sports": rng.uniform(0.15, 0.19),
        "suv": rng.uniform(0.28, 0.34),
        "pickup": rng.uniform(0.26, 0.32),
    }
    belt_h = belt.get(style, rng.uniform(0.2, 0.25))
    axles = (0.5 - rng.uniform(0.14, 0.2), -0.5 + rng.uniform(0.14, 0.2))
    x = np.linspace(-0.5, 0.5, 41)
    ends = (np.abs(x) / 0.5) ** 8
    y_low = clearance + clearance * 0.8 * ends
    for xa in axles:  # wheel arches as a raised floor over each axle
        arch = min(r_w * rng.uniform(1.8, 2.0), belt_h - 0.05)
        y_low = np.maximum(
            y_low, clearance + (arch - clearance) * np.clip(1 - ((x - xa) / (1.3 * r_w)) ** 2, 0, 1) ** 0.5
        )
    hood_drop = rng.uniform(0.0, 0.05)
    y_high = (
        belt_h - hood_drop * np.clip((x - 0.1) / 0.4, 0, 1) - rng.uniform(0.0, 0.03) * np.clip(-x / 0.5, 0, 1)
    )
    y_high -= rng.uniform(0.02, 0.06) * ends
    half_w = width / 2 * (1 - 0.12 * (np.abs(x) / 0.5) ** 6)
    lower = loft_x(x, half_w, y_low, y_high, n=24, power=rng.uniform(3.5, 6))
    x_ws = {"sports": rng.uniform(-0.05, 0.05), "pickup": rng.uniform(0.1, 0.18)}.get(
        style, rng.uniform(0.05, 0.15)
    )
    centres, normals = face_centres_normals(lower)
    is_hood = (centres[:, 0] > x_ws + 0.01) & (normals[:, 1] > 0.5) & (centres[:, 1] > belt_h - 0.08)
    b.add(lower, np.where(is_hood, CAR_HOOD, CAR_BODY))
    _cabin(b, rng, style, x_ws, belt_h, half_w, x)
    if rng.random() < 0.7:  # mirrors
        b.add_mirrored(box([0.03, 0.03, 0.03], [x_ws - 0.03, belt_h + 0.02, width / 2 + 0.01]), CAR_BODY)
    if style == "sports" and rng.random() < 0.5:  # rear spoiler
        b.add(box([0.06, 0.01, width * 0.9], [-0.46, belt_h + 0.05, 0]), CAR_BODY)
        b.add_mirrored(box([0.02, 0.05, 0.01], [-0.46, belt_h + 0.02, width * 0.3]), CAR_BODY)
    tyre = wheel(r_w, rng.uniform(0.05, 0.075))
    for xa in axles:
        for side in (-1, 1):
            b.add(tyre.moved(None, [xa, r_w, side * (width / 2 - 0.025)]), CAR_WHEEL)
    return b


def _cabin(
    b: PartBuilder,
    rng: np.random.Generator,
    style: str,
    x_ws: float,
    belt: float,
    half_w: np.ndarray,
    xs: np.ndarray,
) -> None:
    """Greenhouse over the body: an open arch lofted along x; its flat top is the roof."""
    height = {"sports": rng.uniform(0.09, 0.12), "suv": rng.uniform(0.14, 0.19)}.get(
        style, rng.uniform(0.12, 0.16)
    )
    roof_front = x_ws - rng.uniform(0.14, 0.22) * (0.6 if style in ("suv", "pickup") else 1.0)
    if style == "pickup":
        back = rng.uniform(-0.12, -0.05)
        roof_back = back + 0.03
    elif style == "suv":
        back = -0.5 + rng.uniform(0.02, 0.04)
        roof_back = back + rng.uniform(0.02, 0.05)
    elif style in ("hatch", "sports"):
        back = -0.5 + rng.uniform(0.03, 0.08)
        roof_back = back + rng.uniform(0.1, 0.2)
    else:
        roof_back = roof_front - rng.uniform(0.2, 0.3)
        back = roof_back - rng.uniform(0.12, 0.2)
    roof_back = min(roof_back, roof_front - 0.05)
    top_h = belt + height
    xc = np.linspace(back, x_ws, 26)
    top = np.interp(xc, [back, roof_back, roof_front, x_ws], [belt, top_h, top_h, belt])
    hw = np.interp(xc, xs, half_w) * 0.96
    theta = np.linspace(0, np.pi, 13)
    px = np.sign(np.cos(theta)) * np.abs(np.cos(theta)) ** (2 / 3)
    py = np.abs(np.sin(theta)) ** (2 / 3)
    inset = rng.uniform(0.72, 0.86)
    z = px[None] * hw[:, None] * (1 - (1 - inset) * py[None])
    y = belt - 0.01 + py[None] * (top[:, None] - belt + 0.01)
    pts = np.stack([np.broadcast_to(xc[:, None], z.shape), y, z], axis=-1)
    cabin = grid(pts, wrap_v=False)
    centres, normals = face_centres_normals(cabin)
    is_roof = (np.abs(normals[:, 1]) > 0.9) & (centres[:, 1] > belt + 0.8 * height)
    b.add(cabin, np.where(is_roof, CAR_ROOF, CAR_BODY))


MOTO_TANK, MOTO_SEAT, MOTO_WHEEL, MOTO_HANDLE, MOTO_LIGHT, MOTO_BODY = range(6)


def motorbike(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    style = str(rng.choice(["standard", "cruiser", "sport", "dirt"], p=[0.35, 0.25, 0.25, 0.15]))
    r = rng.uniform(0.16, 0.2) * (1.1 if style == "dirt" else 1.0)
    tyre = r * rng.uniform(0.1, 0.17)
    base = rng.uniform(0.62, 0.75) * (1.1 if style == "cruiser" else 1.0)
    rear, front = np.array([-base / 2, r, 0]), np.array([base / 2, r, 0])
    spokes = int(rng.choice([5, 6, 8]))
    for axle in (rear, front):
        b.add(torus(r - tyre, tyre, 24, 8).moved(None, axle), MOTO_WHEEL)
        b.add(cylinder(r * 0.22, axle - vec(0, 0, 0.03), axle + vec(0, 0, 0.03), 12), MOTO_WHEEL)
        for k in range(spokes):
            a = 2 * np.pi * k / spokes
            b.add(beam(axle, axle + (r - 1.8 * tyre) * vec(np.cos(a), np.sin(a), 0), 0.008), MOTO_WHEEL)
    head = np.array([front[0] - r * rng.uniform(0.5, 0.9), r * rng.uniform(2.0, 2.5), 0])
    if style == "dirt":
        head[1] += 0.4 * r
    for side in (-1, 1):  # fork
        off = np.array([0, 0, side * rng.uniform(0.04, 0.06)])
        b.add(cylinder(0.014, front + off, head + off + vec(0, 0.05, 0), 8), MOTO_BODY)
    bar_w = rng.uniform(0.15, 0.22)
    rise = {"cruiser": rng.uniform(0.08, 0.16), "sport": -0.02}.get(style, rng.uniform(0.0, 0.06))
    grip = head + vec(-rng.uniform(0.03, 0.1), 0.07 + rise, 0)
    bar = smooth_path(
        [
            grip + vec(0, 0, -bar_w),
            grip + vec(0.04, -0.5 * rise, -0.06),
            grip + vec(0.04, -0.5 * rise, 0.06),
            grip + vec(0, 0, bar_w),
        ],
        2,
    )
    b.add(tube(bar, rng.uniform(0.01, 0.016), 8), MOTO_HANDLE)
    b.add(cylinder(0.015, head + vec(0, 0.04, 0), grip + vec(0.04, -0.5 * rise, 0), 8), MOTO_BODY)  # riser
    light_r = rng.uniform(0.035, 0.055)
    lamp = head + vec(rng.uniform(0.06, 0.1), -rng.uniform(0.0, 0.06), 0)
    b.add(
        revolve([0, light_r, light_r, 0.6 * light_r, 0], [-0.05, -0.05, 0, 0.02, 0.025], 16).moved(
            TO_X, lamp
        ),
        MOTO_LIGHT,
    )
    tank_c = head + vec(-rng.uniform(0.14, 0.2), -rng.uniform(0.04, 0.09), 0)
    tank_r = np.array([rng.uniform(0.11, 0.16), rng.uniform(0.055, 0.08), rng.uniform(0.07, 0.1)])
    b.add(ellipsoid(tank_r, tank_c, 8, 14), MOTO_TANK)
    seat_front = tank_c[0] - tank_r[0] * 0.8
    seat_len = rng.uniform(0.2, 0.32)
    seat_y = tank_c[1] - rng.uniform(0.0, 0.06) - (0.06 if style == "cruiser" else 0.0)
    sx = np.linspace(seat_front - seat_len, seat_front, 10)
    ramp = np.clip((sx - sx[0]) / seat_len, 0, 1)
    seat_top = seat_y + 0.03 + (0.03 if style == "sport" else 0.0) * (1 - ramp)
    seat_w = rng.uniform(0.06, 0.09) * (0.7 + 0.3 * np.sin(np.pi * ramp) ** 0.3)
    b.add(loft_x(sx, seat_w, seat_y - 0.03, seat_top, 14, 4), MOTO_SEAT)
    _moto_body(b, rng, style, r, tyre, rear, front, head, sx[0], seat_y)
    return b


def _moto_body(
    b: PartBuilder,
    rng: np.random.Generator,
    style: str,
    r: float,
    tyre: float,
    rear: np.ndarray,
    front: np.ndarray,
    head: np.ndarray,
    seat_back: float,
    seat_y: float,
) -> None:
    """Frame, engine, swingarm, fenders, exhaust and (sport) fairing: ShapeNetPart's 'body'."""
    engine_c = np.array([rng.uniform(-0.08, 0.04), r * rng.uniform(0.9, 1.1), 0])
    size = np.array([rng.uniform(0.24, 0.34), rng.uniform(0.18, 0.26), rng.uniform(0.13, 0.2)])
    b.add(box(size, engine_c), MOTO_BODY)
    # side cover under the seat and a tail cowl running back over the rear wheel
    cover_top = seat_y - 0.03
    cover_x = (seat_back + engine_c[0] - size[0] / 2) / 2
    b.add(
        box(
            [
                abs(engine_c[0] - size[0] / 2 - seat_back) + 0.04,
                rng.uniform(0.08, 0.14),
                rng.uniform(0.1, 0.16),
            ],
            [cover_x, cover_top - 0.06, 0],
        ),
        MOTO_BODY,
    )
    tx = np.linspace(seat_back - rng.uniform(0.08, 0.2), seat_back + 0.05, 8)
    s = (tx - tx[0]) / (tx[-1] - tx[0])
    b.add(
        loft_x(tx, 0.03 + 0.05 * s, cover_top - 0.04 - 0.02 * s, cover_top + 0.01 + 0.01 * s, 12, 3),
        MOTO_BODY,
    )
    for lean in (-0.4, 0.4) if style == "cruiser" else (0.2,):
        top = engine_c + vec(np.sin(lean) * 0.14, size[1] / 2 + 0.08, 0)
        b.add(cylinder(0.045, engine_c + vec(0, size[1] / 2 - 0.02, 0), top, 12), MOTO_BODY)
    pivot = engine_c + vec(-size[0] / 2 - 0.02, -0.02, 0)
    frame = [
        head,
        engine_c + vec(size[0] / 2 + 0.02, -size[1] / 2, 0),
        pivot,
        vec(seat_back, seat_y - 0.02, 0),
        head,
    ]
    b.add(tube(smooth_path(frame, 1), 0.016, 8), MOTO_BODY)
    for side in (-1, 1):
        off = np.array([0, 0, side * 0.06])
        b.add(beam(pivot + off, rear + off, 0.035, 0.02), MOTO_BODY)
    for axle, t0, t1 in ((rear, 0.2, 1.9), (front, 0.5, 2.2) if style != "dirt" else (front, 1.0, 1.9)):
        t = np.linspace(t0, t1, 12)
        gap = r + 0.015 + (0.06 if style == "dirt" and axle is front else 0.0)
        path = axle + np.stack([gap * np.cos(t), gap * np.sin(t), np.zeros_like(t)], -1)
        b.add(tube(path, tyre * 1.4, 10, flatten=0.25), MOTO_BODY)
    pipe = smooth_path(
        [
            engine_c + vec(0.05, -0.08, 0.06),
            engine_c + vec(-0.1, -0.1, 0.09),
            rear + vec(0.15, 0.05, 0.1),
            rear + vec(0.02, 0.12, 0.1),
        ],
        2,
    )
    b.add(tube(pipe, 0.02, 8), MOTO_BODY)
    if style == "sport":  # fairing round the steering head
        fx = np.linspace(head[0] - 0.12, head[0] + 0.14, 10)
        s = (fx - fx[0]) / (fx[-1] - fx[0])
        b.add(
            loft_x(
                fx,
                0.09 * np.sqrt(1 - s**2) + 0.01,
                head[1] - 0.25 + 0.1 * s,
                head[1] + 0.05 - 0.03 * s,
                14,
                2.5,
            ),
            MOTO_BODY,
        )


SK_WHEEL, SK_DECK, SK_TRUCK = range(3)


def skateboard(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    style = str(rng.choice(["street", "longboard", "cruiser"], p=[0.6, 0.25, 0.15]))
    w = rng.uniform(0.12, 0.16) * (0.85 if style == "cruiser" else 1.0)
    t = rng.uniform(0.012, 0.02)
    x = np.linspace(-0.5, 0.5, 41)
    if style == "longboard":
        half = w * np.sqrt(np.clip(1 - (np.abs(2 * x) ** rng.uniform(2.5, 5)), 0.01, 1))
        kick = rng.uniform(0.0, 0.02) * (2 * x) ** 2
    else:
        rr = w * rng.uniform(0.8, 1.2)
        tip = np.clip((np.abs(x) - (0.5 - rr)) / rr, 0, 1)
        half = w * np.sqrt(np.clip(1 - tip**2, 0.02, 1))
        start = rng.uniform(0.33, 0.4)
        heights = (rng.uniform(0.05, 0.09), rng.uniform(0.05, 0.09) * (0.3 if style == "cruiser" else 1.0))
        kick = np.where(x < 0, heights[0], heights[1]) * (
            np.clip((np.abs(x) - start) / (0.5 - start), 0, 1) ** 1.5
        )
    b.add(loft_x(x, half, kick - t / 2, kick + t / 2, n=16, power=6), SK_DECK)
    if rng.random() < 0.08:  # deck only, as some ShapeNet boards are
        return b
    x_t = rng.uniform(0.28, 0.36)
    r_w = rng.uniform(0.025, 0.035) * (1.3 if style != "street" else 1.0)
    hanger_z = w * rng.uniform(0.6, 0.8)
    axle_y = -t / 2 - rng.uniform(0.035, 0.05)
    tyre = wheel(r_w, rng.uniform(0.025, 0.035), hub=0.5)
    for xt in (-x_t, x_t):
        b.add(box([0.05, 0.008, 0.045], [xt, -t / 2 - 0.004, 0]), SK_TRUCK)
        b.add(box([0.025, -axle_y - t / 2, 0.025], [xt, (axle_y - t / 2) / 2, 0]), SK_TRUCK)
        b.add(cylinder(0.008, [xt, axle_y, -hanger_z], [xt, axle_y, hanger_z], 10), SK_TRUCK)
        for side in (-1, 1):
            b.add(tyre.moved(None, [xt, axle_y, side * (hanger_z + 0.018)]), SK_WHEEL)
    return b
