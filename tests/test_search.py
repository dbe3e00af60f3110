"""The search orchestrator on a real local Ray (2 CPUs): grid, random, bayes, schedulers,
failures, resume and concurrency."""

from __future__ import annotations

import os
import signal

import pytest
from ray import tune

from orchestrator.search import run_search
from tests.conftest import tiny_config

pytestmark = pytest.mark.usefixtures("ray_session")


def search(tmp_path, name, refit=False, **overrides):
    return run_search(tiny_config(**overrides), name=name, storage=str(tmp_path), refit=refit)


def test_grid_runs_every_combination_once(tmp_path):
    result = search(
        tmp_path,
        "grid",
        refit=True,
        **{
            "search.algorithm": "grid",
            "search.space": {
                "training.optimizer.lr": {"grid": [1e-3, 1e-2]},
                "model.hidden_sizes": {"grid": [[8], [16, 8]]},
            },
        },
    )
    assert len(result.trials) == 4
    seen = {
        (t.config["training.optimizer.lr"], tuple(t.config["model.hidden_sizes"]))
        for t in result.trials
    }
    assert seen == {(1e-3, (8,)), (1e-3, (16, 8)), (1e-2, (8,)), (1e-2, (16, 8))}
    assert all(t.status == "TERMINATED" for t in result.trials)
    # the best trial is refit and tested once; its CV metrics carry per-fold values
    assert result.best is not None and len(result.best.cv["accuracy"]["per_fold"]) == 2
    assert 0.0 <= result.refit.test_metrics["accuracy"] <= 1.0
    payload = result.to_json()
    assert payload["num_trials"] == 4 and payload["best"]["test"]["accuracy"] is not None
    # Tune's own result files: CSV and JSON in every trial folder, no TensorBoard event files
    trial_dirs = [d for d in (tmp_path / "grid").iterdir() if d.is_dir()]
    assert len(trial_dirs) == 4
    for d in trial_dirs:
        assert (d / "result.json").is_file() and (d / "progress.csv").is_file()
        assert not list(d.glob("events.out.tfevents*"))
    assert "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ  # restored after the search


def test_random_search_is_reproducible_with_a_seed(tmp_path):
    space = {
        "training.optimizer.lr": {"loguniform": [1e-4, 1e-1]},
        "model.dropout": {"uniform": [0.0, 0.5]},
    }
    kw = {
        "search.algorithm": "random",
        "search.num_samples": 3,
        "search.space": space,
        "training.epochs": 1,
        "seed": 11,
    }
    first = search(tmp_path, "r1", **kw)
    second = search(tmp_path, "r2", **kw)
    other = search(tmp_path, "r3", **{**kw, "seed": 12})

    def configs(res):
        return sorted(
            (t.config["training.optimizer.lr"], t.config["model.dropout"]) for t in res.trials
        )

    assert len(first.trials) == 3
    assert configs(first) == configs(second)
    assert configs(first) != configs(other)


def test_failed_and_diverging_trials_are_reported_while_others_finish(tmp_path):
    # a CNN kernel larger than the 8x8 digits raises; lr=1e6 on a regression diverges
    result = search(
        tmp_path,
        "fail",
        **{
            "data.source": "builtin:diabetes",
            "search.algorithm": "grid",
            "search.space": {"training.optimizer.lr": {"grid": [1e-3, 1e6]}},
            "training.optimizer.name": "sgd",
            "training.grad_clip": None,
        },
    )
    by_lr = {t.config["training.optimizer.lr"]: t for t in result.trials}
    assert by_lr[1e-3].status == "TERMINATED"
    assert by_lr[1e6].status == "ERROR"
    assert "diverged" in by_lr[1e6].error
    assert result.best.config["training.optimizer.lr"] == 1e-3


