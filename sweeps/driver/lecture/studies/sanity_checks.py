"""Claim 6, sanity checks: with regularization off the initial loss is ln(10), and the model
overfits 20 examples."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from sweeps.driver.lecture.study import Claim, Finding, Lecture, judge

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SWEEP_FILE = "sanity.yaml"
CLOSE = 0.05  # the initial loss within 5% of ln(num_classes)

CLAIM = Claim(
    key="sanity",
    title="6. Sanity checks before a sweep",
    statement="With small weights and regularization off, the initial loss is ln(10) for 10 "
    "classes, and the model can overfit 20 examples.",
    criterion=(
        f"`sweep check` on the sweep file: the initial loss is within {CLOSE:.0%} of ln(10) = "
        f"{math.log(10):.3f}, and the "
        "overfit check reaches 100% training accuracy on 20 examples within its 500 steps."
    ),
    sweep_files=(SWEEP_FILE,),
)


def run(lecture: Lecture) -> Finding:
    from sweeps.driver.planning.plan import build_trial_settings, load_sweep_data
    from sweeps.driver.sweep_file.distributions import representative_params
    from sweeps.trial.sanity import run_sanity_checks

    config = lecture.load(SWEEP_FILE, {})
    data = load_sweep_data(config)
    checks = {
        check.name.split(" ")[0]: check
        for check in run_sanity_checks(
            representative_params(config.params), build_trial_settings(config), data
        )
    }
    initial, overfit = float(checks["initial"].measured), checks["overfit"]
    expected = math.log(data.num_classes)
    close = abs(initial - expected) <= CLOSE * expected
    decided, why = judge({"initial loss ln(10)": close, "overfits 20 examples": overfit.passed})
    return Finding(
        claim=CLAIM,
        verdict=decided,
        why=why,
        numbers=[
            ("initial loss", f"{initial:.4f} (ln({data.num_classes}) = {expected:.4f})"),
            ("overfit 20 examples", overfit.measured),
            *(
                (check.name, f"{check.measured} ({'pass' if check.passed else 'FAIL'})")
                for key, check in checks.items()
                if key not in ("initial", "overfit")
            ),
        ],
        figures=[lecture.save(figure(overfit.curve, expected), "sanity_overfit.png")],
        commands=[lecture.command(SWEEP_FILE, {}, verb="check")],
        metrics={"initial_loss": initial, "overfit_steps": float(len(overfit.curve))},
    )


def figure(curve: tuple[float, ...], expected: float) -> Figure:
    """The overfit check's training loss on 20 examples, from where it starts (ln 10) to
    memorized."""
    from sweeps.driver.analysis.plots import plt

    plot, axis = plt.subplots(figsize=(6.5, 4))
    axis.plot(range(1, len(curve) + 1), curve, marker="o", markersize=2)
    axis.axhline(
        expected, color="black", linestyle=":", linewidth=1, label=f"ln(10) = {expected:.3f}"
    )
    axis.set_xlabel("optimizer step (Adam, lr 1e-3, the same 20 examples)")
    axis.set_ylabel("training loss")
    axis.set_title(
        "Sanity check: the loss starts at ln(10) and the model memorizes 20 examples", fontsize=10
    )
    axis.set_ylim(bottom=0)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=8)
    plot.tight_layout()
    return plot
