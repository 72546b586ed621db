"""Figures a person reads at a glance (matplotlib, no display needed)."""
from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # sweeps run on servers and in CI: never ask for a display
import matplotlib.ticker  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def activation_histograms(initial: dict[str, Any], final: dict[str, Any], *, title: str) -> plt.Figure:
    """The lecture's plot: one histogram of each hidden layer's activations,
    at initialization (top row) and at the end of training (bottom row)."""
    layers = list(initial["layers"]) or list(final["layers"])
    columns = max(1, len(layers))
    figure, axes = plt.subplots(2, columns, figsize=(2.6 * columns + 1, 5.2), squeeze=False, sharey="row")
    for row, (label, snapshot) in enumerate((("initialization", initial), ("end of training", final))):
        for column, layer in enumerate(layers):
            axis = axes[row][column]
            histogram = snapshot["layers"].get(layer)
            if histogram and histogram["counts"]:
                counts = np.asarray(histogram["counts"])
                edges = np.linspace(histogram["low"], histogram["high"], len(counts) + 1)
                axis.stairs(counts / counts.sum(), edges, fill=True, alpha=0.8)
            axis.set_title(f"{layer}\n{label} (step {snapshot['step']})", fontsize=8)
            axis.set_xlabel("activation value", fontsize=8)
            axis.tick_params(labelsize=7)
            axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(4))
            axis.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
        axes[row][0].set_ylabel("fraction of values", fontsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    return figure


def close(figure: plt.Figure) -> None:
    """Free a figure's memory once it is saved (pyplot keeps every open figure)."""
    plt.close(figure)
