"""The search report (``automl report``) on a real tiny search: one self-contained HTML page
with every section, whose figures all render in headless Chromium without a JavaScript error
(a full-page screenshot is kept in ``test-output/search_report.png``); the Pareto front of a
two-objective search; a conditional space; and one line for an experiment that is not there."""

from __future__ import annotations

import re
import shutil
import time

import pytest
from mlflow import MlflowClient
from PIL import Image

from orchestrator.errors import TrackingError
from orchestrator.search import run_search
from orchestrator.searchreport import render_report, write_report
from orchestrator.tracking.reportdata import ReportData, TrialRecord, load_report_data
from tests.conftest import tiny_config
from tests.e2e_helpers import ROOT, headless_chromium, png_size
from tests.test_tracking_fixtures import store_template  # noqa: F401  (a fixture)

SEARCH = "report-search"
SEARCHED = ["training.optimizer.lr", "model.dropout"]
SECTIONS = ("summary", "trials", "history", "parallel", "importance", "best", "test")
FIGURES = ("history", "parallel", "importance", "curves", "confusion")
SCREENSHOT = ROOT / "test-output" / "search_report.png"
RENDER_TIMEOUT = 60.0
RENDERED = """return arguments[0].map(id => {
    const div = document.getElementById(id);
    return !!div && div.classList.contains('js-plotly-plot') && !!div.querySelector('.main-svg');
});"""


@pytest.fixture(scope="module")
def searched(ray_session, store_template, tmp_path_factory):  # noqa: F811
    """A 4-trial random search over lr and dropout, 2 epochs, tracked in a fresh SQLite store:
    (tracking URI, folder)."""
    folder = tmp_path_factory.mktemp("search-report")
    db = folder / "report.db"
    shutil.copyfile(store_template, db)
    uri = f"sqlite:///{db}"
    config = tiny_config(
        **{
            "tracking.enabled": True,
            "tracking.tracking_uri": uri,
            "training.epochs": 2,
            "search.algorithm": "random",
            "search.num_samples": 4,
            "search.space": {
                "training.optimizer.lr": {"loguniform": [1e-3, 1e-1]},
                "model.dropout": {"uniform": [0.0, 0.5]},
            },
        }
    )
    run_search(config, name=SEARCH, storage=str(folder / "ray"))
    return uri, folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with headless_chromium(tmp_path_factory.mktemp("chromium"), width=1400, height=1000) as d:
        yield d


def scripts(page: str) -> list[str]:
    return re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S)


