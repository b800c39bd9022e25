"""Airplane and Rocket: bodies along x with the nose at +x, as ShapeNetPart stores them."""

from __future__ import annotations

import numpy as np

from crosspoint.data.procedural._geometry import (
    Mesh,
    PartBuilder,
    align,
    box,
    cone,
    extrude,
    loft_x,
    revolve,
    rotation,
    vec,
)

TO_X = align([0, 1, 0], [1, 0, 0])  # revolutions are built about y, aircraft point along x


def _panel(planform: np.ndarray, thickness: np.ndarray | float, plane: str) -> Mesh:
    """Thin plate from a planform [k, 2] (first coord along x): 'xz' lies flat, 'xy' stands up."""
    m = extrude(planform, thickness)
    return m.moved(rotation("x", np.pi / 2)) if plane == "xz" else m


def _trapezoid(root_le: float, root_chord: float, span: float, sweep: float, taper: float) -> np.ndarray:
    """Wing-like planform: root on the axis, tip at `span`; x decreases towards the trailing edge."""
    tip_le = root_le - span * np.tan(sweep)
    return np.array(
        [[root_le, 0], [tip_le, span], [tip_le - taper * root_chord, span], [root_le - root_chord, 0]]
    )


AIR_BODY, AIR_WING, AIR_TAIL, AIR_ENGINE = range(4)


def _fuselage(rng: np.random.Generator, style: str) -> tuple[Mesh, float, np.ndarray, np.ndarray]:
    radius = rng.uniform(0.04, 0.075)
    nose = rng.uniform(0.05, 0.09) if style == "prop" else rng.uniform(0.09, 0.18)
    tail = rng.uniform(0.18, 0.32)
    tail_end = rng.uniform(0.45, 0.7) if style == "jet" else rng.uniform(0.1, 0.3)
    x = np.linspace(-0.5, 0.5, 28)
    t = x + 0.5
    r = np.full_like(x, radius)
    front = t > 1 - nose
    r[front] = radius * np.sqrt(np.clip(1 - ((t[front] - (1 - nose)) / nose) ** 2, 0.004, 1))
    back = t < tail
    r[back] = radius * (tail_end + (1 - tail_end) * (t[back] / tail) ** 0.7)
    lift = np.where(back, (1 - t / tail) * radius * rng.uniform(0.3, 0.8), 0.0)  # tail cone sweeps up
    height = rng.uniform(1.0, 1.15)
    mesh = loft_x(x, r, lift - r * height, lift + r * height, n=16, power=2.2)
    return mesh, radius, r, lift


