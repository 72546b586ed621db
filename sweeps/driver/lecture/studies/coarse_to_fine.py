"""Claim 8, coarse to fine: after a coarse sweep, `sweep refine` and a fine sweep, the fine
sweep's trials concentrate where the coarse sweep's best were and its best is at least as good."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from sweeps.driver.analysis.report import TrialRow
from sweeps.driver.lecture.measures import best_value, finished, median, param
from sweeps.driver.lecture.study import Claim, Finding, Lecture, SweepResult, judge

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sweeps.driver.analysis.refine import Refinement

SWEEP_FILE = "coarse_to_fine.yaml"
TOP = 5  # `sweep refine`'s default --top
AXES = ("lr", "weight_decay")  # both log_uniform in the sweep file
CLOSER = 2.0
QUICK = {"search.num_samples": 12, "train.epochs": 4}

CLAIM = Claim(
    key="coarse_to_fine",
    title="8. Coarse to fine",
    statement=(
        "After a coarse sweep, `sweep refine` and a fine sweep, the fine sweep's trials "
        "concentrate where the coarse "
        "sweep's best trials were, and its best is at least as good."
    ),
    criterion=(
        "Measuring distance in the coarse ranges' log scale (each axis of lr and weight_decay "
        "scaled to [0, 1]): the "
        "fine trials' median distance to the coarse sweep's best trial is less than "
        f"1/{CLOSER:g} of the coarse trials' "
        "median distance to it, and the fine sweep's best val_acc is at least the coarse sweep's."
    ),
    sweep_files=(SWEEP_FILE,),
)


def run(lecture: Lecture) -> Finding:
    overrides = lecture.overrides(QUICK)
    # refine narrows what the importance says matters
    coarse = lecture.run(SWEEP_FILE, overrides, importance=True)
    refined, refined_path = write_refined(lecture, coarse)
    fine = lecture.run(refined_path.name, {}, path=refined_path)
    ranges = {name: coarse.config.params[name]["log_uniform"] for name in AXES}
    narrowed = {name: fine.config.params[name]["log_uniform"] for name in AXES}
    best = finished(coarse.report.trials)[0]
    spread = {
        name: median([distance(row, best, ranges) for row in finished(result.report.trials)])
        for name, result in (("coarse", coarse), ("fine", fine))
    }
    scores = {
        name: best_value(result.report.top(1)[0])
        for name, result in (("coarse", coarse), ("fine", fine))
    }
    decided, why = judge(
        {
            "the fine trials concentrate near the coarse best": spread["fine"] * CLOSER
            < spread["coarse"],
            "the fine best is at least as good": scores["fine"] >= scores["coarse"],
        }
    )
    return Finding(
        claim=CLAIM,
        verdict=decided,
        why=why,
        numbers=numbers(refined, ranges, narrowed, spread, scores),
        figures=[lecture.save(figure(coarse, fine, narrowed), "coarse_to_fine.png")],
        commands=[
            lecture.command(SWEEP_FILE, overrides),
            f"sweep refine {coarse.config.experiment_name} --top {TOP} -o refined.yaml",
            f"sweep run refined.yaml --seed {fine.config.search.seed}   # sweep lecture's seed "
            f"for the fine sweep (see {refined_path.name})",
        ],
        sweep_runs={
            coarse.config.name: coarse.report.parent_run_id,
            fine.config.name: fine.report.parent_run_id,
        },
        metrics={
            "distance.coarse": spread["coarse"],
            "distance.fine": spread["fine"],
            "best.coarse": scores["coarse"],
            "best.fine": scores["fine"],
        },
    )


def numbers(
    refined: Refinement,
    ranges: dict[str, list[float]],
    narrowed: dict[str, list[float]],
    spread: dict[str, float],
    scores: dict[str, float],
) -> list[tuple[str, str]]:
    """What the finding reports: refine's changes to the axes, how much narrower, how close,
    and how good."""
    spans = ", ".join(
        f"{name} {decades(ranges[name]):.1f} -> {decades(narrowed[name]):.1f}" for name in AXES
    )
    return [
        *(
            (f"sweep refine: params.{name}", f"{before} -> {after}: {reason}")
            for setting, before, after, reason in refined.table
            if (name := setting.removeprefix("params.")) in AXES
        ),
        ("decades each range spans, coarse -> fine", spans),
        (
            "median distance to the coarse best trial",
            f"coarse trials {spread['coarse']:.3f}, fine trials {spread['fine']:.3f}",
        ),
        ("best val_acc", f"coarse {scores['coarse']:.4f}, fine {scores['fine']:.4f}"),
        *(("sweep refine warned", warning) for warning in refined.warnings),
    ]


def write_refined(lecture: Lecture, coarse: SweepResult) -> tuple[Refinement, Path]:
    """What `sweep refine` writes for the coarse sweep, in the report's folder, but for its seed.

    `sweep refine` derives the fine sweep's seed from the coarse sweep's run id, new in every
    lecture; the lecture derives it from the sweep's name instead, so every lecture draws
    the same fine trials and reaches the same verdict."""
    from sweeps.driver.analysis.refine import derived_seed, refine_sweep
    from sweeps.driver.analysis.refine_file import refined_file
    from sweeps.driver.sweep_file.reading import load_yaml
    from sweeps.driver.tracking.sweep_run import USER_SWEEP_FILE

    parent = coarse.report.parent_run_id
    ran_text = coarse.reader.sweep_file(parent)
    assert ran_text is not None, "`sweep run` logs search.yaml on the sweep's run"
    ran = load_yaml(ran_text, source="the coarse sweep (search.yaml on its run)")
    refined = refine_sweep(ran, coarse.report, k=TOP)
    seed = derived_seed(ran["search"]["seed"], coarse.config.name)
    refined.changes["search.seed"] = seed
    refined.comments["refines"] = (
        f"narrowed around its top trials by sweep refine; sweep lecture's search.seed {seed} is "
        "derived from its seed and its name"
    )
    text = refined_file(
        coarse.reader.sweep_file(parent, USER_SWEEP_FILE) or ran_text,
        ran,
        refined.changes,
        comments=refined.comments,
    )
    path = lecture.out_dir / f"{refined.changes['name']}.yaml"
    path.write_text(text, encoding="utf-8")
    return refined, path


def decades(bounds: list[float]) -> float:
    return math.log10(bounds[1] / bounds[0])


def distance(row: TrialRow, best: TrialRow, ranges: dict[str, list[float]]) -> float:
    """Euclidean distance in log space, each axis scaled by the coarse range's span."""
    return math.sqrt(
        sum(
            ((math.log10(param(row, name)) - math.log10(param(best, name))) / decades(bounds)) ** 2
            for name, bounds in ranges.items()
        )
    )


