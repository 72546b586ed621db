"""`sweep lecture`: every study in turn on one Ray, then the HTML report, logged on a run of its
own."""

from __future__ import annotations

import json
import math
import os
import platform
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sweeps.driver.cluster import ray_cluster
from sweeps.driver.lecture import STUDY_KEYS
from sweeps.driver.lecture.html_report import RunFacts, write_report
from sweeps.driver.lecture.studies import (
    activations,
    batch_norm,
    coarse_to_fine,
    initialization,
    learning_rate,
    random_vs_grid,
    sanity_checks,
    transfer,
)
from sweeps.driver.lecture.study import FAILED, LECTURE_FILES, Finding, Lecture, LogFile, Study
from sweeps.driver.tracking import store
from sweeps.errors import SweepError, first_line

# In the lecture's order. Each module has CLAIM and run(lecture) -> Finding.
STUDIES: tuple[Study, ...] = (
    initialization,
    activations,
    batch_norm,
    random_vs_grid,
    learning_rate,
    sanity_checks,
    transfer,
    coarse_to_fine,
)


@dataclass
class LectureOutcome:
    findings: list[Finding]
    report: Path
    lecture_run_id: str
    tracking_uri: str
    seconds: float

    @property
    def every_study_ran(self) -> bool:
        return not any(finding.verdict == FAILED for finding in self.findings)


def run_lecture(
    out_dir: Path,
    *,
    quick: bool,
    tracking_uri: str | None,
    studies: tuple[str, ...] = STUDY_KEYS,
    echo: Callable[[str], None] = print,
) -> LectureOutcome:
    """Run the studies named in `studies` (every one by default; the tracking URI by the one rule
    every command uses) and write DIR/index.html."""
    from sweeps.driver.tracking.lecture_run import open_lecture_run

    if not LECTURE_FILES.is_dir():
        raise SweepError(
            f"the lecture's sweep files are not in {LECTURE_FILES}: run it from a checkout of "
            "the repository (pip install -e .)"
        )
    uri = store.resolve_tracking_uri(tracking_uri)  # refuses a URI with credentials in it
    store.check_reachable(uri, create=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    started_at = time.strftime("%Y-%m-%d %H:%M:%S")
    _, run_id = open_lecture_run(
        uri, run_name=f"lecture-{time.strftime('%Y%m%d-%H%M%S')}", quick=quick
    )
    started = time.monotonic()
    log = LogFile(out_dir / "lecture.log")
    log.path.write_text("")
    lecture = Lecture(out_dir=out_dir, tracking_uri=uri, quick=quick, echo=echo, sweep_log=log)
    # One Ray for every sweep: each `run_sweep` finds it running and leaves it be.
    with ray_cluster.ray_alongside(None, verbose=False, meanwhile=lambda: None):
        findings = [run_study(study, lecture) for study in STUDIES if study.CLAIM.key in studies]
    seconds = time.monotonic() - started
    facts = RunFacts(
        quick=quick,
        seconds=seconds,
        tracking_uri=uri,
        lecture_run_id=run_id,
        machine=machine(),
        started=started_at,
    )
    report = write_report(findings, out_dir, facts)
    verdicts = write_verdicts(findings, out_dir, facts)
    outcome = LectureOutcome(findings, report, run_id, uri, seconds)
    log_lecture_run(
        outcome,
        [report, verdicts, *(out_dir / name for finding in findings for name in finding.figures)],
    )
    return outcome


def run_study(study: Study, lecture: Lecture) -> Finding:
    """One study, timed; one that breaks is reported as such and the lecture goes on."""
    lecture.echo(f"{study.CLAIM.title}")
    started = time.monotonic()
    try:
        finding = study.run(lecture)
    except Exception as error:  # a broken study must not lose the others' results
        lecture.sweep_log(traceback.format_exc())
        finding = Finding(
            claim=study.CLAIM,
            verdict=FAILED,
            why=f"{type(error).__name__}: {first_line(error)} (traceback in lecture.log)",
        )
    finding.seconds = time.monotonic() - started
    lecture.echo(f"  {finding.verdict}: {finding.why} ({finding.seconds:.0f} s)")
    return finding


def machine() -> str:
    return (
        f"{platform.node() or 'this machine'}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.machine()}, Python {platform.python_version()}"
    )


def write_verdicts(findings: list[Finding], out_dir: Path, facts: RunFacts) -> Path:
    """The verdicts and numbers as JSON, for programs (and the lecture's own test)."""
    path = out_dir / "verdicts.json"
    claims = {
        finding.claim.key: {
            "title": finding.claim.title,
            "verdict": finding.verdict,
            "why": finding.why,
            "criterion": finding.claim.criterion,
            "sweep_files": list(finding.claim.sweep_files),
            "numbers": dict(finding.numbers),
            "figures": finding.figures,
            "sweep_runs": finding.sweep_runs,
            "seconds": round(finding.seconds, 1),
        }
        for finding in findings
    }
    path.write_text(
        json.dumps(
            {
                "quick": facts.quick,
                "seconds": round(facts.seconds, 1),
                "lecture_run_id": facts.lecture_run_id,
                "claims": claims,
            },
            indent=2,
        )
    )
    return path


def log_lecture_run(outcome: LectureOutcome, files: list[Path]) -> None:
    from sweeps.driver.tracking.lecture_run import close_lecture_run

    metrics = {
        f"{finding.claim.key}.{name}": value
        for finding in outcome.findings
        for name, value in finding.metrics.items()
        if math.isfinite(value)
    } | {f"{finding.claim.key}.seconds": finding.seconds for finding in outcome.findings}
    tags = {f"lecture.verdict.{finding.claim.key}": finding.verdict for finding in outcome.findings}
    tags |= {
        f"lecture.sweep_run.{name}": run_id
        for finding in outcome.findings
        for name, run_id in finding.sweep_runs.items()
    }
    # A claim that does not reproduce is a finding, not a failure of the run.
    close_lecture_run(
        outcome.tracking_uri,
        outcome.lecture_run_id,
        files=files,
        metrics=metrics,
        tags=tags,
        failed=not outcome.every_study_ran,
    )
