"""A small Pillow chart kit for the tracking figures: ticks, a canvas and axes, PNG (the text is
set by orchestrator/glyphs.py).

Only what orchestrator/plots.py draws: lines, a heatmap with a colour bar, text, legends. Plot
areas with lines are drawn at twice their size and reduced, which antialiases the lines.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from orchestrator.glyphs import text_mask, text_width

# matplotlib's tab10 and colorbrewer's Blues (matplotlib's "Blues"), so the figures look as before
TAB10 = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip
_BLUES = np.array(
    [
        (247, 251, 255), (222, 235, 247), (198, 219, 239), (158, 202, 225), (107, 174, 214),
        (66, 146, 198), (33, 113, 181), (8, 81, 156), (8, 48, 107),
    ],
    dtype=float,
)  # fmt: skip
INK, SOFT, GRID, CHANCE = (30, 30, 30), (90, 90, 90), (229, 229, 229), (150, 150, 150)


def blues(share: np.ndarray) -> np.ndarray:
    """RGB ``uint8`` colours of the Blues ramp for values in [0, 1] (0 is near-white)."""
    t = np.clip(np.asarray(share, dtype=float), 0.0, 1.0) * (len(_BLUES) - 1)
    grid = np.arange(len(_BLUES))
    rgb = [np.interp(t, grid, _BLUES[:, c]) for c in range(3)]
    return np.rint(np.stack(rgb, axis=-1)).astype(np.uint8)


def nice_ticks(lo: float, hi: float, target: int = 5, integer: bool = False) -> list[float]:
    """Round tick values inside ``[lo, hi]``, about ``target`` of them: steps of 1, 2, 2.5 or 5
    times a power of ten (no 2.5 for ``integer`` ticks)."""
    span = max(hi - lo, 1e-12)
    mag = 10.0 ** math.floor(math.log10(span / max(target, 1)))
    multiples = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = min((m * mag for m in multiples), key=lambda step: abs(span / step - target))
    if integer:
        step = max(step, 1.0)
    first = math.ceil(lo / step - 1e-9)
    count = math.floor(hi / step + 1e-9) - first + 1
    return [round((first + i) * step, 12) for i in range(max(count, 0))]


def _tick_labels(ticks: Sequence[float]) -> list[str]:
    step = min((abs(b - a) for a, b in zip(ticks, ticks[1:], strict=False)), default=1.0) or 1.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if round(step * 10**decimals, 6) % 1:  # a step of 2.5 needs one digit more
        decimals += 1
    return [f"{v:.{decimals}f}" if v else "0" for v in ticks]


def png_bytes(image: Image.Image, level: int = 1) -> bytes:
    """An RGB image as PNG: every row with PNG's "Up" filter, deflated at zlib ``level``.

    Pillow's encoder tries all five filters on every row, which costs more than drawing a chart;
    one fixed filter makes files of the same size about three times faster.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    rows = np.asarray(rgb).reshape(image.height, -1)
    up = np.empty((image.height, rows.shape[1] + 1), dtype=np.uint8)
    up[:, 0] = 2  # filter "Up": each byte minus the one above it, modulo 256
    up[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=up[1:, 1:])

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", image.width, image.height, 8, 2, 0, 0, 0))
    data = chunk(b"IDAT", zlib.compress(up.tobytes(), level))
    return b"\x89PNG\r\n\x1a\n" + header + data + chunk(b"IEND", b"")


@dataclass(frozen=True)
class Figure:
    """A drawn chart; ``save`` writes it as a PNG file."""

    image: Image.Image

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(png_bytes(self.image))


