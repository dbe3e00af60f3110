"""The MLflow UI on a finished search's store, in headless Chromium: the runs table shows the
search and its trials, a trial's confusion matrix is served as a PNG, and a screenshot is kept in
``test-output/mlflow_ui.png``."""

from __future__ import annotations

import shutil
import urllib.parse

import pytest
import requests
from mlflow import MlflowClient
from PIL import Image

from orchestrator.search import run_search
from orchestrator.tracking.keys import runs_view_url
from tests.conftest import tiny_config
from tests.e2e_helpers import ROOT, headless_chromium, mlflow_server, png_size
from tests.test_tracking_fixtures import store_template  # noqa: F401  (a fixture)

SEARCH = "e2e-ui"
SCREENSHOT = ROOT / "test-output" / "mlflow_ui.png"
RENDER_TIMEOUT = 90.0  # the runs table renders in 2-20 s on a busy 2-core machine
RUN_NAME_CELL = '[role="gridcell"][col-id="attributes.`Run Name`"]'


@pytest.fixture
def finished_search(ray_session, store_template, tmp_path):  # noqa: F811
    """A 2-trial grid search tracked in a local SQLite store: (result, tracking URI)."""
    db = tmp_path / "ui.db"
    shutil.copyfile(store_template, db)
    uri = f"sqlite:///{db}"
    config = tiny_config(
        **{
            "tracking.enabled": True,
            "tracking.tracking_uri": uri,
            "training.epochs": 2,
            "tracking.trial_figures": "all",  # every trial's PNGs are checked
            "search.algorithm": "grid",
            "search.space": {"training.optimizer.lr": {"grid": [1e-3, 1e-2]}},
        }
    )
    return run_search(config, name=SEARCH, storage=str(tmp_path / "ray")), uri


@pytest.fixture
def ui_server(finished_search, tmp_path):
    """`mlflow server` on the search's store (artifacts read from their local folder)."""
    with mlflow_server(finished_search[1], tmp_path) as url:
        yield url


def run_names(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    # a cell's text is the run colour's label, then the run name
    cells = driver.find_elements(By.CSS_SELECTOR, RUN_NAME_CELL)
    return [cell.text.strip().splitlines()[-1] for cell in cells if cell.text.strip()]


def click_expander(run_name: str):
    """A wait condition: click the unfold button in ``run_name``'s row once it is there."""
    from selenium.webdriver.common.by import By

    def condition(driver) -> bool:
        for cell in driver.find_elements(By.CSS_SELECTOR, RUN_NAME_CELL):
            if cell.text.strip().endswith(run_name):
                cell.find_element(By.TAG_NAME, "button").click()
                return True
        return False

    return condition


def wait_for(driver, condition, what: str):
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.support.ui import WebDriverWait

    # the table re-renders while runs load: a cell found a moment ago may be gone
    ignored = (NoSuchElementException, StaleElementReferenceException)
    wait = WebDriverWait(driver, RENDER_TIMEOUT, poll_frequency=0.5, ignored_exceptions=ignored)
    try:
        return wait.until(condition)
    except TimeoutException:
        SCREENSHOT.parent.mkdir(exist_ok=True)
        driver.save_screenshot(str(SCREENSHOT))
        pytest.fail(
            f"the MLflow UI did not show {what} within {RENDER_TIMEOUT:.0f} s at "
            f"{driver.current_url}; run names seen: {run_names(driver)}; screenshot: {SCREENSHOT}"
        )


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_mlflow_ui_shows_search_and_serves_trial_artifacts(finished_search, ui_server, tmp_path):
    result, uri = finished_search
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(SEARCH)
    trial_ids = sorted(t.trial_id for t in result.trials)
    assert len(trial_ids) == 2

    # the search tags its experiment as model training, and prints where its runs are
    assert experiment.tags.get("mlflow.experimentKind") == "custom_model_development"
    assert result.runs_url.endswith(f"/#/experiments/{experiment.experiment_id}/runs")

    with headless_chromium(tmp_path) as driver:
        # the experiment's runs table, at the URL the command line prints (for this server)
        driver.get(runs_view_url(uri, experiment.experiment_id, ui_server))
        wait_for(driver, lambda d: SEARCH in run_names(d), f"the search run '{SEARCH}'")
        assert driver.title.startswith("Runs")
        # child runs are folded under their parent: unfold it as a user would
        wait_for(driver, click_expander(SEARCH), f"the unfold button of '{SEARCH}'")
        wait_for(
            driver,
            lambda d: set(trial_ids) | {"refit-best"} <= set(run_names(d)),
            f"the trial runs {trial_ids} and refit-best under the search",
        )
        assert sorted(run_names(driver)) == sorted([SEARCH, "refit-best", *trial_ids])
        SCREENSHOT.parent.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOT))

    width, height = png_size(SCREENSHOT.read_bytes())
    with Image.open(SCREENSHOT) as image:  # a rendered page (text, icons), not a blank one
        colours = image.convert("L").getcolors(maxcolors=256)
    assert width >= 1200 and height >= 600 and len(colours) > 32

    # a trial's confusion matrix through the UI server's artifact endpoint
    (trial,) = client.search_runs(
        [experiment.experiment_id], f"tags.`automl.trial_id` = '{trial_ids[0]}'"
    )
    query = urllib.parse.urlencode({"path": "confusion_matrix.png", "run_uuid": trial.info.run_id})
    response = requests.get(f"{ui_server}/get-artifact?{query}", timeout=30)
    assert response.status_code == 200, response.text[:500]
    assert response.headers["Content-Type"].startswith("image/png")
    assert min(png_size(response.content)) >= 200