def render_in_browser(driver, path, figures) -> None:
    """Open ``path`` and wait until every figure in ``figures`` has drawn its SVG; no errors."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    ids = [f"fig-{name}" for name in figures]
    driver.get(path.as_uri())
    try:
        WebDriverWait(driver, RENDER_TIMEOUT, poll_frequency=0.2).until(
            lambda d: all(d.execute_script(RENDERED, ids))
        )
    except TimeoutException:
        drawn = dict(zip(ids, driver.execute_script(RENDERED, ids), strict=True))
        pytest.fail(f"figures not rendered within {RENDER_TIMEOUT:.0f} s: {drawn}")
    plots = driver.execute_script("return document.querySelectorAll('.js-plotly-plot').length")
    assert plots == len(figures)
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_the_report_reads_the_search_back(searched):
    uri, _ = searched
    data = load_report_data(uri, SEARCH)
    assert (data.search, data.metric, data.mode, data.objectives) == (
        SEARCH,
        "val_accuracy",
        "max",
        [],
    )
    assert data.searched == SEARCHED
    assert len(data.trials) == 4 and {t.status for t in data.trials} == {"COMPLETED"}
    assert all(set(t.params) == set(SEARCHED) and t.epochs == 2 for t in data.trials)
    assert data.best.value == max(t.value for t in data.trials)
    assert [step for step, _ in data.best_history["val_accuracy"]] == [1, 2]
    assert data.best_confusion.columns == ["true", "setosa", "versicolor", "virginica"]
    assert len(data.best_confusion.rows) == 3
    assert 0.0 <= data.test_metrics["test_accuracy"] <= 1.0
    assert {"true", "predicted"} <= set(data.test_errors.columns)


def test_the_report_is_one_self_contained_page_whose_figures_render(searched, browser):
    uri, folder = searched
    path = write_report(uri, SEARCH, folder / "out" / "report.html")
    page = path.read_text()
    assert 'src="http' not in page and "<link" not in page
    assert sum(len(s) > 1_000_000 for s in scripts(page)) == 1  # plotly.js, inlined once
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert 'id="pareto"' not in page and "fANOVA" in page
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(SEARCH).experiment_id
    for trial in client.search_runs([experiment], "tags.`automl.role` = 'trial'"):
        assert trial.info.run_name in page

    render_in_browser(browser, path, FIGURES)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, height)
    time.sleep(0.5)  # plotly's responsive relayout after the resize
    SCREENSHOT.parent.mkdir(exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    width, shot_height = png_size(SCREENSHOT.read_bytes())
    with Image.open(SCREENSHOT) as image:  # a drawn page, not a blank one
        colours = image.convert("L").getcolors(maxcolors=256)
    assert width >= 1200 and shot_height >= 2000 and len(colours) > 32


def test_two_objectives_draw_the_pareto_front(searched, browser, tmp_path):
    uri, folder = searched
    db = tmp_path / "pareto.db"  # a copy: the other tests read the search as it ran
    shutil.copyfile(uri.removeprefix("sqlite:///"), db)
    uri = f"sqlite:///{db}"
    client = MlflowClient(uri)
    parent = load_report_data(uri, SEARCH)
    client.set_tag(
        parent.parent_run_id,
        "automl.objectives",
        '[["val_accuracy", "max"], ["predict_ms", "min"]]',
    )
    on_front = {parent.trials[0].run_id, parent.trials[3].run_id}
    for k, trial in enumerate(parent.trials):
        client.log_metric(trial.run_id, "predict_ms", 1.0 + k)
        client.set_tag(trial.run_id, "pareto", str(trial.run_id in on_front).lower())

    data = load_report_data(uri, SEARCH)
    assert data.objectives == [("val_accuracy", "max"), ("predict_ms", "min")]
    assert {t.run_id for t in data.trials if t.pareto} == on_front
    assert [t.objectives[1] for t in data.trials] == [1.0, 2.0, 3.0, 4.0]
    page = render_report(data)
    assert '<section id="pareto">' in page and page.count(">★</td>") == 2
    path = tmp_path / "pareto.html"
    path.write_text(page)
    render_in_browser(browser, path, (*FIGURES, "pareto"))


def test_a_conditional_space_reports_the_params_every_trial_has():
    """Trials of two families with keys of their own (JSON-text lists among them): the study
    takes them, and importance leaves out the keys not every trial has."""

    def trial(k: int, family: str, own: dict[str, str], value: float) -> TrialRecord:
        params = {"model.family": family, "training.optimizer.lr": str(0.001 * (k + 1)), **own}
        params["model.dropout"] = str(0.1 * k)
        return TrialRecord(
            *(f"run{k}", f"t{k}", f"t{k}", "COMPLETED", params, value, 0.01, []),
            *(2, 1000 * k, 1000 * k + 500, None),
        )

    trials = [
        trial(k, "resnet1d", {"model.channels": f"[{32 * (k + 1)}, 64]"}, 0.5 + 0.1 * k)
        for k in range(3)
    ] + [trial(k, "inception", {"model.depth": str(3 * k)}, 0.4 + 0.1 * k) for k in range(3, 6)]
    keys = ["model.family", "training.optimizer.lr", "model.dropout"]
    data = ReportData(
        *("sqlite:///x.db", "exp", "1", "parent", "search", "FINISHED", {}, "val_accuracy"),
        *("max", [], {"training.optimizer.lr": {"loguniform": [1e-4, 1e-2]}}),
        searched=[*keys, "model.channels", "model.depth"],
        trials=trials,
        best=trials[2],
    )
    page = render_report(data)
    assert 'id="fig-importance"' in page and 'id="fig-parallel"' in page
    assert "left out (not in every trial, or one value): model.channels, model.depth" in page
    assert "[64, 64]" in page  # a JSON-text list shown as logged


def test_a_missing_experiment_is_one_line_naming_the_known_ones(searched):
    uri, _ = searched
    with pytest.raises(
        TrackingError, match=rf"no experiment named 'nope' .*known: .*{SEARCH}"
    ) as err:
        load_report_data(uri, "nope")
    assert "\n" not in str(err.value)