class Canvas:
    """A white RGB image; coordinates are the figure's pixels.

    With ``scale`` 2 it is drawn twice as large and ``reduced`` at the end, which antialiases lines
    (Pillow draws them aliased); ``origin`` is the figure pixel at its top-left corner.
    """

    def __init__(self, width: float, height: float, scale: int = 1, origin: tuple = (0, 0)):
        self.scale, self.origin = scale, origin
        self.image = Image.new("RGB", (round(width) * scale, round(height) * scale), "white")
        self.draw = ImageDraw.Draw(self.image)

    def _px(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.origin[0]) * self.scale, (y - self.origin[1]) * self.scale

    def text(
        self,
        xy: tuple,
        text: str,
        size: float,
        anchor: str = "la",
        fill: tuple = INK,
        angle: int = 0,
    ) -> None:
        """``anchor``: Pillow's two letters ("mm", "rt", ...), the point ``xy`` on the text
        before it is turned ``angle`` degrees anticlockwise about that point."""
        mask, dx, dy = text_mask(text, max(1, round(size * self.scale)), anchor, angle)
        x, y = self._px(*xy)
        x, y = round(x) + dx, round(y) + dy
        self.image.paste(fill, (x, y, x + mask.width, y + mask.height), mask)

    def line(self, points: Sequence[tuple], fill: tuple, width: float = 1) -> None:
        xy = [self._px(x, y) for x, y in points]
        self.draw.line(xy, fill=fill, width=max(1, round(width * self.scale)))

    def polyline(self, xs: np.ndarray, ys: np.ndarray, fill: tuple, width: float) -> None:
        """A joined line through many points; only its ends and the points where it turns are
        drawn (a ROC curve's thousand steps are a few dozen pixel corners)."""
        (ox, oy), s = self.origin, self.scale
        z = np.rint((np.asarray(xs) - ox) * s) + 1j * np.rint((np.asarray(ys) - oy) * s)
        moved = np.diff(z) != 0
        z, step = z[np.concatenate(([True], moved))], np.diff(z)[moved]
        if len(step) > 1:  # keep the ends and every turn (ROC curves are long staircases)
            turn = step[:-1].conj() * step[1:]
            z = z[np.concatenate(([True], (turn.imag != 0) | (turn.real < 0), [True]))]
        xy = np.column_stack([z.real, z.imag]).astype(np.int64).ravel().tolist()
        self.draw.line(xy, fill=fill, width=max(1, round(width * s)), joint="curve")

    def dashed(self, a: tuple, b: tuple, fill: tuple, width: float = 1, dash: float = 5) -> None:
        length = math.dist(a, b) or 1.0
        starts = np.arange(0.0, length, 2 * dash) / length
        ends = np.minimum(starts + dash / length, 1.0)
        (x, y), (x1, y1) = self._px(*a), self._px(*b)
        w = max(1, round(width * self.scale))
        for t0, t1 in zip(starts.tolist(), ends.tolist(), strict=True):
            xy = (x + (x1 - x) * t0, y + (y1 - y) * t0, x + (x1 - x) * t1, y + (y1 - y) * t1)
            self.draw.line(xy, fill=fill, width=w)

    def rectangle(self, box: Sequence[float], fill: Any = None, outline: Any = None) -> None:
        xy = [round(v) for v in (*self._px(box[0], box[1]), *self._px(box[2], box[3]))]
        self.draw.rectangle(xy, fill=fill, outline=outline, width=self.scale)

    def dot(self, xy: tuple[float, float], radius: float, fill: tuple) -> None:
        (x, y), r = self._px(*xy), radius * self.scale
        self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def reduced(self) -> Image.Image:
        # reduce() averages scale x scale blocks: about twenty times cheaper than a Lanczos
        # resize, and as clean for lines at this size (benchmarks/plots_speed.py)
        return self.image.reduce(self.scale) if self.scale > 1 else self.image


