"""The lecture's report as one self-contained HTML page (inline style, its PNGs beside it)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from sweeps.driver.lecture.study import (
    FAILED,
    NOT_REPRODUCED,
    REPRODUCED,
    SKIPPED,
    Finding,
)

COLOURS = {REPRODUCED: "#1b7f3b", NOT_REPRODUCED: "#b3261e", SKIPPED: "#6b6b6b", FAILED: "#b3261e"}

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; padding: 0 1em;
  color: #1d1d1d; line-height: 1.45; }
h1 { font-size: 1.6em; }
h2 { margin-top: 2.2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.verdict { color: white; padding: .1em .5em; border-radius: .3em; font-weight: 600;
  white-space: nowrap; }
table { border-collapse: collapse; margin: .6em 0; }
td, th { border: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }
.criterion { background: #f4f6f8; border-left: 4px solid #8aa1b4; padding: .5em .8em; }
pre { background: #f4f6f8; padding: .6em; overflow-x: auto; }
img { max-width: 100%; border: 1px solid #eee; margin: .4em 0; }
.meta { color: #555; font-size: .92em; }
"""


@dataclass(frozen=True)
class RunFacts:
    """What the page says about the run as a whole."""

    quick: bool
    seconds: float
    tracking_uri: str
    lecture_run_id: str
    machine: str
    started: str


def write_report(findings: list[Finding], out_dir: Path, facts: RunFacts) -> Path:
    path = out_dir / "index.html"
    body = [_header(findings, facts), *(_section(finding) for finding in findings)]
    path.write_text(
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>sweep "
        f"lecture</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n",
        encoding="utf-8",
    )
    return path


def _badge(verdict: str) -> str:
    return (
        f"<span class='verdict' style='background:{COLOURS[verdict]}'>{html.escape(verdict)}</span>"
    )


def _header(findings: list[Finding], facts: RunFacts) -> str:
    rows = "".join(
        "<tr><td><a "
        f"href='#{finding.claim.key}'>{html.escape(finding.claim.title)}</a></td><td>{_badge(finding.verdict)}</td>"
        f"<td>{html.escape(finding.why)}</td><td>{finding.seconds:.0f} s</td></tr>"
        for finding in findings
    )
    mode = "--quick (fewer trials, seeds and epochs)" if facts.quick else "default"
    return (
        "<h1>The CS231n lecture on training neural networks, reproduced with sweep</h1>"
        "<p>Each section states a claim of the lecture and the rule that decides it, written "
        "in the code before any run "
        "(sweeps/driver/lecture/), then what the run measured, its figures, and the verdict. "
        "Every number comes from "
        "the named sweep files under <code>examples/lecture/</code>, run as <code>sweep "
        "run</code> runs them (their "
        "trials are in MLflow) or, where no training loop over Ray is needed, computed "
        "in-process with the trials' own code.</p>"
        f"<p class='meta'>Run {html.escape(facts.started)} on {html.escape(facts.machine)}; "
        f"mode {html.escape(mode)}; "
        f"{facts.seconds / 60:.1f} minutes in all. MLflow: {html.escape(facts.tracking_uri)}, "
        "experiment <code>lecture</code>, "
        f"run {html.escape(facts.lecture_run_id)} (this report and its figures are logged on "
        "it).</p>"
        "<table><tr><th>claim</th><th>verdict</th><th>what decided "
        f"it</th><th>time</th></tr>{rows}</table>"
    )


def _section(finding: Finding) -> str:
    claim = finding.claim
    files = ", ".join(
        f"<code>examples/lecture/{html.escape(name)}</code>" for name in claim.sweep_files
    )
    numbers = "".join(
        f"<tr><td>{html.escape(what)}</td><td>{html.escape(value)}</td></tr>"
        for what, value in finding.numbers
    )
    figures = "".join(
        f"<p><img src='{html.escape(name)}' alt='{html.escape(name)}'></p>"
        for name in finding.figures
    )
    commands = "\n".join(finding.commands)
    runs = ", ".join(
        f"{html.escape(name)}: <code>{html.escape(run_id)}</code>"
        for name, run_id in finding.sweep_runs.items()
    )
    return (
        f"<h2 id='{claim.key}'>{html.escape(claim.title)} {_badge(finding.verdict)}</h2>"
        f"<p><b>Claim.</b> {html.escape(claim.statement)}</p>"
        f"<p class='criterion'><b>Reproduced when</b> {html.escape(claim.criterion)}</p>"
        f"<p><b>Sweep files:</b> {files}</p>"
        f"<p><b>Verdict: {html.escape(finding.verdict)}</b> ({html.escape(finding.why)}).</p>"
        + (f"<table><tr><th>measured</th><th>value</th></tr>{numbers}</table>" if numbers else "")
        + figures
        + (f"<p><b>Reproduce:</b></p><pre>{html.escape(commands)}</pre>" if commands else "")
        + (f"<p class='meta'>MLflow sweep runs: {runs}</p>" if runs else "")
        + f"<p class='meta'>This study took {finding.seconds:.0f} s.</p>"
    )
