"""Claim 1, initialization: in a deep tanh network small random weights collapse the
activations and Xavier keeps them; on ReLU, Xavier halves the variance each layer and He fixes
it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sweeps.driver.lecture.study import Claim, Finding, Lecture, judge

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

SWEEP_FILE = "initialization.yaml"
# (activation, init) pairs the lecture shows, each with its rule; all in the sweep file's space.
PAIRS = (("tanh", "small_random"), ("tanh", "xavier"), ("relu", "xavier"), ("relu", "he"))
COLLAPSED = 0.01  # last layer's std below 1% of the first's
KEPT = 2.0  # last layer's std within a factor of 2 of the first's
HALVED = (0.4, 0.6)  # variance ratio from one layer to the next (geometric mean)
FIXED = (0.8, 1.25)

CLAIM = Claim(
    key="initialization",
    title="1. Weight initialization",
    statement=(
        "In a 10-layer tanh network, small random weights N(0, 0.01²) make the activations' spread "
        "collapse layer by layer while Xavier keeps it; on ReLU, Xavier halves the variance at "
        "each "
        "layer and He initialization fixes that."
    ),
    criterion=(
        "At initialization, on the probe batch of digits: tanh + small_random: the last hidden "
        "layer's std "
        f"is below {COLLAPSED:.0%} of the first's; tanh + xavier: within a factor of {KEPT:g} "
        "of it; "
        "relu + xavier: the variance ratio from one layer to the next (geometric mean over the "
        "9 steps) "
        f"is between {HALVED[0]} and {HALVED[1]}; relu + he: between {FIXED[0]} and {FIXED[1]}. "
        "All four must hold."
    ),
    sweep_files=(SWEEP_FILE,),
)


def run(lecture: Lecture) -> Finding:
    from sweeps.driver.planning.plan import build_trial_settings, load_sweep_data
    from sweeps.trial.lecture import activations_at_init

    config = lecture.load(SWEEP_FILE, {})
    settings, data = build_trial_settings(config), load_sweep_data(config)
    fixed = {name: spec for name, spec in config.params.items() if not isinstance(spec, dict)}
    layers = {
        pair: activations_at_init(
            fixed | dict(zip(("activation", "init"), pair, strict=True)), settings, data
        )
        for pair in PAIRS
    }
    stds = {
        pair: [float(values.std()) for values in by_layer.values()]
        for pair, by_layer in layers.items()
    }
    checks = {
        ("tanh", "small_random"): ("collapses", lambda s: last_over_first(s) < COLLAPSED),
        ("tanh", "xavier"): ("keeps", lambda s: 1 / KEPT <= last_over_first(s) <= KEPT),
        ("relu", "xavier"): ("halves", lambda s: HALVED[0] <= variance_ratio(s) <= HALVED[1]),
        ("relu", "he"): ("keeps", lambda s: FIXED[0] <= variance_ratio(s) <= FIXED[1]),
    }
    held = {pair: checks[pair][1](stds[pair]) for pair in PAIRS}
    numbers = [
        (f"{activation} + {init}", describe(values, held=held[(activation, init)]))
        for (activation, init), values in stds.items()
    ]
    decided, why = judge(
        {
            f"{activation} + {init} {checks[(activation, init)][0]}": ok
            for (activation, init), ok in held.items()
        }
    )
    return Finding(
        claim=CLAIM,
        verdict=decided,
        why=why,
        numbers=numbers,
        figures=[
            lecture.save(histogram_figure(layers), "initialization_histograms.png"),
            lecture.save(std_figure(stds), "initialization_std.png"),
        ],
        commands=[
            lecture.command(SWEEP_FILE, {}) + "   # act_std/layers.N at step 0 of each trial"
        ],
        metrics={
            f"{activation}_{init}.variance_ratio": variance_ratio(values)
            for (activation, init), values in stds.items()
        }
        | {
            f"{activation}_{init}.last_over_first": last_over_first(values)
            for (activation, init), values in stds.items()
        },
    )


def describe(values: list[float], *, held: bool) -> str:
    """One pair's stds across the layers, as the finding reports them."""
    return (
        f"std layer 1 {values[0]:.3g}, layer {len(values)} {values[-1]:.3g} (last/first "
        f"{last_over_first(values):.3g}); variance ratio per layer {variance_ratio(values):.3f} — "
        f"{'holds' if held else 'does not hold'}"
    )


def last_over_first(stds: list[float]) -> float:
    return stds[-1] / stds[0]


def variance_ratio(stds: list[float]) -> float:
    """The geometric mean of var(layer k+1) / var(layer k)."""
    return (stds[-1] / stds[0]) ** (2 / (len(stds) - 1))


def histogram_figure(layers: dict[tuple[str, str], dict[str, np.ndarray]]) -> Figure:
    """The lecture's figure: one histogram per hidden layer, a row per (activation, init)."""
    import numpy as np

    from sweeps.driver.analysis.plots import plt

    depth = max(len(by_layer) for by_layer in layers.values())
    figure, axes = plt.subplots(
        len(layers), depth, figsize=(1.45 * depth, 1.55 * len(layers)), squeeze=False
    )
    for row, ((activation, init), by_layer) in enumerate(layers.items()):
        # One scale per row, the first layer's: a shrinking spread shows as a narrowing histogram.
        first = next(iter(by_layer.values()))
        bound = 1.0 if activation == "tanh" else max(float(np.percentile(first, 99.5)), 1e-12)
        low = -bound if activation == "tanh" else 0.0
        for column, values in enumerate(by_layer.values()):
            axis = axes[row][column]
            axis.hist(
                np.clip(values, low, bound),
                bins=30,
                range=(low, bound),
                color="tab:blue" if activation == "tanh" else "tab:orange",
            )
            axis.set_yticks([])
            axis.tick_params(labelsize=6)
            axis.set_title(f"layer {column + 1}\nstd {values.std():.2g}", fontsize=7)
        axes[row][0].set_ylabel(f"{activation}\n{init}", fontsize=8)
    figure.suptitle(
        "Hidden activations at initialization, 10 layers of 500 units (probe batch of digits)",
        fontsize=10,
    )
    figure.tight_layout()
    return figure


def std_figure(stds: dict[tuple[str, str], list[float]]) -> Figure:
    from sweeps.driver.analysis.plots import plt

    figure, axis = plt.subplots(figsize=(6.5, 4))
    for (activation, init), values in stds.items():
        axis.plot(range(1, len(values) + 1), values, marker="o", label=f"{activation} + {init}")
    axis.set_yscale("log")
    axis.set_xlabel("hidden layer")
    axis.set_ylabel("std of its activations (log scale)")
    axis.set_title("Spread of the activations, layer by layer, at initialization")
    axis.grid(True, which="major", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure
