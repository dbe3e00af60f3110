"""Plain-text tables printed by the CLI."""

from __future__ import annotations

from typing import Any

import click

SHOWN = ("accuracy", "f1_macro", "roc_auc", "log_loss", "r2", "rmse", "mae", "loss")


def fmt(value: Any) -> str:
    """A metric value to four decimals; n/a where there is none."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:.4f}"


def print_epoch(metrics: dict[str, float]) -> None:
    """One line per epoch of the fold-mean validation metrics."""
    parts = [f"epoch {int(metrics['epoch']):>3}"]
    if "train_loss" in metrics:
        parts.append(f"train_loss {fmt(metrics['train_loss'])}")
    for name in SHOWN:
        key = f"val_{name}"
        if key in metrics:
            parts.append(f"{key} {fmt(metrics[key])}")
    click.echo("  ".join(parts))


def print_train_result(result: Any) -> None:
    """The CV summary (mean ± std over folds) and the test metrics, side by side."""
    summary = result.cv.summary()
    info = result.to_json()
    click.echo("")
    for note in info["notes"]:
        click.echo(f"note: {note}")
    for action in result.run.cleaning.actions:
        click.echo(f"cleaning: {action}")
    click.echo(
        f"task {info['task']}  model {info['model']}  data {info['dataset']['source']} "
        f"({info['dataset']['n_samples']} samples, {info['dataset']['n_features']} features)  "
        f"folds {info['cv']['folds']}  final model {final_model_words(info)}"
    )
    click.echo(f"{'metric':<16}{'cv mean ± std':>22}{'test':>12}")
    for name in SHOWN:
        if name not in summary:
            continue
        s = summary[name]
        cv = f"{fmt(s['mean'])} ± {fmt(s['std'])}"
        click.echo(f"{name:<16}{cv:>22}{fmt(result.test_metrics.get(name)):>12}")


def print_trial(trial: Any) -> None:
    """One line per finished trial, as the search goes."""
    shown = ", ".join(f"{k}={v}" for k, v in trial.config.items())
    scores = "  ".join(
        f"{k} {fmt(v['mean'])}" for k, v in trial.cv.items() if k in ("accuracy", "r2")
    )
    tail = f"  {trial.error}" if trial.error else ""
    click.echo(f"trial {trial.trial_id} {trial.status:<10} {shown}  {scores}{tail}")


def print_search_result(result: Any) -> None:
    """The trial table (config, mean ± std, status) and the best configuration's test metrics."""
    name = result.metric.removeprefix("val_")
    click.echo("")
    click.echo(
        f"search {result.name}: {result.algorithm}, {len(result.trials)} trials, "
        f"metric {result.metric} ({result.mode}), {result.wall_s:.1f} s"
    )
    budget = result.budget
    if budget is not None and budget.seconds is not None:
        ended = "it ended the search" if budget.spent else "not reached"
        click.echo(
            f"time budget {budget.seconds:.0f} s: trials used {budget.used_s:.0f} s, {ended}"
        )
    click.echo(f"{'trial':<14}{'status':<12}{'epochs':>7}{name + ' mean ± std':>26}  config")
    for t in result.trials:
        stats = t.cv.get(name, {})
        cv = f"{fmt(stats.get('mean'))} ± {fmt(stats.get('std'))}"
        config = ", ".join(f"{k}={v}" for k, v in t.config.items())
        err = f"  [{t.error}]" if t.error else ""
        click.echo(f"{t.trial_id:<14}{t.status:<12}{t.epochs:>7}{cv:>26}  {config}{err}")
    if result.best is None:
        click.echo("no trial finished; nothing to refit")
        return
    click.echo(
        f"best trial {result.best.trial_id}: "
        + ", ".join(f"{k}={v}" for k, v in result.best.config.items())
    )
    if result.refit is not None:
        test = "  ".join(
            f"{k} {fmt(v)}" for k, v in result.refit.test_metrics.items() if k in SHOWN
        )
        if result.refit.kind == "folds":
            click.echo(f"final model: the fold models as one; test: {test}")
        else:
            click.echo(f"refit on train+validation for {result.refit.epochs} epochs; test: {test}")
    url = result.runs_url
    if url:
        local = url.startswith("http://127.0.0.1:5000/")
        click.echo(f"MLflow runs: {url}" + (" (after automl ui)" if local else ""))


def search_line(result: Any) -> str:
    """A search in one line, the last it prints (the only one under ``--quiet``): the best
    trial's metric as mean ± std over its folds, the final model's test score, and where the
    model is (its registered version; untracked, Tune's results folder)."""
    if result.best is None:
        return f"search {result.name}: no trial finished; results {result.path}"
    name = result.metric.removeprefix("val_")
    stats = result.best.cv.get(name, {})
    test = result.refit.test_metrics.get(name) if result.refit is not None else None
    where = _model_place(result.refit) or f"results {result.path} (not tracked)"
    return (
        f"search {result.name}: best {result.metric} {fmt(stats.get('mean'))} ± "
        f"{fmt(stats.get('std'))} (trial {result.best.trial_id}), test {name} {fmt(test)}, "
        f"{where}"
    )


def train_line(result: Any) -> str:
    """``automl train`` in one line, as :func:`search_line`: the metric's mean ± std over the
    folds, the test score, and the logged model (or that nothing was logged)."""
    from orchestrator.crossval import main_metric

    metric = result.config.search.metric or main_metric(result.run.prepared.task)
    name = metric.removeprefix("val_")
    stats = result.cv.summary().get(name, {})
    where = _model_place(result.refit) or "model not logged (tracking off)"
    return (
        f"train: {metric} {fmt(stats.get('mean'))} ± {fmt(stats.get('std'))} over "
        f"{len(result.cv.per_fold)} folds, test {name} {fmt(result.test_metrics.get(name))}, "
        f"{where}"
    )


def _model_place(refit: Any) -> str | None:
    logged = (refit.tracking if refit is not None else None) or {}
    uri = logged.get("registry_uri") or logged.get("model_uri")
    return f"model {uri}" if uri else None


def final_model_words(info: dict) -> str:
    """How the final model came about, from a train result's JSON."""
    if info.get("refit") == "folds":
        return f"the {info['cv']['folds']} fold models averaged"
    return f"refit for {info['refit_epochs']} epochs"


def print_runs(searches: list[dict]) -> None:
    """Searches (newest first) with one indented line per trial."""
    if not searches:
        click.echo("no searches found")
        return
    for s in searches:
        click.echo(
            f"{s['search'] or s['name']:<28} {s['status']:<10} {s['algorithm'] or '-':<7} "
            f"{len(s['trials'])} trials  best {s['metric'] or 'metric'} "
            f"{fmt(s['best_value'])}  experiment {s['experiment']}"
        )
        for t in s["trials"]:
            state = t.get("automl_status") or t["status"]
            click.echo(f"    {t['trial_id'] or t['name']:<24} {state:<10} {fmt(t['value'])}")
        if s.get("refit"):
            r = s["refit"]
            click.echo(
                f"    refit-best  model {r.get('registered_model')} v{r.get('version')}  "
                f"{r.get('model_uri')}"
            )
