"""The search report (``automl report``): one self-contained HTML page on a search. Its figures
are Optuna's own, drawn from an in-memory study rebuilt from the trial runs
(``orchestrator.reportstudy``), plus the best trial's learning curves and confusion matrix;
plotly.js is inlined once, so the page needs no network. ``orchestrator.tracking.reportdata``
reads the store: no MLflow here."""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.reportstudy import as_number, build_study, quiet_optuna

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go

    from orchestrator.tracking.reportdata import ReportData, Table

# fewer finished trials than this, or fewer than two parameters that vary, and the importance
# section is a note: a forest fitted on three points says nothing
MIN_IMPORTANCE_TRIALS = 4
MAX_ERROR_ROWS = 50
STYLE = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1400px;color:#222;padding:0 16px}
h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}th{background:#f4f4f4}
table{border-collapse:collapse;font-size:13px;margin:8px 0}.note{color:#666;font-style:italic}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right}tr.best td{background:#e8f4e8}
td.text,.summary td{text-align:left}tr.best td,.summary td:first-child{font-weight:600}
.row{display:flex;flex-wrap:wrap;gap:16px}.row>div{flex:1 1 600px}"""


def write_report(
    tracking_uri: str | None, experiment: str, output: Path, parent_run_id: str | None = None
) -> Path:
    """Read the search (``parent_run_id``, default the experiment's latest) from the store and
    write its report to ``output``; returns the path written."""
    from orchestrator.tracking.reportdata import load_report_data

    page = render_report(load_report_data(tracking_uri, experiment, parent_run_id))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    return output


def render_report(data: ReportData) -> str:
    """The report as one HTML page: trials, best so far, parallel coordinates, importance,
    the Pareto front (two objectives), the best trial's curves and confusion matrix, test."""
    from plotly.offline import get_plotlyjs

    sections = [
        _section("summary", "Search", _summary(data)),
        _section("trials", "Trials", _trial_table(data)),
        *_study_sections(data),
        _section("best", "Best trial", _best_trial(data)),
        _section("test", "Test set", _test_results(data)),
    ]
    title = html.escape(f"Search report: {data.search}")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f'<style>{STYLE}</style><script type="text/javascript">{get_plotlyjs()}</script>'
        f"</head><body><h1>{title}</h1>{''.join(sections)}</body></html>\n"
    )


def _study_sections(data: ReportData) -> list[str]:
    """Optuna's figures of the trials: of the search metric, and the Pareto front of two
    objectives; a note where no trial finished."""
    figures = (
        ("history", "Best so far", _history),
        ("parallel", "Hyperparameters against the metric", _parallel),
        ("importance", "Hyperparameter importance", _importance),
    )
    none = _note("No trial finished with a value of the metric.")
    with quiet_optuna():
        study = build_study(data)
        done = bool(_finished(study)[0])
        out = [
            _section(key, title, draw(study, data) if done else none)
            for key, title, draw in figures
        ]
        if data.objectives:
            out.append(_section("pareto", "Pareto front", _pareto(build_study(data, True), data)))
    return out


# --------------------------------------------------------------------------- figures
def _figure(name: str, make: Callable[[], go.Figure | None], why_not: str = "") -> str:
    """The figure ``make`` draws as a plotly div (``fig-<name>``), or a note why there is none."""
    try:
        fig = make()
    except (ValueError, RuntimeError) as err:  # Optuna refusing these trials: say why
        return _note(f"not drawn: {type(err).__name__}: {err}")
    if fig is None:
        return _note(why_not)
    fig.update_layout(template="plotly_white", margin={"t": 60, "b": 40})
    return fig.to_html(
        full_html=False, include_plotlyjs=False, div_id=f"fig-{name}", config={"displaylogo": False}
    )


def _finished(study: optuna.Study) -> tuple[list, list[str], list[str]]:
    """The finished (COMPLETE) trials, the parameters every one of them has, and the others."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    every = set.intersection(*(set(t.params) for t in trials)) if trials else set()
    return trials, sorted(every), sorted({k for t in trials for k in t.params} - every)


def _history(study: optuna.Study, data: ReportData) -> str:
    from optuna.visualization import plot_optimization_history

    note = _note("Trials are numbered in the order they ended.")
    return note + _figure(
        "history", lambda: plot_optimization_history(study, target_name=data.metric)
    )


def _parallel(study: optuna.Study, data: ReportData) -> str:
    from optuna.visualization import plot_parallel_coordinate

    _, every, some = _finished(study)
    note = _note(f"Left out, not in every finished trial: {', '.join(some)}.") if some else ""
    return note + _figure(
        "parallel",
        lambda: plot_parallel_coordinate(study, every, target_name=data.metric) if every else None,
        "No parameter that every finished trial has.",
    )


def _importance(study: optuna.Study, data: ReportData) -> str:
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.visualization import plot_param_importances

    trials, every, some = _finished(study)
    varying = [k for k in every if len({t.params[k] for t in trials}) > 1]
    left, n = [*some, *(k for k in every if k not in varying)], len(trials)
    if n < MIN_IMPORTANCE_TRIALS or len(varying) < 2:
        return _note(
            f"Importance needs at least {MIN_IMPORTANCE_TRIALS} finished trials and two "
            f"parameters that vary across them; this search has {n} and {len(varying)}."
        )
    how = f"; left out (not in every trial, or one value): {', '.join(left)}." if left else "."
    evaluator = FanovaImportanceEvaluator(seed=0)
    return _note(f"fANOVA (Optuna) over the {n} finished trials{how}") + _figure(
        "importance",
        lambda: plot_param_importances(study, evaluator, params=varying, target_name=data.metric),
    )


def _pareto(study: optuna.Study, data: ReportData) -> str:
    from optuna.visualization import plot_pareto_front

    names = [name for name, _ in data.objectives]
    marked = sum(bool(t.pareto) for t in data.trials)
    note = _note(f"{marked} trial(s) tagged pareto=true (marked ★ in the table).")
    return note + _figure(
        "pareto",
        lambda: plot_pareto_front(study, target_names=names) if _finished(study)[0] else None,
        "No trial finished with a value of both objectives.",
    )


def _learning_curves(history: dict[str, list[tuple[int, float]]]) -> go.Figure | None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    longest = max((len(points) for points in history.values()), default=0)
    every_epoch = [k for k, points in history.items() if len(points) == longest]  # not last-only
    losses = [k for k in every_epoch if k.endswith("loss")]
    scores = [k for k in every_epoch if k.startswith("val_") and k not in losses]
    if not losses and not scores:
        return None
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Validation metrics"))
    for col, names in ((1, losses), (2, scores)):
        for name in names:
            steps, values = zip(*history[name], strict=True)
            fig.add_trace(go.Scatter(x=steps, y=values, mode="lines+markers", name=name), 1, col)
        fig.update_xaxes(title_text="epoch", row=1, col=col)
    fig.update_layout(title="Learning curves (mean over folds)", height=420)
    return fig


def _confusion(table: Table | None) -> go.Figure | None:
    import plotly.graph_objects as go

    if table is None or not table.rows:
        return None
    labels = table.columns[1:]
    counts = [[int(float(v or 0)) for v in row[1:]] for row in table.rows]
    rows = [row[0] for row in table.rows]
    fig = go.Figure(go.Heatmap(z=counts, x=labels, y=rows, colorscale="Blues", texttemplate="%{z}"))
    fig.update_layout(title="Out-of-fold confusion matrix", height=420)
    fig.update_xaxes(title_text="predicted", type="category")
    fig.update_yaxes(title_text="true", type="category", autorange="reversed")
    return fig


# --------------------------------------------------------------------------- text and tables
def _section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{body}</section>'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        number = as_number(value)
        return value if number is None or isinstance(number, int) else f"{number:.4g}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.0f} s" if minutes else f"{rest:.1f} s"


def _html_table(columns: list[str], rows: list[list[str]], best: int | None = None) -> str:
    """A table of text cells (escaped here); numbers (a cell whose first word is one) align
    right; row ``best`` is highlighted."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns) if any(columns) else ""
    body = []
    for i, row in enumerate(rows):
        cells = "".join(
            f"<td{'' if as_number((c.split() or [''])[0]) is not None else ' class=text'}>"
            f"{html.escape(c)}</td>"
            for c in row
        )
        body.append(f"<tr{' class=best' if i == best else ''}>{cells}</tr>")
    head = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{head}<tbody>{''.join(body)}</tbody></table>"


def _summary(data: ReportData) -> str:
    counts: dict[str, int] = {}
    for trial in data.trials:
        counts[trial.status] = counts.get(trial.status, 0) + 1
    tag = data.tags.get
    rows = {
        "experiment": data.experiment,
        "parent run": data.parent_run_id,
        "status": data.status,
        "algorithm / scheduler": f"{tag('automl.algorithm', '–')} / {tag('automl.scheduler', '–')}",
        "data / task": f"{tag('automl.data_source', '–')} / {tag('automl.task', '–')}",
        "metric": f"{data.metric} ({data.mode})",
        "objectives": ", ".join(f"{m} ({d})" for m, d in data.objectives) or "–",
        "trials": ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none",
        "best trial": f"{data.best.name}: {_fmt(data.best.value)}" if data.best else "–",
        "report written": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    table = _html_table(["", ""], [[k, str(v)] for k, v in rows.items()])
    return f'<div class="summary">{table}</div>'


def _trial_table(data: ReportData) -> str:
    if not data.trials:
        return _note("The search has no trial runs.")
    multi = bool(data.objectives)
    columns = ["#", "trial", "run id", "status", *data.searched, f"{data.metric} mean ± std"]
    columns += [name for name, _ in data.objectives[1:]] + ["epochs", "duration"]
    rows, best = [], None
    for number, t in enumerate(data.trials):
        score = "–" if t.value is None else f"{_fmt(t.value)} ± {_fmt(t.std)}"
        params = [_fmt(t.params.get(k)) for k in data.searched]
        row = [str(number), t.name, t.run_id, t.status, *params, score]
        row += [*(_fmt(v) for v in t.objectives[1:]), _fmt(t.epochs), _duration(t.duration_s)]
        rows.append(row + (["★" if t.pareto else ""] if multi else []))
        best = number if data.best is not None and t.run_id == data.best.run_id else best
    pareto = " ★: on the Pareto front." if multi else ""
    note = _note(f"The best trial's row is highlighted.{pareto}")
    return note + _html_table(columns + (["Pareto"] if multi else []), rows, best)


def _best_trial(data: ReportData) -> str:
    best = data.best
    if best is None:
        return _note("No trial finished with a value of the metric.")
    head = _note(f"Trial {best.name} (run {best.run_id}): {data.metric} {_fmt(best.value)}.")
    curves = _figure(
        "curves", lambda: _learning_curves(data.best_history), "The trial logged no epochs."
    )
    matrix = _figure(
        "confusion", lambda: _confusion(data.best_confusion), "No confusion matrix (regression?)."
    )
    return f'{head}<div class="row"><div>{curves}</div><div>{matrix}</div></div>'


def _test_results(data: ReportData) -> str:
    if data.test_metrics:
        rows = [[k, _fmt(v)] for k, v in data.test_metrics.items()]
        metrics = _html_table(["metric", "value"], rows)
    else:
        metrics = _note("No test metrics were logged (no final model).")
    errors = data.test_errors
    if errors is None:
        return metrics + _note("No error analysis was logged.")
    shown = errors.rows[:MAX_ERROR_ROWS]
    rows = [[_fmt(c) for c in row] for row in shown]
    caption = _note(f"Error analysis on the test set ({len(shown)} of {len(errors.rows)} rows).")
    return metrics + caption + _html_table(errors.columns, rows)
