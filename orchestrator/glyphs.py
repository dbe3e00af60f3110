"""Text for the chart kit: matplotlib's DejaVuSans (found without importing matplotlib), each
character rendered once per size, strings set from those glyphs and cached."""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


@functools.lru_cache(maxsize=1)
def _font_path() -> str | None:
    """matplotlib's DejaVuSans, found without importing matplotlib (its import alone is slow)."""
    spec = importlib.util.find_spec("matplotlib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf")
        if path.is_file():
            return str(path)
    return None


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    path = _font_path()
    if path is None:
        return ImageFont.load_default(size=size)
    # the basic layout is about twice as fast as Raqm, and these labels need no shaping
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


@functools.lru_cache(maxsize=1024)
def _glyph(char: str, size: int) -> tuple[Image.Image, int, int, float]:
    """One character's coverage mask, its corner's offset from the pen on the baseline, and the
    pen's advance."""
    font = _font(size)
    left, top, right, bottom = font.getbbox(char, anchor="ls")
    mask = Image.new("L", (max(right - left, 1), max(bottom - top, 1)))
    ImageDraw.Draw(mask).text((-left, -top), char, font=font, fill=255, anchor="ls")
    return mask, left, top, font.getlength(char)


@functools.lru_cache(maxsize=4096)
def text_mask(text: str, size: int, anchor: str, angle: int) -> tuple[Image.Image, int, int]:
    """The text's coverage mask, and where its top-left corner lies from the anchor point.

    Set from cached glyphs (FreeType renders each character once per size, which is most of what
    drawing text costs) and cached itself: a confusion matrix repeats its counts, and every trial
    in a worker repeats most of its labels. ``anchor`` is Pillow's: "l", "m", "r" then "a"/"t",
    "m", "s", "d"/"b"; turned ``angle`` degrees anticlockwise about that point.
    """
    glyphs = [_glyph(char, size) for char in text]
    pens = np.concatenate([[0.0], np.cumsum([g[3] for g in glyphs])])
    ascent, descent = _font(size).getmetrics()
    x0 = min([0.0] + [p + g[1] for p, g in zip(pens, glyphs, strict=False)])
    x1 = max([pens[-1]] + [p + g[1] + g[0].width for p, g in zip(pens, glyphs, strict=False)])
    y0 = min([-ascent] + [g[2] for g in glyphs])
    y1 = max([descent] + [g[2] + g[0].height for g in glyphs])
    mask = Image.new("L", (math.ceil(x1 - x0), y1 - y0))
    for pen, (glyph, left, top, _) in zip(pens, glyphs, strict=False):
        mask.paste(255, (round(pen + left - x0), top - y0), glyph)
    ax = {"l": 0.0, "m": pens[-1] / 2, "r": pens[-1]}[anchor[0]] - x0
    ay = {"a": -ascent, "t": -ascent, "m": (descent - ascent) / 2, "s": 0, "d": descent,
          "b": descent}[anchor[1]] - y0  # fmt: skip
    if angle == 0:
        return mask, -round(ax), -round(ay)
    # turn about the mask's centre (what rotate does), then find the anchor point again
    vx, vy = ax - mask.width / 2, ay - mask.height / 2
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    turned = mask.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    ax, ay = turned.width / 2 + vx * cos + vy * sin, turned.height / 2 - vx * sin + vy * cos
    return turned, -round(ax), -round(ay)


def text_width(text: str, size: float) -> float:
    """Width in pixels, as ``text_mask`` sets the text (without kerning)."""
    size = max(1, round(size))
    return sum(_glyph(char, size)[3] for char in text)