def figure(coarse: SweepResult, fine: SweepResult, narrowed: dict[str, list[float]]) -> Figure:
    """The two sweeps' trials in the (lr, weight_decay) plane, coloured by val_acc, and the refined
    box."""
    from matplotlib.patches import Rectangle

    from sweeps.driver.analysis.plots import plt

    plot, axes = plt.subplots(
        1, 2, figsize=(11, 4.2), sharex=True, sharey=True, layout="constrained"
    )
    (lr_low, lr_high), (wd_low, wd_high) = (narrowed[name] for name in AXES)
    best = finished(coarse.report.trials)[0]
    for axis, result in zip(axes, (coarse, fine), strict=True):
        rows = finished(result.report.trials)
        points = axis.scatter(
            [param(row, "lr") for row in rows],
            [param(row, "weight_decay") for row in rows],
            c=[row.best for row in rows],
            cmap="viridis",
            vmin=0,
            vmax=1,
            s=45,
            edgecolors="black",
        )
        axis.add_patch(
            Rectangle(
                (lr_low, wd_low),
                lr_high - lr_low,
                wd_high - wd_low,
                fill=False,
                linestyle="--",
                color="tab:red",
            )
        )
        axis.scatter(
            [param(best, "lr")],
            [param(best, "weight_decay")],
            marker="*",
            s=260,
            color="tab:red",
            label="the coarse sweep's best trial",
        )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("learning rate (log scale)")
        axis.set_title(
            f"{result.config.name}: best val_acc {result.report.top(1)[0].best:.4f}", fontsize=9
        )
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("weight decay (log scale)")
    axes[0].legend(fontsize=8, loc="lower left")
    plot.colorbar(points, ax=axes, label="best val_acc")
    plot.suptitle(
        "Coarse to fine: the refined ranges (dashed) around the coarse sweep's best trials",
        fontsize=10,
    )
    return plot