def airplane(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    style = str(rng.choice(["airliner", "jet", "prop"], p=[0.5, 0.3, 0.2]))
    body, radius, r_of_x, lift = _fuselage(rng, style)
    b.add(body, AIR_BODY)

    if style == "jet":  # delta-ish wing far back
        chord, taper, span = rng.uniform(0.3, 0.45), rng.uniform(0.05, 0.25), rng.uniform(0.22, 0.35)
        sweep, root_le, wing_y = np.radians(rng.uniform(40, 60)), rng.uniform(0.0, 0.12), 0.0
    elif style == "prop":  # straight high wing
        chord, taper, span = rng.uniform(0.11, 0.17), rng.uniform(0.6, 1.0), rng.uniform(0.45, 0.62)
        sweep, root_le, wing_y = np.radians(rng.uniform(0, 6)), rng.uniform(0.12, 0.22), 0.8 * radius
    else:
        chord, taper, span = rng.uniform(0.15, 0.25), rng.uniform(0.25, 0.5), rng.uniform(0.45, 0.65)
        sweep, root_le = np.radians(rng.uniform(18, 35)), rng.uniform(0.05, 0.15)
        wing_y = radius * float(rng.choice([-0.6, 0.0, 0.7], p=[0.6, 0.25, 0.15]))
    dihedral = np.radians(rng.uniform(0, 7)) if style != "jet" else np.radians(rng.uniform(-3, 3))
    plan = _trapezoid(root_le, chord, span, sweep, taper)
    thick = np.array([0.12, 0.1, 0.1, 0.12]) * chord * np.array([1, taper, taper, 1])
    wing = _panel(plan, np.maximum(thick, 0.006), "xz").moved(rotation("x", -dihedral), [0, wing_y, 0])
    b.add_mirrored(wing, AIR_WING)

    # tail: horizontal stabilisers + one fin (or two canted fins on jets), T-tail sometimes
    h_chord = chord * rng.uniform(0.35, 0.6) if style != "jet" else rng.uniform(0.1, 0.16)
    h_span = span * rng.uniform(0.3, 0.42)
    v_chord = rng.uniform(0.11, 0.2)
    v_height = rng.uniform(0.1, 0.18)
    tail_x = -0.5 + rng.uniform(0.0, 0.04)
    top = float(lift[0] + r_of_x[0])
    t_tail = style != "jet" and rng.random() < 0.25
    fin = _panel(
        _trapezoid(tail_x + v_chord, v_chord, v_height, np.radians(rng.uniform(25, 50)), 0.55), 0.012, "xy"
    )
    if style == "jet":
        for side in (-1, 1):
            cant = rotation("x", side * np.radians(rng.uniform(10, 25)))
            b.add(fin.moved(cant, [0, top * 0.6, side * radius * 0.7]), AIR_TAIL)
    else:
        b.add(fin.moved(None, [0, top * 0.8, 0]), AIR_TAIL)
    h_y = top * 0.8 + (v_height * 0.95 if t_tail else 0.0)
    h_le = tail_x + h_chord + (v_height * 0.6 if t_tail else rng.uniform(0.0, 0.04))
    stab = _panel(_trapezoid(h_le, h_chord, h_span, np.radians(rng.uniform(15, 35)), 0.5), 0.01, "xz")
    b.add_mirrored(stab.moved(None, [0, h_y, 0]), AIR_TAIL)

    _engines(b, rng, style, radius, root_le, chord, span, sweep, dihedral, wing_y)
    return b


def _nacelle(length: float, radius: float, front: np.ndarray) -> Mesh:
    prof = np.array([0.7, 0.95, 1.0, 0.95, 0.85, 0.55]) * radius
    ys = np.array([0.0, 0.2, 0.45, 0.75, 0.95, 1.0]) * length
    return revolve(prof[::-1], -ys[::-1] * length, 14, cap_start=True, cap_end=True).moved(TO_X, front)


def _engines(
    b: PartBuilder,
    rng: np.random.Generator,
    style: str,
    radius: float,
    root_le: float,
    chord: float,
    span: float,
    sweep: float,
    dihedral: float,
    wing_y: float,
) -> None:
    if style == "jet":  # exhaust nozzles at the tail + intakes beside the cockpit
        count = int(rng.choice([1, 2]))
        nr = radius * (0.75 if count == 1 else 0.5)
        for k in range(count):
            z = 0.0 if count == 1 else (k - 0.5) * 2 * nr * 1.05
            b.add(cone(nr * 0.95, nr * 0.8, [-0.46, 0, z], [-0.56, 0, z], 14), AIR_ENGINE)
        il = rng.uniform(0.15, 0.25)
        intake = box(
            [il, radius * 0.9, radius * 0.5], [rng.uniform(-0.02, 0.12), -0.1 * radius, radius * 1.05]
        )
        b.add_mirrored(intake, AIR_ENGINE)
        return
    if style == "prop" and rng.random() < 0.6:  # engine in the nose: cowling, spinner, blades
        b.add(cone(radius * 1.05, radius * 0.85, [0.4, 0, 0], [0.5, 0, 0], 16), AIR_ENGINE)
        b.add(cone(radius * 0.35, 0.0, [0.5, 0, 0], [0.55, 0, 0], 10), AIR_ENGINE)
        blades = int(rng.choice([2, 3, 4]))
        length = rng.uniform(0.12, 0.2)
        for k in range(blades):
            blade = box([0.008, length, 0.025], [0.52, length / 2, 0])
            b.add(blade.moved(rotation("x", 2 * np.pi * k / blades + rng.uniform(0, 1))), AIR_ENGINE)
        return
    rear = style == "airliner" and rng.random() < 0.15
    length = rng.uniform(0.1, 0.16) if style == "airliner" else rng.uniform(0.12, 0.18)
    er = rng.uniform(0.025, 0.042)
    if rear:  # two engines on the tail cone
        for side in (-1, 1):
            b.add(
                _nacelle(length, er, np.array([-0.22, radius * 0.6, side * (radius * 0.7 + er)])), AIR_ENGINE
            )
        return
    count = 2 if style == "prop" or rng.random() < 0.7 else 4
    stations = [rng.uniform(0.28, 0.4)] if count == 2 else [rng.uniform(0.22, 0.3), rng.uniform(0.55, 0.7)]
    for frac in stations:
        z = frac * span
        le = root_le - z * np.tan(sweep)
        y = wing_y + z * np.tan(dihedral)
        front = np.array([le + length * 0.45, y - er * 1.3, z])
        if style == "prop":
            front[1] = y
        pylon = box([length * 0.5, er * 1.0, er * 0.4], front + vec(-length * 0.45, er * 0.8, 0))
        for side in (-1, 1):
            flip = np.array([1, 1, side])
            b.add(_nacelle(length, er, front * flip), AIR_ENGINE)
            b.add(Mesh(pylon.v * flip, pylon.f), AIR_ENGINE)
            if style == "prop":
                for k in range(3):
                    blade = box([0.006, rng.uniform(0.07, 0.1), 0.018], [0, 0.04, 0])
                    b.add(
                        blade.moved(rotation("x", 2 * np.pi * k / 3), front * flip + vec(0.005, 0, 0)),
                        AIR_ENGINE,
                    )


ROCKET_BODY, ROCKET_FIN, ROCKET_NOSE = range(3)


def rocket(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    radius = rng.uniform(0.035, 0.07)
    nose_len = rng.uniform(0.1, 0.22)
    tail_x = -0.5
    nose_x = 0.5 - nose_len
    # body: up to three stages whose radius steps down towards the nose
    stages = int(rng.choice([1, 2, 3], p=[0.5, 0.35, 0.15]))
    cuts = np.sort(rng.uniform(tail_x + 0.15, nose_x - 0.1, stages - 1))
    edges = np.concatenate([[tail_x], cuts, [nose_x]])
    radii = radius * np.cumprod(np.concatenate([[1.0], rng.uniform(0.7, 1.0, stages - 1)]))
    rs, xs = [], []
    for k in range(stages):
        rs += [radii[k], radii[k]]
        xs += [edges[k], edges[k + 1] - (0.01 if k < stages - 1 else 0.0)]
    body = revolve([0.0, *rs], [tail_x, *xs], 20, cap_end=False)
    b.add(body.moved(TO_X), ROCKET_BODY)
    top_r = radii[-1]
    if rng.random() < 0.6:  # engine bell
        bell = rng.uniform(0.5, 0.9) * radius
        b.add(
            cone(
                radius * 0.5, bell, [tail_x, 0, 0], [tail_x - rng.uniform(0.03, 0.07), 0, 0], 16, caps=False
            ),
            ROCKET_BODY,
        )
    # nose: cone or ogive
    t = np.linspace(0, 1, 10)
    shape = t if rng.random() < 0.3 else np.sqrt(1 - (1 - t) ** 2) ** rng.uniform(0.8, 1.4)
    nose = revolve(top_r * shape[::-1] + 1e-4, nose_x + nose_len * t, 20, cap_start=True)
    b.add(nose.moved(TO_X), ROCKET_NOSE)
    # fins at the tail, evenly spaced round the axis
    count = int(rng.choice([3, 4, 6], p=[0.35, 0.55, 0.1]))
    chord = rng.uniform(0.12, 0.3)
    span = rng.uniform(0.7, 1.6) * radius
    sweep = np.radians(rng.uniform(20, 60))
    root_le = tail_x + chord + rng.uniform(-0.03, 0.05)
    plan = _trapezoid(root_le, chord, span, sweep, rng.uniform(0.2, 0.8))
    plan[:, 1] += radius * 0.9
    fin = extrude(plan, rng.uniform(0.006, 0.014))  # standing in x-y
    phase = rng.uniform(0, np.pi)
    for k in range(count):
        b.add(fin.moved(rotation("x", phase + 2 * np.pi * k / count)), ROCKET_FIN)
    if rng.random() < 0.2:  # strap-on boosters with their own cones
        br = radius * rng.uniform(0.3, 0.5)
        bl = rng.uniform(0.3, 0.5)
        for k in range(int(rng.choice([2, 4]))):
            ang = phase + np.pi / count + 2 * np.pi * k / 4
            off = np.array([0, np.cos(ang), np.sin(ang)]) * (radius + br)
            b.add(revolve([0, br, br], [tail_x, tail_x, tail_x + bl], 12).moved(TO_X, off), ROCKET_BODY)
            b.add(
                cone(br, 0.0, off + vec(tail_x + bl, 0, 0), off + vec(tail_x + bl + 2.5 * br, 0, 0), 12),
                ROCKET_BODY,
            )
    return b
