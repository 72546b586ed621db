"""Each trial's activation histogram figure (the lecture's plot), drawn with Pillow.

A sweep makes one per trial, so it is drawn with Pillow rather than matplotlib, whose
axes and text cost many times more a figure (bench/RESULTS.md); it also keeps
matplotlib out of the process that runs the sweep.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PANEL_SIZE = (240, 180)  # pixels per histogram, title and labels included
PLOT_BOX = (44, 38, 228, 150)  # the histogram's frame inside its panel: left, top, right, bottom
BAR_COLOUR, FRAME_COLOUR, TEXT_COLOUR = "#4c72b0", "#555555", "#222222"


def activation_histograms_png(
    initial: dict[str, Any], final: dict[str, Any], *, title: str
) -> bytes:
    """The lecture's plot as a PNG: one histogram of each hidden layer's activations,
    at initialization (top row) and at the end of training (bottom row), y shared by row."""
    layers = list(initial["layers"]) or list(final["layers"])
    width, height = PANEL_SIZE
    header = 50
    image = Image.new("RGB", (width * max(1, len(layers)) + 16, header + 2 * height), "white")
    draw = ImageDraw.Draw(image)
    small, large = ImageFont.load_default(size=11), ImageFont.load_default(size=14)
    draw.text((image.width // 2, 8), title, fill=TEXT_COLOUR, font=large, anchor="ma")
    note = "bars: the fraction of the probe batch's values in each bin; each row shares its y axis"
    draw.text((image.width // 2, 28), note, fill=FRAME_COLOUR, font=small, anchor="ma")
    rows = (("initialization", initial), ("end of training", final))
    for row, (label, snapshot) in enumerate(rows):
        fractions = {layer: _fractions(snapshot["layers"].get(layer)) for layer in layers}
        top = max((max(values, default=0.0) for values in fractions.values()), default=0.0) or 1.0
        for column, layer in enumerate(layers):
            x, y = 8 + column * width, header + row * height
            box = (x + PLOT_BOX[0], y + PLOT_BOX[1], x + PLOT_BOX[2], y + PLOT_BOX[3])
            heading = f"{layer}\n{label} (step {snapshot['step']})"
            draw.multiline_text(
                ((box[0] + box[2]) // 2, y + 4),
                heading,
                fill=TEXT_COLOUR,
                font=small,
                anchor="ma",
                align="center",
            )
            histogram = snapshot["layers"].get(layer) or {}
            _draw_panel(draw, box, fractions[layer], histogram, top=top, font=small)
            if column == 0:
                draw.text(
                    (box[0] - 4, box[1]), f"{top:.2g}", fill=TEXT_COLOUR, font=small, anchor="ra"
                )
                draw.text((box[0] - 4, box[3]), "0", fill=TEXT_COLOUR, font=small, anchor="rd")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _draw_panel(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    values: list[float],
    histogram: dict[str, Any],
    *,
    top: float,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    """One histogram's bars, frame and x-axis labels inside `box` (left, upper, right, lower)."""
    left, upper, right, lower = box
    for index, value in enumerate(values):
        bar_left = left + (right - left) * index / len(values)
        bar_right = left + (right - left) * (index + 1) / len(values)
        draw.rectangle(
            (bar_left, lower - (lower - upper) * value / top, bar_right, lower), fill=BAR_COLOUR
        )
    draw.rectangle((left, upper, right, lower), outline=FRAME_COLOUR)
    if values:
        draw.text(
            (left, lower + 4), f"{histogram['low']:.3g}", fill=TEXT_COLOUR, font=font, anchor="la"
        )
        draw.text(
            (right, lower + 4), f"{histogram['high']:.3g}", fill=TEXT_COLOUR, font=font, anchor="ra"
        )
    else:
        middle = ((left + right) // 2, (upper + lower) // 2)
        draw.text(middle, "no finite values", fill=TEXT_COLOUR, font=font, anchor="mm")
    draw.text(
        ((left + right) // 2, lower + 16),
        "activation value",
        fill=TEXT_COLOUR,
        font=font,
        anchor="ma",
    )


def _fractions(histogram: dict[str, Any] | None) -> list[float]:
    counts = np.asarray((histogram or {}).get("counts") or [], dtype=float)
    total = counts.sum()
    return (counts / total).tolist() if total > 0 else []
