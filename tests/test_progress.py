"""What `automl search` and `automl train` show while they run: the live view on a terminal,
plain lines on a pipe, nothing but the final line under --quiet; and the Tune callback that
feeds the search's view."""

from __future__ import annotations

import io
import json
import logging
import pickle
import re
import sys
from types import SimpleNamespace

import pytest
import yaml
from click.testing import CliRunner
from rich.console import Console

from orchestrator import progress, report, trainprogress
from orchestrator.cli import main
from orchestrator.trials import TrialSummary
from tests.conftest import tiny_config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def terminal(width: int = 200) -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=width, color_system=None)


def drawn(view: progress.View, console: Console) -> str:
    console.print(view.render())
    return console.file.getvalue()


def summary(trial_id, status, accuracy=None, std=None, lr=0.01) -> TrialSummary:
    cv = {} if accuracy is None else {"accuracy": {"mean": accuracy, "std": std, "per_fold": []}}
    error = "ValueError: boom" if status == "ERROR" else None
    return TrialSummary(trial_id, status, {"training.optimizer.lr": lr}, cv, 4, error)


def test_the_view_follows_the_terminal_and_quiet(monkeypatch):
    for forcing in ("FORCE_COLOR", "TTY_COMPATIBLE"):  # rich takes any stream as a terminal
        monkeypatch.delenv(forcing, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert progress.choose_mode(False, terminal()) == "live"
    assert progress.choose_mode(True, terminal()) == "quiet"
    assert progress.choose_mode(False, Console(file=io.StringIO())) == "plain"
    assert progress.choose_mode(False, stream=io.StringIO()) == "plain"
    tty = SimpleNamespace(isatty=lambda: True)
    assert progress.choose_mode(False, stream=tty) == "live"
    monkeypatch.setenv("TERM", "dumb")  # no cursor to move: lines instead
    assert progress.choose_mode(False, stream=tty) == "plain"


def test_the_live_search_view_counts_trials_and_shows_the_best_and_the_budget():
    clock, console = Clock(), terminal()
    config = tiny_config(**{"search.time_budget_s": 600})
    view = progress.SearchView(config, "live", console, clock)
    clock.now += 20  # the data is prepared before Tune starts: its budget starts then
    assert "budget 10:00, counted once the trials start" in drawn(view, terminal())
    view.search_started(6)
    for trial_id in ("t1", "t2", "t3", "t4"):
        view.trial_started(trial_id, {})
    view.trial_result("t4", {"epoch": 2.0, "val_accuracy": 0.5})
    view(summary("t3", "ERROR"))  # no metrics: the metric is still to be told
    view(summary("t1", "TERMINATED", 0.9, 0.02, lr=0.01))
    view(summary("t2", "STOPPED", 0.95))  # stopped early: ranked after those that ran out
    clock.now += 100
    text = drawn(view, console)
    assert "3/6  1 finished · 1 stopped early · 1 failed · 1 running" in text
    assert "val_accuracy 0.9000 ± 0.0200  trial t1  training.optimizer.lr=0.01" in text
    assert "t4 epoch 2/4" in text
    assert "2:00 elapsed · budget 10:00, 8:20 left" in text
    view(summary("t4", "TERMINATED", 0.92, 0.01, lr=0.02))
    view.search_ended()
    text = drawn(view, terminal())
    assert "4/6  2 finished" in text and "trial t4" in text and "final model" in text


def test_a_resumed_search_counts_and_ranks_the_trials_it_had_ended():
    view = progress.SearchView(tiny_config(), "live", terminal(), Clock())
    view.search_started(3)
    view.search_resumed([summary("t0", "TERMINATED", 0.9, 0.02), summary("t1", "ERROR")])
    view(summary("t2", "TERMINATED", 0.8, 0.02))
    text = drawn(view, terminal())
    assert "3/3  1 finished · 0 stopped early · 0 failed · 0 running · 2 before the resume" in text
    assert "trial t0" in text


def test_the_live_view_cuts_its_lines_short_rather_than_wrapping():
    view = progress.SearchView(tiny_config(), "live", terminal(), Clock())
    view.search_started(3)
    view.trial_started("a_long_trial_name_00001", {})
    view(summary("t0", "TERMINATED", 0.9, 0.02, lr=0.012345678901234))
    assert len(drawn(view, terminal(width=50)).splitlines()) == len(view.rows(0.0)) == 4


@pytest.mark.parametrize(
    "objective",
    [{"search.metric": "val_log_loss"}, {"search.metrics": ["val_log_loss", "n_params"]}],
    ids=["metric", "first-of-two"],
)
def test_a_metric_to_minimise_keeps_the_lowest(objective):
    config = tiny_config(**objective)
    view = progress.SearchView(config, "live", terminal(), Clock())
    for trial_id, loss in (("t1", 0.4), ("t2", 0.2), ("t3", 0.3)):
        cv = {"log_loss": {"mean": loss, "std": 0.01}, "accuracy": {"mean": 0.9, "std": 0.0}}
        view(TrialSummary(trial_id, "TERMINATED", {}, cv, 4))
    assert view.best.trial_id == "t2"
    assert "val_log_loss 0.2000 ± 0.0100  trial t2" in drawn(view, terminal())


def test_the_live_view_draws_on_its_console_and_stops_on_an_interrupt():
    console, stdout = terminal(), sys.stdout
    view = progress.SearchView(tiny_config(), "live", console, Clock())
    with pytest.raises(KeyboardInterrupt), view:
        view.search_started(2)
        view(summary("t1", "TERMINATED", 0.9, 0.02))
        print("said while it runs")  # goes above the view, on the same console
        raise KeyboardInterrupt
    assert view.live is None and sys.stdout is stdout
    text = console.file.getvalue()
    assert "said while it runs" in text
    assert text.rstrip().endswith("\x1b[?25h")  # the last drawing, then the cursor back
    assert "1/2  1 finished" in text.split("said while it runs")[-1]


def test_plain_search_lines_are_one_per_finished_trial(capsys):
    view = progress.SearchView(tiny_config(), "plain", None, Clock())
    with view:
        view.search_started(3)
        view.trial_started("t1", {})
        view.trial_result("t1", {"epoch": 1.0})
        view(summary("t1", "TERMINATED", 0.9, 0.02))
        view(summary("t2", "ERROR"))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("trial t1 TERMINATED") and "accuracy 0.9000" in lines[0]
    assert lines[1].startswith("trial t2 ERROR") and lines[1].endswith("ValueError: boom")


def epoch(n: int, accuracy: float, last: bool = False) -> dict[str, float]:
    metrics = {"epoch": float(n), "train_loss": 1.0 / n, "val_accuracy": accuracy}
    return {**metrics, "refit_epochs": 3.0} if last else metrics


def test_the_live_train_view_shows_the_epoch_and_the_best_so_far():
    clock = Clock()
    view = trainprogress.TrainView(
        tiny_config(**{"training.epochs": 10}), "live", terminal(), clock
    )
    assert "preparing the data" in drawn(view, terminal())
    for n, accuracy in ((1, 0.5), (2, 0.8), (3, 0.7)):
        clock.now += 1
        view(epoch(n, accuracy))
    text = drawn(view, terminal())
    assert "epoch 3/10  2 folds in lockstep" in text
    assert "train_loss 0.3333 · val_accuracy 0.7000 · best 0.8000 at epoch 2" in text
    assert "0:03 elapsed" in text
    view(epoch(4, 0.75, last=True))
    assert "cross-validated 2 folds in 4 epochs; the final model" in drawn(view, terminal())


@pytest.mark.parametrize(("gap", "printed"), [(0.1, [1, 5]), (1.5, [1, 2, 3, 4, 5])])
def test_plain_train_lines_are_at_most_one_per_epoch_and_interval(capsys, gap, printed):
    clock = Clock()
    view = trainprogress.TrainView(tiny_config(), "plain", None, clock)
    for n in range(1, 6):
        clock.now += gap
        view(epoch(n, 0.5, last=n == 5))
    lines = capsys.readouterr().out.splitlines()
    assert [int(line.split()[1]) for line in lines] == printed


def test_quiet_views_print_nothing_while_running(capsys):
    search = progress.SearchView(tiny_config(), "quiet", None, Clock())
    train = trainprogress.TrainView(tiny_config(), "quiet", None, Clock())
    logger = logging.getLogger("mlflow.somewhere")
    with search, train:
        search(summary("t1", "TERMINATED", 0.9, 0.02))
        train(epoch(1, 0.5, last=True))
        print("Successfully registered model 'm'.", file=sys.stderr)  # as MLflow says it
        assert not logger.isEnabledFor(logging.WARNING) and logger.isEnabledFor(logging.ERROR)
    assert capsys.readouterr() == ("", "")
    assert logger.isEnabledFor(logging.WARNING)


# ---------------------------------------------------------------------------- Tune's callback
def tune_trial(trial_id, result, status="TERMINATED"):
    """What the printer reads of Tune's ``Trial``."""
    return SimpleNamespace(
        trial_id=trial_id,
        config={"training.optimizer.lr": 0.01},
        last_result=result,
        status=status,
        is_finished=lambda: status in ("TERMINATED", "ERROR"),
        pickled_error_file="/nonexistent/error.pkl",
        error_file="/nonexistent/error.txt",
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def __call__(self, trial):
        self.events.append(("ended", trial.trial_id, trial.status, trial.cv))

    def search_resumed(self, trials):
        self.events.append(("resumed", [(t.trial_id, t.status) for t in trials]))

    def __getattr__(self, name):
        return lambda *args: self.events.append((name, *args))


def test_the_printer_hands_tunes_events_to_the_view():
    from orchestrator.ray_adapter import TrialPrinter

    view = Recorder()
    printer = TrialPrinter(view)
    done = {"epoch": 4, "cv_accuracy_mean": 0.9, "cv_accuracy_std": 0.02, "refit_epochs": 4}
    done.update(fold1_accuracy=0.88, fold2_accuracy=0.92)
    stopped = {"epoch": 1, "val_accuracy": 0.5}
    restored = [tune_trial("t0", done, "TERMINATED"), tune_trial("t1", {}, "PENDING")]
    printer.setup(total_num_samples=3)
    printer.on_step_begin(0, restored)
    printer.on_step_begin(1, restored)  # told once
    printer.on_trial_start(1, [], tune_trial("t1", {}))
    printer.on_trial_result(1, [], tune_trial("t1", {}), {"epoch": 1})
    printer.on_trial_complete(2, [], tune_trial("t1", done))
    printer.on_trial_complete(2, [], tune_trial("t2", stopped))
    printer.on_trial_error(3, [], tune_trial("t3", stopped, "ERROR"))
    printer.on_experiment_end([])
    accuracy = {"accuracy": {"mean": 0.9, "std": 0.02, "per_fold": [0.88, 0.92]}}
    assert view.events == [
        ("search_started", 3),
        ("resumed", [("t0", "TERMINATED")]),
        ("trial_started", "t1", {"training.optimizer.lr": 0.01}),
        ("trial_result", "t1", {"epoch": 1}),
        ("ended", "t1", "TERMINATED", accuracy),
        ("ended", "t2", "STOPPED", {"accuracy": {"mean": 0.5, "std": None, "per_fold": []}}),
        ("ended", "t3", "ERROR", {"accuracy": {"mean": 0.5, "std": None, "per_fold": []}}),
        ("search_ended",),
    ]


def test_the_printer_pickles_as_the_running_one_and_takes_a_plain_function():
    """Tune pickles its callbacks with the experiment (a view holds a terminal and a thread);
    a resumed search's printer is the one the command made for it."""
    from orchestrator.ray_adapter import TrialPrinter

    lines = []
    printer = TrialPrinter(lambda trial: lines.append(trial.status))
    with progress.SearchView(tiny_config(), "live", terminal(), Clock()) as view:
        running = TrialPrinter(view)
        assert pickle.loads(pickle.dumps(printer)) is running
    printer.setup(total_num_samples=2)  # a plain function gets finished trials only
    printer.on_trial_complete(1, [], tune_trial("t1", {"epoch": 1}))
    assert lines == ["STOPPED"]


def test_a_resumed_search_with_nothing_left_to_run_counts_its_ended_trials():
    from orchestrator.ray_adapter import TrialPrinter

    view = Recorder()
    TrialPrinter(view).on_experiment_end([tune_trial("t0", {}), tune_trial("t1", {}, "ERROR")])
    assert view.events == [("resumed", [("t0", "STOPPED"), ("t1", "ERROR")]), ("search_ended",)]


# ---------------------------------------------------------------------------- final lines
def test_the_final_lines():
    refit = SimpleNamespace(
        test_metrics={"accuracy": 0.95}, tracking={"registry_uri": "models:/iris/3"}
    )
    best = summary("a_00001", "TERMINATED", 0.9, 0.02)
    search = SimpleNamespace(name="s", metric="val_accuracy", best=best, refit=refit, path="/rr/s")
    assert report.search_line(search) == (
        "search s: best val_accuracy 0.9000 ± 0.0200 (trial a_00001), test accuracy 0.9500, "
        "model models:/iris/3"
    )
    search.refit = SimpleNamespace(test_metrics={"accuracy": 0.95}, tracking=None)
    assert report.search_line(search).endswith("results /rr/s (not tracked)")
    search.best = None
    assert report.search_line(search) == "search s: no trial finished; results /rr/s"


# ---------------------------------------------------------------------------- end to end
SEARCH = {
    "seed": 3,
    "data": {"source": "builtin:iris"},
    "split": {"folds": 2},
    "model": {"hidden_sizes": [8]},
    "training": {"epochs": 2, "early_stopping": {"enabled": False}},
    "search": {
        "algorithm": "random",
        "num_samples": 2,
        "max_concurrent": 2,
        "space": {"training.optimizer.lr": {"loguniform": [1.0e-3, 1.0e-1]}},
    },
}


def search(tmp_path, name, *args):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SEARCH))
    return CliRunner().invoke(
        main,
        ["search", "--config", str(tmp_path / "s.yaml"), "--no-tracking"]
        + ["--storage", str(tmp_path / "rr"), "--experiment", name, *args],
    )


