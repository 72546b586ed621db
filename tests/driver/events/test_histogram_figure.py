"""A trial's activation histogram figure, drawn with Pillow."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from sweeps.driver.events.histogram_figure import activation_histograms_png


def histogram(values: np.ndarray) -> dict:
    counts, edges = np.histogram(values, bins=40)
    return {"low": float(edges[0]), "high": float(edges[-1]), "counts": counts.tolist()}


def test_the_histogram_figure_has_a_panel_per_layer_and_row_and_survives_an_empty_layer():
    rng = np.random.default_rng(0)
    initial = {
        "step": 0,
        "layers": {
            "layers.2": histogram(rng.normal(size=500)),
            "layers.5": histogram(rng.normal(size=500)),
        },
    }
    final = {
        "step": 100,
        "layers": {
            "layers.2": histogram(np.tanh(rng.normal(0, 3, 500))),
            "layers.5": {"low": 0.0, "high": 0.0, "counts": []},
        },
    }
    image = Image.open(io.BytesIO(activation_histograms_png(initial, final, title="trial 1")))
    assert image.format == "PNG"
    two_layers = image.size
    one_layer = Image.open(
        io.BytesIO(
            activation_histograms_png(
                {"step": 0, "layers": {"layers.2": initial["layers"]["layers.2"]}},
                {"step": 1, "layers": {}},
                title="trial 2",
            )
        )
    ).size
    assert two_layers[0] > one_layer[0] and two_layers[1] == one_layer[1]
    bar_pixels = sum(
        count for count, colour in image.getcolors(1 << 16) if colour == (0x4C, 0x72, 0xB0)
    )
    assert bar_pixels > 1000  # the bars were drawn
