"""The user's way of looking: the MLflow UI in a real headless Chromium, against a real `mlflow
server`.

The server is started with `sweep ui`; a tiny sweep logs to it over HTTP; the
browser then checks the sweep's parent run, a nested trial's params and
val_acc, and the compare view of two trials. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
import time

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, run_sweep_cli

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SCREENSHOTS = REPO / "test-artifacts"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)",
    ),
]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1600,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for_text(driver, *texts: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        body = driver.find_element("tag name", "body").text
        if all(text in body for text in texts):
            return body
        # Long tables render only the rows in view: scroll every scrollable area a screen further.
        driver.execute_script(
            "for (const el of document.querySelectorAll('*')) {"
            " if (el.scrollHeight > el.clientHeight + 10) el.scrollTop += el.clientHeight; }"
        )
        if time.monotonic() > deadline:
            missing = [text for text in texts if text not in body]
            raise AssertionError(
                f"page {driver.current_url} never showed {missing}; it shows:\n{body[-3000:]}"
            )
        time.sleep(0.5)


def scroll_to_top(driver) -> None:
    driver.execute_script(
        "window.scrollTo(0, 0); for (const el of document.querySelectorAll('*')) { "
        "el.scrollTop = 0; }"
    )


def test_the_printed_link_opens_the_runs_table_with_the_nested_trials_by_name(
    tmp_path, sweep_ui, ray_address, browser
):
    server_url = sweep_ui.url
    sweep = {
        "name": "ui-check",
        "model": {"arch": "mlp", "hidden": [32]},
        "params": {
            "lr": {"log_uniform": [1.0e-2, 1.0e-1]},
            "activation": {"choice": ["relu", "tanh"]},
        },
        "train": {"epochs": 2},
        "search": {"num_samples": 2},
        "early_stopping": {"scheduler": "none"},
    }
    (tmp_path / "search.yaml").write_text(yaml.safe_dump(sweep))
    result = run_sweep_cli(
        "run",
        "search.yaml",
        "--address",
        ray_address,
        "--tracking-uri",
        server_url,
        "--set",
        f"storage.path={tmp_path / 'results'}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    client = MlflowClient(server_url)
    experiment = client.get_experiment_by_name("ui-check")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(run for run in runs if "mlflow.parentRunId" not in run.data.tags)
    children = sorted(
        (run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id),
        key=lambda run: run.info.run_name,
    )
    assert [run.info.run_name.split()[0] for run in children] == [
        "t00",
        "t01",
    ]  # readable names, not train_trial_<hash>
    SCREENSHOTS.mkdir(exist_ok=True)

    # The link `sweep run` printed lands on the runs table (not the GenAI overview), the sweep's
    # columns shown.
    link = re.search(r"the trials: +(http\S+)", result.stdout).group(1)
    runs = f"{server_url}/#/experiments/{experiment.experiment_id}/runs"
    assert link == f"{runs}?workflowType=machine_learning&viewStateShareKey=sweep"
    browser.get(link)
    body = wait_for_text(browser, parent.info.run_name, "val_acc", "activation")
    assert not any(run.info.run_name in body for run in children)  # collapsed under the parent
    parent_link = browser.find_element("css selector", f'a[href$="/runs/{parent.info.run_id}"]')
    parent_cell = parent_link.find_element(
        "xpath", "./ancestor::div[contains(@class, 'ag-cell-wrapper')][1]"
    )
    parent_cell.find_element(
        "css selector", 'button[data-component-id*="runnamecellrenderer"]'
    ).click()
    wait_for_text(browser, parent.info.run_name, *(run.info.run_name for run in children))
    scroll_to_top(browser)
    browser.save_screenshot(str(SCREENSHOTS / "mlflow-experiment.png"))

    # A trial's page names its parent run and shows its params and val_acc.
    child = children[0]
    browser.get(
        f"{server_url}/#/experiments/{experiment.experiment_id}/runs/{child.info.run_id}?workflowType=machine_learning"
    )
    body = wait_for_text(
        browser, child.info.run_name, parent.info.run_name, "lr", "activation", "val_acc"
    )
    assert (
        f"{child.data.metrics['val_acc']:.4g}"[:4] in body
        or str(round(child.data.metrics["val_acc"], 3))[:4] in body
    )
    scroll_to_top(browser)
    browser.save_screenshot(str(SCREENSHOTS / "mlflow-trial.png"))

    # The compare view opens for the two trials, its charts in the screenshot.
    run_ids = ",".join(f'"{run.info.run_id}"' for run in children)
    browser.get(
        f'{server_url}/#/compare-runs?runs=[{run_ids}]&experiments=["{experiment.experiment_id}"]&workflowType=machine_learning'
    )
    wait_for_text(browser, *(run.info.run_name for run in children), "val_acc", "lr")
    scroll_to_top(browser)
    charts = browser.find_elements("css selector", ".js-plotly-plot, .plot-container, canvas")
    assert charts, "the compare view drew no chart"
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", charts[0])
    browser.save_screenshot(str(SCREENSHOTS / "mlflow-compare.png"))
    assert (SCREENSHOTS / "mlflow-compare.png").stat().st_size > 10_000
