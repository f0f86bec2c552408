"""Draws examples/i2v-example.png: a beach at sunset, made in code so the repo ships no photo; and
examples/i2v-example-end.png, the same beach a few seconds later (the boat sailed right, the sun
lower), an end image for first-last-frame workflows.

Sky, sun, sea with waves, sand and a sailboat: shapes with obvious motion for an image-to-video
model (waves, a drifting boat, clouds). Run it again to regenerate the files; the output is the same
every time.

    python examples/make_example.py [OUT.png [END.png]]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

WIDTH, HEIGHT = 768, 512
HORIZON = 250
SHORE = 400


def _gradient(draw: ImageDraw.ImageDraw, top: int, bottom: int, start: tuple, end: tuple) -> None:
    for y in range(top, bottom):
        t = (y - top) / max(bottom - top - 1, 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(start, end, strict=True))
        draw.line([(0, y), (WIDTH, y)], fill=colour)


def draw_scene(boat: int = 0, sun: int = 0) -> Image.Image:
    """The beach, the boat moved ``boat`` pixels right and the sun ``sun`` pixels lower."""
    image = Image.new("RGB", (WIDTH, HEIGHT))
    draw = ImageDraw.Draw(image)
    _gradient(draw, 0, HORIZON, (38, 52, 120), (250, 170, 110))  # dusk sky
    draw.ellipse([470, 160 + sun, 570, 260 + sun], fill=(255, 214, 140))  # the sun, half set
    for x, y, r in ((120, 70, 34), (160, 60, 42), (205, 74, 30), (560, 90, 26), (600, 82, 34)):
        draw.ellipse([x - r, y - r // 2, x + r, y + r // 2], fill=(246, 196, 170))  # clouds
    _gradient(draw, HORIZON, SHORE, (40, 80, 130), (60, 140, 160))  # sea
    for row in range(12):  # wave crests, denser towards the shore
        y = HORIZON + 8 + row * row * 1.0 + row * 4
        for x0 in range(-40, WIDTH, 48 + row * 6):
            points = [(x0 + i * 4, y + 3 * math.sin(i / 2.2 + row)) for i in range(10)]
            draw.line(points, fill=(200, 225, 235), width=1 + row // 4)
    _gradient(draw, SHORE, HEIGHT, (222, 196, 150), (196, 160, 112))  # sand
    draw.polygon([(0, SHORE), (WIDTH, SHORE - 10), (WIDTH, SHORE + 6), (0, SHORE + 14)], fill=(235, 240, 240))
    hull = [(300, 300), (380, 300), (366, 316), (314, 316)]
    draw.polygon([(x + boat, y) for x, y in hull], fill=(120, 60, 40))  # hull
    draw.polygon([(338 + boat, 230), (338 + boat, 298), (382 + boat, 298)], fill=(250, 248, 240))  # sail
    draw.line([(338 + boat, 226), (338 + boat, 300)], fill=(60, 40, 30), width=2)  # mast
    return image.filter(ImageFilter.SMOOTH)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("i2v-example.png")
    end = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).with_name("i2v-example-end.png")
    draw_scene().save(out, optimize=True)
    draw_scene(boat=160, sun=40).save(end, optimize=True)
    print(out)
    print(end)


if __name__ == "__main__":
    main()