class Axes:
    """A plot area on a canvas: linear data→pixel mapping, grid, frame, ticks, lines, legend.

    ``outer`` is the panel's box (left, top, right, bottom); the plot box inside it leaves room for
    the title, the axis labels and the tick labels. The grid and the lines go on ``layer``, the
    plot box drawn twice as large, which ``finish`` reduces onto the canvas (text needs no
    supersampling: FreeType antialiases it).
    """

    TICK, LABEL, TITLE = 12, 13, 15

    def __init__(
        self,
        canvas: Canvas,
        outer: tuple[float, float, float, float],
        xlim: tuple[float, float],
        ylim: tuple[float, float],
        xticks: Sequence[float],
        yticks: Sequence[float],
    ) -> None:
        self.canvas, self.xlim, self.ylim = canvas, xlim, ylim
        self.xticks, self.yticks = list(xticks), list(yticks)
        self.xlabels, self.ylabels = _tick_labels(self.xticks), _tick_labels(self.yticks)
        self.widest = max((text_width(t, self.TICK) for t in self.ylabels), default=0.0)
        left, top, right, bottom = (round(v) for v in outer)
        self.box = (left + 34 + round(self.widest), top + 30, right - 12, bottom - 44)
        left, top, right, bottom = self.box
        self.layer = Canvas(right - left, bottom - top, scale=2, origin=(left, top))

    def to_px(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        left, top, right, bottom = self.box
        (x0, x1), (y0, y1) = self.xlim, self.ylim
        px = left + (np.asarray(x, dtype=float) - x0) / ((x1 - x0) or 1.0) * (right - left)
        py = bottom - (np.asarray(y, dtype=float) - y0) / ((y1 - y0) or 1.0) * (bottom - top)
        return px, py

    def frame(self, title: str, xlabel: str, ylabel: str) -> None:
        c, (left, top, right, bottom) = self.canvas, self.box
        xs, _ = self.to_px(self.xticks, np.zeros(len(self.xticks)))
        _, ys = self.to_px(np.zeros(len(self.yticks)), self.yticks)
        for x, label in zip(xs, self.xlabels, strict=True):
            self.layer.line([(x, top), (x, bottom)], GRID)
            c.line([(x, bottom), (x, bottom + 4)], SOFT)
            c.text((x, bottom + 6), label, self.TICK, anchor="mt")
        for y, label in zip(ys, self.ylabels, strict=True):
            self.layer.line([(left, y), (right, y)], GRID)
            c.line([(left - 4, y), (left, y)], SOFT)
            c.text((left - 6, y), label, self.TICK, anchor="rm")
        c.text(((left + right) / 2, top - 9), title, self.TITLE, anchor="ms")
        c.text(((left + right) / 2, bottom + 24), xlabel, self.LABEL, anchor="mt")
        c.text((left - self.widest - 12, (top + bottom) / 2), ylabel, self.LABEL, "md", angle=90)

    def plot(self, x: Any, y: Any, color: tuple, width: float = 2, dots: bool = False) -> None:
        """A line broken at NaN values; ``dots`` marks every point (so a single epoch shows)."""
        px, py = self.to_px(x, y)
        finite = np.isfinite(px) & np.isfinite(py)
        breaks = np.flatnonzero(np.diff(finite.astype(np.int8))) + 1
        for run in np.split(np.arange(len(px)), breaks) if len(breaks) else [np.arange(len(px))]:
            if len(run) > 1 and finite[run[0]]:
                self.layer.polyline(px[run], py[run], color, width)
        if dots:
            radius = 2.4 if finite.sum() <= 30 else 1.6
            for xy in zip(px[finite], py[finite], strict=True):
                self.layer.dot(xy, radius, color)

    def finish(self, legend: Sequence[tuple[str, tuple, bool]] = ()) -> None:
        """Put the plot box on the canvas, frame it, and add the legend (label, colour, dashed)."""
        self.canvas.image.paste(self.layer.reduced(), self.box[:2])
        self.canvas.rectangle(self.box, outline=SOFT)
        if legend:
            self._legend(legend)

    def note(self, text: str) -> None:
        left, top, right, bottom = self.box
        self.canvas.text(((left + right) / 2, (top + bottom) / 2), text, self.LABEL, "mm", SOFT)

    def _legend(self, entries: Sequence[tuple[str, tuple, bool]], size: float = 11) -> None:
        """In the plot corner where it hides least of the lines."""
        c, (left, top, right, bottom) = self.canvas, self.box
        row, swatch = size * 1.45, 22
        rows = max(1, min(len(entries), int((bottom - top - 16) // row)))
        columns = [entries[i : i + rows] for i in range(0, len(entries), rows)]
        widths = [swatch + 8 + max(text_width(e[0], size) for e in col) for col in columns]
        w, h = round(sum(widths) + 12 * len(columns) + 4), round(rows * row + 10)
        corners = [(right - 8 - w, bottom - 8 - h), (right - 8 - w, top + 8), (left + 8, top + 8),
                   (left + 8, bottom - 8 - h)]  # fmt: skip

        def hidden(corner: tuple[int, int]) -> int:  # pixels darker than the grid
            box = (corner[0], corner[1], corner[0] + w, corner[1] + h)
            return sum(c.image.crop(box).convert("L").histogram()[:200])

        x0, y0 = min(corners, key=hidden)  # ties keep the first: lower right
        c.rectangle((x0, y0, x0 + w, y0 + h), fill=(255, 255, 255), outline=(200, 200, 200))
        for col, col_width in zip(columns, widths, strict=True):
            for i, (label, color, dashed) in enumerate(col):
                y = y0 + 5 + (i + 0.5) * row
                a, b = (x0 + 8, y), (x0 + 8 + swatch, y)
                if dashed:
                    c.dashed(a, b, color, 1.6, 4)
                else:
                    c.line([a, b], color, 2)
                c.text((b[0] + 6, y), label, size, anchor="lm")
            x0 += col_width + 12