def test_trial_that_raises_is_failed_with_its_reason(tmp_path):
    result = search(
        tmp_path,
        "raise",
        **{
            "data.source": "builtin:digits",
            "model.family": "cnn",
            "model.channels": [4],
            "model.head_sizes": [8],
            "training.epochs": 1,
            "search.algorithm": "grid",
            "model.padding": "valid",
            "search.space": {"model.kernel_size": {"grid": [3, 11]}},
        },
    )
    by_k = {t.config["model.kernel_size"]: t for t in result.trials}
    assert by_k[3].status == "TERMINATED"
    assert by_k[11].status == "ERROR" and "kernel" in by_k[11].error.lower()


def test_asha_stops_poor_trials_early(tmp_path):
    result = search(
        tmp_path,
        "asha",
        **{
            "search.algorithm": "random",
            "search.num_samples": 6,
            "seed": 3,
            "search.scheduler": "asha",
            "search.grace_period": 1,
            "search.reduction_factor": 2,
            "training.epochs": 8,
            "search.space": {"training.optimizer.lr": {"loguniform": [1e-5, 3e-2]}},
        },
    )
    epochs = [t.epochs for t in result.trials]
    assert max(epochs) == 8
    assert any(e < 8 for e in epochs), epochs
    assert any(t.status == "STOPPED" for t in result.trials)


def test_two_one_cpu_trials_run_at_once_on_two_cpus(tmp_path):
    # trials of ~2-3 s each: long enough that the second worker's start-up (~5 s when it is a
    # new process on a busy machine) does not let the first one finish all four alone
    result = search(
        tmp_path,
        "conc",
        **{
            "search.algorithm": "grid",
            "search.cpus_per_trial": 1,
            "training.epochs": 400,
            "search.space": {"training.optimizer.lr": {"grid": [1e-3, 2e-3, 3e-3, 4e-3]}},
        },
    )
    # with actor reuse, two concurrent trials means exactly two worker processes
    pids = {t.metrics["pid"] for t in result.trials}
    assert len(pids) == 2


def test_bayes_proposals_follow_the_results(tmp_path):
    """Optuna (TPE) is told every result: with the same seed, maximising and minimising the same
    metric give the same random start-up points and then different proposals."""
    import glob
    import pickle

    space = {
        "training.optimizer.lr": {"loguniform": [1e-4, 1e-1]},
        "model.dropout": {"uniform": [0.0, 0.5]},
    }
    kw = {
        "search.algorithm": "bayes",
        "search.num_samples": 6,
        "search.space": space,
        "training.epochs": 2,
        "seed": 4,
        "search.max_concurrent": 1,
    }
    iris = search(tmp_path, "b-iris", **kw)
    minimised = search(tmp_path, "b-min", **{**kw, "search.mode": "min"})

    def points(res):
        return [
            (round(t.config["training.optimizer.lr"], 12), round(t.config["model.dropout"], 12))
            for t in res.trials
        ]

    assert points(iris)[:2] == points(minimised)[:2]  # random start-up, same sampler seed
    assert points(iris)[2:] != points(minimised)[2:]  # model-based proposals depend on the results
    state_file = sorted(glob.glob(str(tmp_path / "b-iris" / "searcher-state-*.pkl")))[-1]
    state = pickle.loads(open(state_file, "rb").read())
    told = sorted(t.value for t in state["_ot_study"].trials if t.state.name == "COMPLETE")
    reported = sorted(t.metrics["val_accuracy"] for t in iris.trials)
    assert told == pytest.approx(reported)


class KillWorkerOnce(tune.Callback):
    """A driver callback that kills the trial's worker process once, after epoch 3."""

    killed = False

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if not self.killed and result.get("epoch") == 3:
            self.killed = True
            os.kill(result["pid"], signal.SIGKILL)