@pytest.mark.usefixtures("ray_session")
def test_a_piped_search_prints_a_line_per_finished_trial(tmp_path):
    result = search(tmp_path, "piped")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len([line for line in lines if re.match(r"trial \S+ TERMINATED ", line)]) == 2
    assert lines[-1].startswith("search piped: best val_accuracy ")
    assert "(not tracked)" in lines[-1]


@pytest.mark.usefixtures("ray_session")
def test_a_quiet_search_prints_only_the_final_line(tmp_path):
    result = search(tmp_path, "hush", "--quiet", "--json", str(tmp_path / "s.json"))
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "s.json").read_text())
    assert payload["num_trials"] == 2
    [line] = result.stdout.splitlines()
    assert result.stderr == ""
    best = payload["best"]
    assert line.startswith(f"search hush: best val_accuracy {best['cv']['accuracy']['mean']:.4f}")
    assert f"(trial {best['trial_id']}), test accuracy {best['test']['accuracy']:.4f}" in line


@pytest.mark.usefixtures("ray_session")
def test_a_search_on_a_terminal_draws_the_live_view(tmp_path, monkeypatch):
    console = terminal()
    monkeypatch.setattr(
        progress,
        "search_view",
        lambda config, quiet: progress.SearchView(config, "live", console, Clock()),
    )
    result = search(tmp_path, "live")
    assert result.exit_code == 0, result.output
    text = console.file.getvalue()
    assert "2/2  2 finished · 0 stopped early · 0 failed · 0 running" in text
    assert re.search(r"best +val_accuracy 0\.\d{4} ± 0\.\d{4}  trial ", text)
    assert result.stdout.splitlines()[-1].startswith("search live: best val_accuracy ")


def test_quiet_train_prints_the_final_line_and_errors_still_show(tmp_path):
    fast = ["--data", "builtin:iris", "--folds", "2", "--epochs", "2", "--no-tracking", "-q"]
    result = CliRunner().invoke(main, ["train", *fast])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("train: val_accuracy "), result.output
    assert lines[0].endswith(", model not logged (tracking off)")
    result = CliRunner().invoke(main, ["train", *fast, "--set", "model.hiden_sizes=[4]"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("error: ") and "did you mean 'hidden_sizes'" in result.stderr
