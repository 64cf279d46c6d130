"""Draw CloudBuffer's icons: the PNGs in pwa/icons/ (192, 512, maskable 512).

A development tool, run by hand after changing the design; the generated
files are committed and the app does not depend on this script:

    .venv/bin/python pwa/tools/make_icons.py

Pure Python (zlib + struct), no imaging library: every shape is a signed
distance function, and a pixel's coverage of a shape is its distance to the
edge clamped to one pixel, which anti-aliases the edges. icon.svg is the same
drawing by hand; keep the two in step.
"""
from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "icons"

BLUE = (0x33, 0x58, 0xD4)
DEEP = (0x24, 0x3F, 0xA8)
WHITE = (0xFF, 0xFF, 0xFF)
CLIP = (0xC9, 0xD5, 0xFB)


def rounded_rect(x0, y0, x1, y1, r):
    cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2 - r, (y1 - y0) / 2 - r

    def sdf(x, y):
        qx, qy = abs(x - cx) - hx, abs(y - cy) - hy
        outside = math.hypot(max(qx, 0.0), max(qy, 0.0))
        return outside + min(max(qx, qy), 0.0) - r
    return sdf


def circle(cx, cy, r):
    return lambda x, y: math.hypot(x - cx, y - cy) - r


def union(*shapes):
    return lambda x, y: min(shape(x, y) for shape in shapes)


def drawing(full_bleed: bool):
    """(shape, colour) from back to front, in units of the icon's size (0..1)."""
    background = rounded_rect(0, 0, 1, 1, 0.0 if full_bleed else 0.22)
    cloud = union(circle(0.415, 0.555, 0.085), circle(0.515, 0.5, 0.11), circle(0.6, 0.565, 0.075),
                  rounded_rect(0.33, 0.56, 0.675, 0.64, 0.04))
    return [
        (background, BLUE),
        (rounded_rect(0.27, 0.22, 0.73, 0.82, 0.06), WHITE),
        (rounded_rect(0.38, 0.155, 0.62, 0.29, 0.045), CLIP),
        (rounded_rect(0.43, 0.185, 0.57, 0.23, 0.02), DEEP),
        (cloud, BLUE),
        (rounded_rect(0.34, 0.7, 0.66, 0.725, 0.0125), CLIP),
    ]


def render(size: int, *, maskable: bool = False) -> bytes:
    shapes = drawing(full_bleed=maskable)
    # A maskable icon may be cropped to a circle of 80 % of its size: the
    # drawing (but not the background) shrinks into that safe zone.
    scale = 0.78 if maskable else 1.0
    rows = bytearray()
    for py in range(size):
        rows.append(0)  # PNG filter: none
        for px in range(size):
            u, v = (px + 0.5) / size, (py + 0.5) / size
            r = g = b = 0.0
            a = 0.0
            for index, (shape, colour) in enumerate(shapes):
                if index == 0:
                    x, y = u, v
                else:
                    x, y = 0.5 + (u - 0.5) / scale, 0.5 + (v - 0.5) / scale
                distance = shape(x, y) * size * (1 if index == 0 else scale)
                coverage = min(1.0, max(0.0, 0.5 - distance))
                if coverage == 0.0:
                    continue
                # "over" compositing, premultiplied
                r = colour[0] * coverage + r * (1 - coverage)
                g = colour[1] * coverage + g * (1 - coverage)
                b = colour[2] * coverage + b * (1 - coverage)
                a = coverage + a * (1 - coverage)
            if a > 0:
                rows += bytes((round(r / a), round(g / a), round(b / a), round(a * 255)))
            else:
                rows += b"\0\0\0\0"
    return png(size, size, bytes(rows))


def png(width: int, height: int, raw_rgba_rows: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw_rgba_rows, 9))
            + chunk(b"IEND", b""))


def main() -> None:
    ICONS.mkdir(parents=True, exist_ok=True)
    for name, size, maskable in (("icon-192.png", 192, False), ("icon-512.png", 512, False),
                                 ("icon-maskable-512.png", 512, True)):
        (ICONS / name).write_bytes(render(size, maskable=maskable))
        print("wrote", ICONS / name)


if __name__ == "__main__":
    main()
