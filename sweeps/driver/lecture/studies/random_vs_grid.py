"""Claim 4, random search beats a grid: at an equal budget, when few hyperparameters matter,
random search finds a better best val_acc than a grid (Bergstra & Bengio 2012).

The grid is built here, for this comparison only: sweep files still refuse grids.
"""

from __future__ import annotations

import itertools
import math
import statistics
from typing import TYPE_CHECKING, Any

from sweeps.driver.lecture.study import Claim, Finding, Lecture, verdict

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SWEEP_FILE = "random_vs_grid.yaml"
SEEDS = 16
QUICK_SEEDS = 6

CLAIM = Claim(
    key="random_vs_grid",
    title="4. Random search beats grid search",
    statement=(
        "At an equal budget of trials, when only a few hyperparameters matter, random search "
        "finds a better "
        "best val_acc than a grid, because it tries a new value of the important one in every "
        "trial (Bergstra & Bengio 2012)."
    ),
    criterion=(
        "For each seed, the sweep file's 9 random trials (what `sweep run --seed N` samples) "
        "and a 3x3 grid over the "
        "same ranges (cell centres on the sampling axis) are trained with that seed; over the "
        "seeds, random search's "
        "mean best val_acc is higher than the grid's, and random search has the better best in "
        "more seeds than the grid."
    ),
    sweep_files=(SWEEP_FILE,),
)


def grid_configs(params: dict[str, Any], num_samples: int) -> list[dict[str, Any]]:
    """A grid with as many points as the random budget: k cell centres per sampled range (k^d =
    budget)."""
    from sweeps.driver.sweep_file.distributions import Range, split_spec

    sampled = {
        name: found for name, spec in params.items() if (found := split_spec(spec)) is not None
    }
    per_axis = round(num_samples ** (1 / len(sampled)))
    if per_axis ** len(sampled) != num_samples:
        raise ValueError(
            f"{num_samples} trials do not make a square grid over {len(sampled)} hyperparameters"
        )
    axes = {}
    for name, (distribution, args) in sampled.items():
        if not isinstance(distribution, Range):  # a choice
            raise ValueError(f"params.{name}: the grid comparison takes ranges only")
        low, high = distribution.to_axis(args[0]), distribution.to_axis(args[1])
        axes[name] = [
            distribution.from_axis(low + (index + 0.5) / per_axis * (high - low))
            for index in range(per_axis)
        ]
    fixed = {name: spec for name, spec in params.items() if name not in sampled}
    return [
        fixed | dict(zip(axes, point, strict=True)) for point in itertools.product(*axes.values())
    ]


def run(lecture: Lecture) -> Finding:
    config = lecture.load(SWEEP_FILE, {})
    budget = config.search.num_samples
    seeds = range(QUICK_SEEDS if lecture.quick else SEEDS)
    grid = grid_configs(config.params, budget)
    trained, best = train_both(lecture, config.params, grid, seeds=seeds, budget=budget)
    wins = sum(r > g for r, g in zip(best["random"], best["grid"], strict=True))
    losses = sum(r < g for r, g in zip(best["random"], best["grid"], strict=True))
    mean = {side: statistics.fmean(values) for side, values in best.items()}
    held = mean["random"] > mean["grid"] and wins > losses
    return Finding(
        claim=CLAIM,
        verdict=verdict(held),
        why=f"random search's best was better in {wins} of {len(seeds)} seeds, worse in {losses}",
        numbers=[
            (
                "budget",
                f"{budget} trials per search, {len(seeds)} seeds, {2 * budget * len(seeds)} "
                "trainings",
            ),
            ("mean best val_acc", f"random {mean['random']:.4f}, grid {mean['grid']:.4f}"),
            (
                "seeds where random's best is better / equal / worse",
                f"{wins} / {len(seeds) - wins - losses} / {losses}",
            ),
            (
                "distinct learning rates tried per search",
                f"random {budget}, grid {round(math.sqrt(budget))}",
            ),
        ],
        figures=[lecture.save(figure(trained, best), "random_vs_grid.png")],
        commands=[
            f"{lecture.command(SWEEP_FILE, {})} --seed N   # the random side of seed N (the "
            "grid is not a sweep file)"
        ],
        metrics={
            "mean_best.random": mean["random"],
            "mean_best.grid": mean["grid"],
            "random_wins": wins,
            "grid_wins": losses,
        },
    )


def train_both(
    lecture: Lecture,
    params: dict[str, Any],
    grid: list[dict[str, Any]],
    *,
    seeds: range,
    budget: int,
) -> tuple[dict[str, list[tuple[dict[str, Any], float]]], dict[str, list[float]]]:
    """Every trial of both searches with its best val_acc, and each search's best per seed."""
    from sweeps.driver.planning.plan import build_trial_settings, load_sweep_data
    from sweeps.driver.sweep_file.distributions import preview_trial_configs
    from sweeps.trial.lecture import best_metric

    trained: dict[str, list[tuple[dict[str, Any], float]]] = {"random": [], "grid": []}
    best: dict[str, list[float]] = {"random": [], "grid": []}
    for seed in seeds:
        # What `sweep run --seed N` trains: its data split, its trials' seeds, its 9 samples.
        seeded = lecture.load(SWEEP_FILE, {"search.seed": seed})
        data, settings = load_sweep_data(seeded), build_trial_settings(seeded)
        sampled = preview_trial_configs(params, seed=seed, num_samples=budget)
        for side, configs in (("random", sampled), ("grid", grid)):
            results = [(trial, best_metric(trial, settings, data)) for trial in configs]
            trained[side] += results
            best[side].append(max(value for _, value in results))
        lecture.echo(
            f"  seed {seed}: best val_acc random {best['random'][-1]:.4f}, grid "
            f"{best['grid'][-1]:.4f}"
        )
    return trained, best


def figure(
    trained: dict[str, list[tuple[dict[str, Any], float]]], best: dict[str, list[float]]
) -> Figure:
    """Left: every trained trial's val_acc against lr, grid and random; right: each seed's best,
    paired."""
    from sweeps.driver.analysis.plots import plt

    plot, axes = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    for side, marker, colour in (("random", "o", "tab:orange"), ("grid", "s", "black")):
        points = trained[side]
        axes[0].scatter(
            [trial["lr"] for trial, _ in points],
            [value for _, value in points],
            marker=marker,
            s=18,
            alpha=0.5,
            color=colour,
            label=side,
        )
    axes[0].set_xscale("log")
    axes[0].set_xlabel("learning rate (log scale): the hyperparameter that matters")
    axes[0].set_ylabel("best val_acc of the trial")
    axes[0].legend(fontsize=8)
    axes[0].grid(True, alpha=0.3)
    for grid_best, random_best in zip(best["grid"], best["random"], strict=True):
        colour = (
            "tab:green"
            if random_best > grid_best
            else "tab:red"
            if random_best < grid_best
            else "tab:gray"
        )
        axes[1].plot([0, 1], [grid_best, random_best], color=colour, alpha=0.6, marker="o")
    axes[1].set_xticks([0, 1], ["grid (3x3)", "random (9)"])
    axes[1].set_xlim(-0.3, 1.3)
    axes[1].set_ylabel("best val_acc of the search, per seed")
    axes[1].grid(True, axis="y", alpha=0.3)
    plot.suptitle(
        "Random search against a grid, 9 trials each, per seed (green: random's best is "
        "better; red: worse; grey: equal)",
        fontsize=10,
    )
    plot.tight_layout()
    return plot
