"""Link-preview images: the 1200x630 picture a share link unfurls with (``og:image``), drawn
per program from its name and offer, so every program has one without uploading anything.

Drawn with Pillow's bundled font, once per (program, name, offer) in each worker; unfurlers
fetch it once and cache it.
"""

from __future__ import annotations

import functools
import io
import textwrap

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1200, 630
BACKGROUND = (17, 24, 39)
ACCENT = (99, 102, 241)
TEXT = (255, 255, 255)
MUTED = (203, 213, 225)


def _fit(draw: ImageDraw.ImageDraw, text: str, size: int, width: int) -> list[str]:
    """``text`` wrapped to lines no wider than ``width`` pixels at ``size`` (at most 3)."""
    font = ImageFont.load_default(size=size)
    chars = max(8, len(text))
    while chars > 8:
        lines = textwrap.wrap(text, chars) or [""]
        if all(draw.textlength(line, font=font) <= width for line in lines):
            return lines[:3]
        chars -= 2
    return textwrap.wrap(text, 8)[:3]


@functools.lru_cache(maxsize=256)
def offer_card(program_id: int, program_name: str, offer_title: str) -> bytes:
    """The PNG for one program's offer (``program_id`` keeps programs apart in the cache)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 24, HEIGHT), fill=ACCENT)
    margin = 96
    draw.text((margin, 96), program_name[:60], font=ImageFont.load_default(size=44), fill=MUTED)
    y = 200
    for line in _fit(draw, offer_title, 88, WIDTH - 2 * margin):
        draw.text((margin, y), line, font=ImageFont.load_default(size=88), fill=TEXT)
        y += 108
    draw.text(
        (margin, HEIGHT - 120),
        "A friend sent you this offer",
        font=ImageFont.load_default(size=40),
        fill=MUTED,
    )
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()
