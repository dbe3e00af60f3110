"""The suite's outputs: the machine description, ``latest.json`` and ``latest.md``."""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = [
    "torch",
    "ray",
    "mlflow",
    "skorch",
    "scikit-learn",
    "numpy",
    "optuna",
    "optuna-integration",
    "psutil",
]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """What the figures were measured on (the load average says how shared the machine was)."""
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {name: _version(name) for name in PACKAGES},
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def _status(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"Mode: {doc['mode']}, repetitions: {doc['reps'] or 'per-benchmark default'}, "
        f"started {doc['started']}, took {_fmt(doc.get('total_s'))} s.",
        "",
        f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}, "
        f"Python {m['python']}; load average at start {m['load_average_at_start']}.",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + ".",
        "",
        "## Goals",
        "",
        "| Goal | Value | Target | Result |",
        "|---|---|---|---|",
    ]
    for g in doc["goals"]:
        lines.append(
            f"| {g['label']} | {_fmt(g['value'])}{g['unit']} | {g['op']} {_fmt(g['target'])}"
            f"{g['unit']} | {_status(g['passed'])} |"
        )
    for key, bench in doc["benchmarks"].items():
        lines += ["", f"## {bench.get('title', key)}", ""]
        if "error" in bench:
            lines += [f"Failed: `{bench['error']}`"]
            continue
        lines += ["| Figure | Median |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in bench["figures"].items()]
        lines += [""] + [f"- {note}" for note in bench.get("notes", [])]
        prof = bench.get("profile")
        if prof:
            lines += profile_lines(prof)
    return "\n".join(lines) + "\n"


def profile_lines(prof: dict[str, Any], label: str = "") -> list[str]:
    """A cProfile summary (or a dict of them, one per profiled search) as Markdown."""
    if "error" in prof:
        return ["", f"Profile{label}: failed: `{prof['error']}`"]
    if "trial_stage_s_median" not in prof:
        return [line for name, sub in prof.items() for line in profile_lines(sub, f" ({name})")]
    lines = [
        "",
        f"Profile{label} (cProfile; {prof['trials_profiled']} trials on {prof['workers']} "
        f"workers; profiled search wall {_fmt(prof.get('wall_s'))} s):",
        "",
        "| Trial stage | median s/trial | excl. first trial per worker |",
        "|---|---|---|",
    ]
    later = prof["trial_stage_s_median_excluding_first_per_worker"]
    for stage, secs in prof["trial_stage_s_median"].items():
        lines.append(f"| {stage} | {_fmt(secs)} | {_fmt(later[stage])} |")
    lines += ["", "| Driver stage | s |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in prof["driver_stage_s"].items()]
    lines += [
        "",
        "Most self time per trial: "
        + "; ".join(f"`{f}` {_fmt(s)} s" for f, s in prof["trial_top_self_s_per_trial"][:6]),
    ]
    return lines


def write(doc: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(doc, indent=2, default=str))
    (out / "latest.md").write_text(markdown(doc))
