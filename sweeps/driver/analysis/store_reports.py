"""What `sweep report` and `sweep refine` do with a sweep in its tracking store: find it by the
one rule for stores, read it, and write the report's plots or the refined sweep file's text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sweeps.driver.analysis.refine import Refinement, refine_sweep
from sweeps.driver.analysis.refine_file import refined_file
from sweeps.driver.analysis.report import SweepReport, load_report
from sweeps.driver.analysis.report_text import FORMATS
from sweeps.driver.sweep_file.reading import load_yaml
from sweeps.driver.sweep_file.validation import validate_sweep
from sweeps.driver.tracking.queries import SweepReader
from sweeps.driver.tracking.store import check_reachable, resolve_tracking_uri
from sweeps.driver.tracking.sweep_run import USER_SWEEP_FILE
from sweeps.errors import SweepError


class SweepNotFound(SweepError):
    """The store answers but holds no sweep by that name or run id."""


class InvalidRefinement(Exception):
    """The refined file does not validate: a bug of sweep's, not the user's."""


@dataclass
class WrittenReport:
    text: str  # the ranked table (or JSON, or CSV)
    plots: list[Path]
    parent_run_id: str


def open_report(
    experiment: str, tracking_uri: str | None, *, importance: bool = True
) -> tuple[SweepReader, SweepReport]:
    """(reader, report) of a sweep, by its experiment name or parent run id, in the store the one
    rule picks."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, create=False)
    reader = SweepReader(uri)
    try:
        return reader, load_report(reader, experiment, importance=importance)
    except LookupError as error:
        raise SweepNotFound(f"{uri}: {error}") from None


def report_sweep(
    experiment: str, *, tracking_uri: str | None, k: int, output_format: str, output_dir: Path
) -> WrittenReport:
    """The sweep's report as text, its plots written to `output_dir` and logged on its parent
    run."""
    # here, not at the top: matplotlib costs `sweep refine` a second it does not need
    from sweeps.driver.analysis.plots import write_plots

    reader, report = open_report(experiment, tracking_uri)
    text = FORMATS[output_format](report, k)
    plots = write_plots(report, output_dir, k=k)
    reader.log_report_files(report.parent_run_id, [str(path) for path in plots])
    return WrittenReport(text=text, plots=plots, parent_run_id=report.parent_run_id)


def refine_from_store(
    experiment: str, *, tracking_uri: str | None, k: int, source: str | None, output: str
) -> tuple[Refinement, str]:
    """The refinement and the refined file's text, validated, from the user's own file where there
    is one
    (`source`, else the copy `sweep run` logged), else from the sweep's resolved file."""
    reader, report = open_report(experiment, tracking_uri)
    coarse_text = reader.sweep_file(report.parent_run_id)
    if coarse_text is None:
        raise SweepError(
            f"sweep run {report.parent_run_id} has no search.yaml: it was not run by `sweep run`"
        )
    user_text = (
        Path(source).read_text(encoding="utf-8")
        if source
        else reader.sweep_file(report.parent_run_id, USER_SWEEP_FILE)
    )
    coarse = load_yaml(coarse_text, source="the coarse sweep (search.yaml on its run)")
    try:
        refined = refine_sweep(coarse, report, k=k)
        text = refined_file(
            user_text or coarse_text, coarse, refined.changes, comments=refined.comments
        )
    except ValueError as error:
        raise SweepError(str(error)) from None
    except SweepError as error:  # --from a file that no longer validates
        raise SweepError(f"{source}: {error}") from None
    if user_text is None:
        refined.warnings.append(
            "the sweep's own file was not logged (not run by `sweep run`?): writing its "
            "resolved settings; "
            "--from FILE keeps your comments"
        )
    try:
        validate_sweep(load_yaml(text, source=output), source=output)
    except SweepError as error:
        raise InvalidRefinement(f"the refined sweep does not validate:\n{error}") from None
    return refined, text
