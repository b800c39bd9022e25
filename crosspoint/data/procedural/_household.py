"""Bag, Cap, Laptop and Mug.

Frames follow the real shapes: bags thin in x with the handle up; caps with the peak towards +x at the
bottom of the crown; laptops open with the keyboard flat towards +x and the screen rising at -x; mugs
upright with the handle at +x.
"""

from __future__ import annotations

import numpy as np

from crosspoint.data.procedural._geometry import (
    PartBuilder,
    arc,
    box,
    ellipsoid,
    grid,
    loft_y,
    revolve,
    rotation,
    smooth_path,
    tube,
    vec,
)

BAG_HANDLE, BAG_BODY = range(2)


def bag(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    style = str(rng.choice(["tote", "handbag", "shoulder", "case"], p=[0.3, 0.3, 0.2, 0.2]))
    height = rng.uniform(0.4, 0.6)
    width = rng.uniform(0.7, 1.0)
    depth = rng.uniform(0.15, 0.3)
    y = np.linspace(0, height, 12)
    s = y / height
    pinch = 0.0 if style == "case" else rng.uniform(0.3, 0.8)
    half_x = depth / 2 * (1 - pinch * s**2) + 0.005
    half_z = width / 2 * (1 - rng.uniform(0.0, 0.2) * s)
    power = rng.uniform(6, 10) if style == "case" else rng.uniform(2.5, 5)
    b.add(loft_y(y, half_x, half_z, 24, power), BAG_BODY)
    radius = rng.uniform(0.008, 0.016)
    top_w = float(half_z[-1])
    if style == "tote":  # one handle on each face
        a = top_w * rng.uniform(0.3, 0.6)
        rise = rng.uniform(0.15, 0.35) * height
        for side in (-1, 1):
            path = arc([side * float(half_x[-1]) * 0.7, height * 0.97, 0], a, rise, 0, np.pi, 16, "yz")
            b.add(tube(path, radius, 8), BAG_HANDLE)
    elif style == "shoulder":  # a long strap over the top
        rise = rng.uniform(0.4, 0.9) * height
        path = arc([0, height * 0.95, 0], top_w * 0.95, rise, 0, np.pi, 24, "yz")
        b.add(tube(path, radius, 8, flatten=0.4), BAG_HANDLE)
    else:  # one handle in the middle: round for handbags, squared for cases
        a = top_w * rng.uniform(0.2, 0.45)
        rise = rng.uniform(0.08, 0.25) * height
        if style == "case":
            path = smooth_path(
                [[0, height, -a], [0, height + rise, -a], [0, height + rise, a], [0, height, a]], 2
            )
            b.add(tube(path, radius * 1.5, 8), BAG_HANDLE)
        else:
            b.add(tube(arc([0, height * 0.97, 0], a, rise * 1.5, 0, np.pi, 16, "yz"), radius, 8), BAG_HANDLE)
    return b


CAP_PANELS, CAP_PEAK = range(2)


def cap(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    radius = 0.5
    height = radius * rng.uniform(0.55, 0.9)
    stretch = rng.uniform(1.0, 1.15)  # heads are longer front to back
    phi = np.linspace(0, np.pi / 2, 10)
    crown = revolve(radius * np.cos(phi) + 1e-4, height * np.sin(phi) ** rng.uniform(0.8, 1.1), 28)
    b.add(crown.moved(None, None, [stretch, 1, 1]), CAP_PANELS)
    if rng.random() < 0.5:  # button on top
        b.add(ellipsoid([0.03, 0.015, 0.03], [0, height, 0], 4, 10), CAP_PANELS)
    # peak: a sheet from the front of the rim outwards, drooping and curled across
    half_angle = np.radians(rng.uniform(50, 75))
    reach = radius * rng.uniform(0.55, 0.85)
    droop = radius * rng.uniform(0.0, 0.15)
    curl = rng.uniform(0.0, 0.35)
    a = np.linspace(-half_angle, half_angle, 17)
    u = np.linspace(0, 1, 6)
    r_in = radius * 0.98
    r_out = r_in + reach * np.cos(a / half_angle * np.pi / 2) ** 0.6
    r = r_in + (r_out - r_in)[None, :] * u[:, None]
    x, z = stretch * r * np.cos(a)[None, :], r * np.sin(a)[None, :]
    y = -droop * u[:, None] ** 1.5 - curl * radius * (z / radius) ** 2 * u[:, None]
    sheet = np.stack([x, np.broadcast_to(y, x.shape), z], axis=-1)
    thick = 0.012
    b.add(grid(sheet, wrap_v=False), CAP_PEAK)
    b.add(grid(sheet - vec(0, thick, 0), wrap_v=False), CAP_PEAK)
    return b


LAPTOP_KEYBOARD, LAPTOP_SCREEN = range(2)


def laptop(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    depth = rng.uniform(0.55, 0.75)
    width = depth * rng.uniform(1.25, 1.6)
    base_t = rng.uniform(0.015, 0.04)
    b.add(box([depth, base_t, width], [0, base_t / 2, 0]), LAPTOP_KEYBOARD)
    keys = box([depth * 0.4, 0.006, width * 0.85], [-depth * 0.12, base_t + 0.003, 0])
    b.add(keys, LAPTOP_KEYBOARD)
    if rng.random() < 0.7:  # touchpad
        b.add(box([depth * 0.22, 0.004, width * 0.3], [depth * 0.28, base_t + 0.002, 0]), LAPTOP_KEYBOARD)
    screen_h = depth * rng.uniform(0.85, 1.05)
    screen_t = rng.uniform(0.008, 0.022)
    opening = np.radians(rng.uniform(95, 135))  # angle between keyboard and screen
    lid = box([screen_t, screen_h, width], [-screen_t / 2, screen_h / 2, 0])
    hinge = np.array([-depth / 2 + 0.01, base_t, 0])
    b.add(lid.moved(rotation("z", opening - np.pi / 2), hinge), LAPTOP_SCREEN)
    return b


MUG_HANDLE, MUG_BODY = range(2)


def mug(rng: np.random.Generator) -> PartBuilder:
    b = PartBuilder()
    radius = 0.5
    height = 2 * radius * rng.uniform(0.8, 1.5)
    top_r = radius * rng.uniform(0.9, 1.15)
    bulge = radius * rng.uniform(-0.05, 0.12)
    wall = radius * rng.uniform(0.04, 0.08)
    t = np.linspace(0, 1, 8)
    outer = radius + (top_r - radius) * t + bulge * np.sin(np.pi * t)
    inner = outer[::-1] - wall
    floor = height * 0.06
    radii = np.concatenate([[0.0], outer, inner, [0.0]])
    heights = np.concatenate([[0.0], height * t, floor + (height - floor) * t[::-1], [floor]])
    b.add(revolve(radii, heights, 28), MUG_BODY)
    # handle in the x-y plane, from high on the side round to low on the side
    style = str(rng.choice(["c", "d", "ear", "ring"], p=[0.4, 0.3, 0.2, 0.1]))
    y_top = height * rng.uniform(0.72, 0.9)
    y_bot = height * rng.uniform(0.1, 0.35)
    reach = radius * rng.uniform(0.7, 1.2)
    x_top = float(np.interp(y_top / height, t, outer)) - wall
    x_bot = float(np.interp(y_bot / height, t, outer)) - wall
    if style == "c":
        path = arc(
            [min(x_top, x_bot), (y_top + y_bot) / 2, 0], reach, (y_top - y_bot) / 2, np.pi / 2, -np.pi / 2, 16
        )
        path[0, 0], path[-1, 0] = x_top, x_bot
    elif style == "d":
        path = smooth_path(
            [[x_top, y_top, 0], [x_top + reach, y_top, 0], [x_bot + reach, y_bot, 0], [x_bot, y_bot, 0]], 3
        )
    elif style == "ear":  # wide at the top, pinched at the bottom
        path = smooth_path(
            [
                [x_top, y_top, 0],
                [x_top + reach * 1.1, y_top + 0.02, 0],
                [x_top + reach * 0.9, y_bot + 0.1, 0],
                [x_bot + reach * 0.2, y_bot, 0],
                [x_bot, y_bot, 0],
            ],
            3,
        )
    else:  # small ring near the top
        r = (y_top - y_bot) / 4
        path = arc([x_top + r * 0.8, y_top - r, 0], r, r, np.pi * 0.8, -np.pi * 0.8, 20)
    b.add(tube(path, radius * rng.uniform(0.1, 0.18), 10, flatten=rng.uniform(0.45, 1.0)), MUG_HANDLE)
    return b
