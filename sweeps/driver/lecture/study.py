"""What every study of `sweep lecture` shares: the claim it tests, what a run found, and the
lecture's context (where its sweep files are, how it runs them, where figures go)."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sweeps.driver.sweep_file.reading import load_sweep
from sweeps.driver.sweep_file.schema import SweepConfig

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from sweeps.driver.analysis.report import SweepReport
    from sweeps.driver.tracking.queries import SweepReader

# The lecture's sweep files live with the other examples, in the repository.
LECTURE_FILES = Path(__file__).resolve().parents[3] / "examples" / "lecture"

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
SKIPPED = "skipped"
FAILED = "failed to run"


@dataclass(frozen=True)
class Claim:
    """A claim of the lecture and the rule that decides it, both written before any run."""

    key: str  # e.g. "initialization": names the figures and the MLflow keys
    title: str
    statement: str  # the claim, in one sentence
    criterion: str  # what "reproduced" means, in numbers
    sweep_files: tuple[str, ...]  # under examples/lecture/


@dataclass
class Finding:
    """What running a study found: the verdict and everything the report shows for it."""

    claim: Claim
    verdict: str
    why: str  # one or two sentences: what decided the verdict
    numbers: list[tuple[str, str]] = field(default_factory=list)  # (what was measured, the value)
    figures: list[str] = field(default_factory=list)  # PNG file names in the report's folder
    commands: list[str] = field(default_factory=list)  # how a person makes these figures' data
    # sweep name -> its MLflow parent run id
    sweep_runs: dict[str, str] = field(default_factory=dict)
    # the measured numbers, for the lecture's MLflow run
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


def verdict(passed: bool) -> str:
    return REPRODUCED if passed else NOT_REPRODUCED


def judge(parts: dict[str, bool]) -> tuple[str, str]:
    """A claim made of parts is reproduced when every part holds; the why names which did and which
    did not."""
    held = [name for name, ok in parts.items() if ok]
    failed = [name for name, ok in parts.items() if not ok]
    why = "; ".join(
        text
        for text in (
            f"holds: {', '.join(held)}" if held else "",
            f"does not hold: {', '.join(failed)}" if failed else "",
        )
        if text
    )
    return verdict(not failed), why


@dataclass
class SweepResult:
    config: SweepConfig
    report: SweepReport
    reader: SweepReader
    runs: list[Any]  # the trial runs, with their latest metrics (act_dead_frac/<layer>, ...)

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return self.reader.metric_history(run_id, key)


@dataclass(frozen=True)
class LogFile:
    """Prints lines into a file. It holds the path, not an open file: Ray Tune pickles the
    sweep's callbacks, and with them the `echo` a sweep prints its progress through."""

    path: Path

    def __call__(self, line: str) -> None:
        with open(self.path, "a", encoding="utf-8") as file:
            print(line, file=file)


@dataclass
class Lecture:
    """Where a lecture run writes, which store it logs to, and how it runs a study's sweep."""

    out_dir: Path
    tracking_uri: str
    quick: bool
    echo: Callable[[str], None]  # a study's own progress lines
    sweep_log: LogFile  # what `sweep run` would print, kept in the lecture's log
    files: Path = LECTURE_FILES

    def overrides(self, quick: dict[str, Any]) -> dict[str, Any]:
        """A study's --quick overrides when the lecture is quick, else none."""
        return dict(quick) if self.quick else {}

    def load(self, name: str, overrides: dict[str, Any]) -> SweepConfig:
        """A lecture sweep file with `overrides` (as `--set`), its Ray Tune results kept in the
        report's folder."""
        return self.load_path(self.files / name, overrides)

    def load_path(self, path: Path, overrides: dict[str, Any]) -> SweepConfig:
        where = {"storage.path": str(self.out_dir / "sweep-results")}
        return load_sweep(path, list((overrides | where).items()))

    def command(self, name: str, overrides: dict[str, Any], verb: str = "run") -> str:
        """The command line that runs the same sweep: what a person types to reproduce it."""
        sets = " ".join(
            f"--set {shlex.quote(f'{key}={_yaml_text(value)}')}" for key, value in overrides.items()
        )
        return f"sweep {verb} examples/lecture/{name}" + (f" {sets}" if sets else "")

    def run(
        self,
        name: str,
        overrides: dict[str, Any],
        *,
        path: Path | None = None,
        importance: bool = False,
    ) -> SweepResult:
        """Run a sweep file as `sweep run` does (Ray, MLflow, the file as written kept on the
        sweep's run for `sweep refine`), then read it back; `importance` as `sweep report` computes
        it."""
        from sweeps.driver.analysis.report import load_report
        from sweeps.driver.running.launch import run_sweep
        from sweeps.driver.tracking.queries import SweepReader
        from sweeps.driver.tracking.sweep_run import log_user_sweep_file

        path = path or self.files / name
        config = self.load_path(path, overrides)
        started = time.monotonic()
        self.sweep_log(f"--- sweep run {path.name} ({config.search.num_samples} trials)")
        outcome = run_sweep(config, tracking_uri=self.tracking_uri, echo=self.sweep_log)
        log_user_sweep_file(
            outcome.tracking_uri, outcome.parent_run_id, path.read_text(encoding="utf-8")
        )
        self.echo(
            f"  {config.name}: {dict(outcome.statuses)} in {time.monotonic() - started:.0f} s"
        )
        reader = SweepReader(self.tracking_uri)
        parent = reader.find_sweep_run(outcome.parent_run_id)
        return SweepResult(
            config,
            load_report(reader, outcome.parent_run_id, importance=importance),
            reader,
            reader.trial_runs(parent),
        )

    def save(self, figure: Figure, filename: str) -> str:
        """A matplotlib figure as a PNG in the report's folder; returns its file name."""
        from sweeps.driver.analysis import plots

        figure.savefig(self.out_dir / filename, dpi=100)
        plots.close(figure)
        return filename


class Study(Protocol):
    """A study: a module under studies/ with its claim and how to run it."""

    CLAIM: Claim

    def run(self, lecture: Lecture) -> Finding: ...


def _yaml_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ",".join(_yaml_text(item) for item in value) + "]"
    return str(value)