def test_max_failures_retries_a_trial_from_its_last_checkpoint(tmp_path):
    import json

    config = tiny_config(
        **{
            "search.algorithm": "grid",
            "search.max_failures": 2,
            "training.epochs": 8,
            "search.space": {"training.optimizer.lr": {"grid": [1e-2]}},
        }
    )
    killer = KillWorkerOnce()
    result = run_search(
        config, name="retry", storage=str(tmp_path), refit=False, callbacks=[killer]
    )
    (trial,) = result.trials
    assert killer.killed
    assert trial.status == "TERMINATED" and trial.epochs == 8
    # restored: Ray counts the iterations since the restore apart from the total
    assert trial.metrics["iterations_since_restore"] < trial.metrics["training_iteration"]
    # the reports of the trial: epochs 1-3 before the kill, then the retry goes on from the
    # last checkpoint (epoch 3 or 4), never from epoch 1
    (progress,) = list((tmp_path / "retry").glob("*/result.json"))
    epochs = [json.loads(line)["epoch"] for line in progress.read_text().splitlines() if line]
    assert epochs.count(1) == 1
    assert epochs[-1] == 8 and set(epochs) == set(range(1, 9))


@pytest.mark.parametrize("scheduler", ["fifo", "asha"])
def test_fifo_trials_report_sparsely_and_schedulers_get_every_epoch(tmp_path, scheduler):
    import json

    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_search(
        tiny_config(
            **{
                "training.epochs": 6,
                "search.algorithm": "grid",
                "search.scheduler": scheduler,
                "search.grace_period": 6,  # ASHA may not stop either trial early here
                "search.space": {"training.optimizer.lr": {"grid": [1e-2, 2e-2]}},
                "tracking.enabled": True,
                "tracking.tracking_uri": uri,
            }
        ),
        name=f"reports-{scheduler}",
        storage=str(tmp_path),
        refit=False,
    )
    progress = sorted(tmp_path.glob(f"reports-{scheduler}/*/result.json"))
    assert len(progress) == 2
    for path in progress:
        epochs = [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line]
        assert epochs[-1] == 6  # the last epoch, with the CV summary, always reaches Tune
        if scheduler == "fifo":  # iris epochs take milliseconds: well under a report per epoch
            assert len(epochs) <= 3 and epochs == sorted(set(epochs))
        else:
            assert epochs == [1, 2, 3, 4, 5, 6]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(f"reports-{scheduler}")
    for run in client.search_runs([exp.experiment_id], "tags.`automl.role` = 'trial'"):
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert sorted(m.step for m in history) == [1, 2, 3, 4, 5, 6]  # MLflow gets every epoch


@pytest.mark.parametrize(
    ("flag", "value", "named"),
    [("search.gpus_per_trial", 1, "--gpus-per-trial 1"), ("search.cpus_per_trial", 64, "64")],
)
def test_resources_no_node_has_fail_at_once_naming_the_cluster(tmp_path, flag, value, named):
    # Ray would keep such trials pending without a word (a GPU on a CPU machine: > 300 s)
    import time

    from orchestrator.errors import ClusterError

    started = time.perf_counter()
    with pytest.raises(ClusterError) as err:
        search(tmp_path, "no-gpu", **{flag: value})
    assert time.perf_counter() - started < 5
    message = str(err.value)
    assert named in message and "the cluster has 2 CPUs and 0 GPUs" in message
    assert "\n" not in message
    assert not (tmp_path / "no-gpu").exists()  # nothing was started


def test_a_trial_past_its_memory_limit_fails_out_of_memory_and_the_others_finish(tmp_path):
    # 2 x 30000^2 weights (7 GB) in a trial allowed 400 MB more than its worker has
    result = search(
        tmp_path,
        "memory",
        **{
            "search.algorithm": "grid",
            "search.trial_memory_mb": 400,
            "training.epochs": 2,
            "search.space": {"model.hidden_sizes": {"grid": [[8], [30000, 30000], [16]]}},
        },
    )
    by_size = {str(t.config["model.hidden_sizes"]): t for t in result.trials}
    big = by_size["[30000, 30000]"]
    assert big.status == "ERROR" and "out of memory" in big.error
    assert "search.trial_memory_mb" in big.error
    for small in ("[8]", "[16]"):
        assert by_size[small].status == "TERMINATED"
        assert by_size[small].cv["accuracy"]["mean"] > 0
