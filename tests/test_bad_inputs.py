"""The bad-input corpus (tests/data/bad/, written by its generate.py): each hostile input a user
may hand ``automl`` gets one line, ``error: <the problem and what is allowed>``, and exit status
2, never a traceback; or, where the input can be read, a documented note and a correct result.

The cases run the real command line in process (click's CliRunner on ``orchestrator.cli.main``),
and a few as the ``automl`` console script in a subprocess, to show that both answer alike.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from orchestrator.cli import main

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).resolve().parent / "data" / "bad"
FAST = ("--epochs", "1", "--folds", "2", "--no-tracking")


def train(data: str, *extra: str, target: str | None = "label") -> tuple[str, ...]:
    """``automl train`` on a file of the corpus, with tiny settings and tracking off."""
    args = ("train", "--data", str(BAD / data), *FAST, *extra)
    return (*args, "--target", target) if target else args


def with_config(name: str, *extra: str) -> tuple[str, ...]:
    return ("train", "--config", str(BAD / name), "--data", "builtin:iris", *FAST, *extra)


# case id -> (arguments, what the one line says)
CASES: dict[str, tuple[tuple[str, ...], str]] = {
    # tables
    "empty-file": (train("empty.csv"), r"empty\.csv is empty; a table file needs a header row"),
    "blank-lines": (train("blank_lines.csv"), r"blank_lines\.csv is empty; a table file needs"),
    "header-only": (train("header_only.csv"), r"has a header but no data rows; a table file"),
    "ragged-rows": (
        train("ragged_rows.csv"),
        r"ragged_rows\.csv: line 8 has 6 fields but the header has 4; every row needs one field",
    ),
    "binary-as-csv": (train("binary.csv"), r"binary\.csv is not a text file .* UTF-8 text with"),
    "utf16": (train("utf16.csv"), r"utf16\.csv is UTF-16 text; table files must be UTF-8"),
    "latin1": (train("latin1.csv"), r"latin1\.csv is not UTF-8 text \(byte 0xfc on line 2\)"),
    "target-all-missing": (
        train("target_all_missing.csv"),
        r"target column 'label' of .* is empty on all 12 rows; every row .* needs a target",
    ),
    "one-class": (
        train("one_class.csv"),
        r"single class 'yes'; classification needs at least 2 classes \(in .*one_class\.csv\)",
    ),
    "one-row": (
        train("one_row.csv", target="price"),
        r"cannot split 1 sample\(s\) into two parts: at least 2 are needed",
    ),
    "inf-values": (
        train("inf_values.csv"),
        r"column 'x1' of .*inf_values\.csv has 2 infinite or too large value\(s\) \(-inf, inf\); "
        r"numbers must be finite and within ±3\.4e38",
    ),
    "1e308-values": (
        train("huge_values.csv", "--set", "data.scaling=none"),
        r"column 'x1' of .* has 2 infinite or too large value\(s\) \(1e\+307, 1e\+308\)",
    ),
    "inf-regression-target": (
        train("inf_values.csv", "--task", "regression", target="x1"),
        r"the regression target has 2 infinite or too large value\(s\), like -?inf \(in .*\); "
        r"targets must be finite",
    ),
    "empty-test-data": (
        train("small_class.csv", "--test-data", str(BAD / "empty.csv")),
        r"empty\.csv is empty; a table file needs a header row",
    ),
    "duplicate-columns": (
        train("duplicate_columns.csv"),
        r"has duplicate column names: 'x1' \(2 times\); every column needs its own name",
    ),
    "semicolon-separated": (train("semicolons.csv"), r"is it separated by semicolons\?"),
    "no-feature-columns": (train("only_target.csv"), r"has no feature columns: only the target"),
    "wrong-target": (
        train("one_class.csv", target="lable"),
        r"target column 'lable' not found .* \(did you mean 'label'\?\); columns: x1, x2",
    ),
    "text-as-parquet": (
        train("not_parquet.parquet"),
        r"cannot read .*not_parquet\.parquet as Parquet \(.*magic bytes.*\); a \.parquet file",
    ),
    "unsupported-format": (
        train("unsupported.xlsx"),
        r"unsupported data format '\.xlsx' .*; supported: \.csv, \.tsv, \.parquet, \.npz",
    ),
    "missing-file": (train("no_such_file.csv"), r"data source not found: .*no_such_file\.csv"),
    "folds-above-smallest-class": (
        train("small_class.csv", "--folds", "5"),
        r"split\.folds=5 is more than the 2 samples of class 'rare'; lower split\.folds",
    ),
    # arrays and images
    "npz-X-y-lengths-differ": (
        train("npz_length_mismatch.npz", target=None),
        r"X has shape \(10, 4\) but y has shape \(8,\): they need the same number of "
        r"samples \(in .*npz_length_mismatch\.npz\)",
    ),
    "npz-lengths-above-T": (
        train("npz_lengths_too_large.npz", target=None),
        r"lengths must be whole numbers from 1 to T=5, .*; got 9 for sample 2 \(in .*\.npz\)",
    ),
    "npz-without-y": (train("npz_missing_y.npz", target=None), r"needs arrays 'X' and 'y'"),
    "npz-text-X": (
        train("npz_text_X.npz", target=None),
        r"X must be numeric, got dtype <U1 \(in .*npz_text_X\.npz\)",
    ),
    "npz-inf": (
        train("npz_inf.npz", target=None),
        r"X has 1 infinite or too large value\(s\) \(inf\) \(in .*npz_inf\.npz\); numbers "
        r"must be finite",
    ),
    "npz-not-a-zip": (
        train("npz_not_zip.npz", target=None),
        r"cannot read .*npz_not_zip\.npz \(File is not a zip file\); an \.npz file must be",
    ),
    "corrupt-image": (
        train("images_corrupt", target=None),
        r"cannot read image .*images_corrupt/cat/1\.png",
    ),
    "no-images": (train("images_empty", target=None), r"no PNG or JPEG images found in class"),
    # config
    "yaml-syntax": (
        with_config("yaml_syntax.yaml"),
        r"is not valid YAML: mapping values are not allowed here \(line 3, column 14\)",
    ),
    "unknown-key": (
        with_config("unknown_key.yaml"),
        r"unknown key 'training\.epocs' \(did you mean 'epochs'\?\); allowed: .*epochs",
    ),
    "unknown-section": (
        with_config("unknown_section.yaml"),
        r"unknown key 'trainig' \(did you mean 'training'\?\)",
    ),
    "negative-lr": (
        with_config("negative_lr.yaml"),
        r"training\.optimizer\.lr: must be greater than 0, got -0\.01",
    ),
    "config-not-a-mapping": (
        with_config("not_a_mapping.yaml"),
        r"must be a mapping of sections, got list",
    ),
    "config-not-found": (with_config("no_such.yaml"), r"config file not found: .*no_such\.yaml"),
    "set-unknown-key": (
        ("train", "--set", "training.optimzer.lr=0.1", *FAST),
        r"'optimzer' is not a section of training \(did you mean 'optimizer'\?\)",
    ),
    "set-without-value": (
        ("train", "--set", "training.epochs", *FAST),
        r"--set expects key\.path=value, got 'training\.epochs'",
    ),
    "batch-norm-on-one-row": (
        train("three_rows.csv", "--set", "model.batch_norm=true", target="price"),
        r"a model trains on 1 row, and batch normalisation needs at least 2: .*"
        r"model\.batch_norm=false",
    ),
    "fill-value-infinite": (
        train("three_rows.csv", "--set", "data.cleaning.fill_value=.inf", target="price"),
        r"data\.cleaning\.fill_value: .*finite",
    ),
    # locations
    "tracking-uri-scheme": (
        ("train", "--data", "builtin:iris", "--epochs", "1", "--tracking-uri", "foo://bar"),
        r"tracking URI 'foo://bar' has an unknown scheme 'foo'; allowed: a folder, file:///PATH",
    ),
}


def one_error_line(result) -> str:
    """What the user sees is one line, from handle_errors: exit 2 by sys.exit, ``error: ...``
    on stderr, nothing else (click's own usage errors also exit 2, but print 'Usage:' and
    'Error:')."""
    shown = result.output.strip()
    assert result.exit_code == 2, shown
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in shown
    assert result.stdout == ""
    assert len(shown.splitlines()) == 1, shown
    assert shown.startswith("error: "), shown
    return shown


def invoke(args: tuple[str, ...]):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_one_line_and_exit_2(case, in_tmp):
    args, expected = CASES[case]
    line = one_error_line(invoke(args))
    assert re.search(expected, line), line


def test_a_50000_value_category_column_is_refused_for_one_hot(in_tmp):
    """An identifier column: one-hot encoding would make 40,000 columns of it."""
    n = 50_000
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "user": [f"user-{i:06d}" for i in rng.permutation(n)],
            "x": rng.normal(size=n).round(3),
            "label": np.where(rng.random(n) > 0.5, "yes", "no"),
        }
    )
    frame.to_csv(in_tmp / "ids.csv", index=False)
    args = ("train", "--data", str(in_tmp / "ids.csv"), "--target", "label", *FAST)
    line = one_error_line(invoke(args))
    assert re.search(
        r"column 'user' has \d{5} distinct values; one-hot encoding takes at most 1000 per "
        r"column: drop the column .* or set data\.encoding=ordinal",
        line,
    ), line


def test_resume_of_a_search_that_does_not_exist(in_tmp):
    args = ("search", "--resume", "no-such-search", "--storage", str(in_tmp / "ray_results"))
    line = one_error_line(invoke(args))
    assert re.search(r"no search named 'no-such-search' to resume under .*; known: none", line)


def test_grid_over_a_continuous_range(ray_session, in_tmp):
    args = (
        "search",
        *("--config", str(BAD / "grid_continuous.yaml"), "--data", "builtin:iris", *FAST),
        *("--storage", str(in_tmp / "ray_results")),
    )
    line = one_error_line(invoke(args))
    assert re.search(
        r"search\.algorithm 'grid' takes only finite values \(choice or grid\), but "
        r"search\.space\.training\.optimizer\.lr is loguniform; use random or bayes",
        line,
    ), line


# --------------------------------------------------------------------------- read with a note
def test_a_mostly_numeric_column_with_text_trains_and_says_what_it_set_missing(in_tmp):
    result = invoke(train("mixed_numbers_text.csv"))
    assert result.exit_code == 0, result.output
    assert "cleaning: column 'mixed': 3 non-numeric values ('abc') set to missing" in (
        result.output
    )


def test_three_rows_train_though_a_fold_fits_on_one_row(in_tmp):
    result = invoke(train("three_rows.csv", target="price"))
    assert result.exit_code == 0, result.output
    assert "folds 2" in result.output


def test_images_of_mixed_sizes_and_modes_are_converted_with_a_note(in_tmp):
    result = invoke(train("images_mixed", target=None))
    assert result.exit_code == 0, result.output
    assert re.search(
        r"note: image folder: 12 images of 12x12 \(RGB\) in 2 classes; 2 resized to the most "
        r"common size; modes I;16, L, LA, P, RGB, RGBA converted to RGB",
        result.output,
    ), result.output


# --------------------------------------------------------------------------- the console script
def console_script() -> str:
    """The installed ``automl`` script (``pip install -e .`` puts it beside the interpreter)."""
    script = Path(sysconfig.get_path("scripts")) / "automl"
    found = str(script) if script.is_file() else shutil.which("automl")
    if not found:
        pytest.fail("the automl console script is not installed: pip install -e '.[dev]'")
    return found


@pytest.mark.parametrize("case", ["empty-file", "utf16", "ragged-rows", "binary-as-csv"])
def test_the_console_script_answers_as_the_cli_does(case, tmp_path):
    args, _ = CASES[case]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [console_script(), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stdout == ""
    assert done.stderr.strip() == one_error_line(invoke(args)), done.stderr[-2000:]
