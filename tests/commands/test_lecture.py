"""`sweep lecture`'s bad input: refused in one line, exit 2, before anything is run or written."""

from __future__ import annotations

from tests.conftest import invoke


def test_credentials_in_the_tracking_uri_are_refused_without_repeating_them(tmp_path):
    result = invoke(
        "lecture",
        "--quick",
        "-o",
        str(tmp_path / "report"),
        "--tracking-uri",
        "http://someone:hunter2@127.0.0.1:5000",
    )
    assert result.exit_code == 2, result.output
    assert (
        "--tracking-uri: credentials do not belong in the URI" in result.output
        and "hunter2" not in result.output
    )
    assert not (tmp_path / "report").exists()


def test_an_unreachable_tracking_store_stops_the_lecture_before_any_study(tmp_path):
    result = invoke(
        "lecture", "-o", str(tmp_path / "report"), "--tracking-uri", "http://127.0.0.1:9"
    )
    assert result.exit_code == 2, result.output
    assert "cannot reach the MLflow tracking store at http://127.0.0.1:9" in result.output
    assert "1. Weight initialization" not in result.output and not (tmp_path / "report").exists()
