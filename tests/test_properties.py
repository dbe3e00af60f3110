"""Property-based tests (hypothesis): what any input may give, bounded and seeded.

- the config: any ``--set`` key and value, any YAML tree or text, is a valid Config or a
  ConfigError, never another exception;
- the table preprocessing: any table of numbers and strings, with any gaps, fits and transforms
  to finite float32, or raises DataError;
- the REST scoring server (a real one on 127.0.0.1, started once for the module): any JSON
  request is answered 200 or 400 with a one-line message, never 500.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.preprocessing import fit_preprocessor
from orchestrator.config import (
    Config,
    DataConfig,
    apply_overrides,
    load_config,
    parse_override,
    validate_config,
)
from orchestrator.errors import ConfigError, DataError
from tests.test_serving_batch import logged_model  # noqa: F401  (fixture of `server`)
from tests.test_serving_rest import server  # noqa: F401  (the module's scoring server)
from tests.test_tracking_fixtures import store_template, table_result  # noqa: F401

# seeded (the same examples on every run) and without an example database in the repository
BOUNDED = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- config
KEYS = sorted(Config().flat())
SECTIONS = sorted({key.rsplit(".", 1)[0] for key in KEYS if "." in key})
HOSTILE_VALUES = [
    *("auto", "-1", "0", "1e309", "-.inf", ".nan", "[1, 2]", "{a: 1}", "null", "~", "true"),
    *("!!binary aGVsbG8=", "2020-01-01", "[[[]]]", "{choice: [1]}", "1_000", "0x10", "'", ": :"),
]
keys = st.one_of(
    st.sampled_from(KEYS),
    st.sampled_from(SECTIONS),
    st.text(max_size=20),
    st.builds(lambda key, tail: key + tail, st.sampled_from(KEYS), st.text(max_size=4)),
)
values = st.one_of(st.text(max_size=24), st.sampled_from(HOSTILE_VALUES))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10))
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(st.sampled_from([*KEYS, *SECTIONS, "seed", "space"]), st.text(max_size=8)),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


@BOUNDED
@given(st.lists(st.tuples(keys, values), max_size=4))
def test_any_set_overrides_give_a_config_or_a_config_error(pairs):
    try:
        updates = dict(parse_override(f"{key}={value}") for key, value in pairs)
        assert isinstance(apply_overrides(Config(), updates), Config)
    except ConfigError as err:
        assert str(err) and "\n" not in str(err)


@BOUNDED
@given(trees)
def test_any_yaml_tree_gives_a_config_or_a_config_error(raw):
    try:
        assert isinstance(validate_config(raw, "test.yaml"), Config)
    except ConfigError as err:
        assert str(err) and "\n" not in str(err)


@BOUNDED
@given(st.one_of(st.text(max_size=80), trees.map(lambda tree: json.dumps(tree, allow_nan=True))))
def test_any_config_file_text_gives_a_config_or_a_config_error(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        assert isinstance(load_config(path), Config)
    except ConfigError as err:
        assert str(err) and "\n" not in str(err)


# --------------------------------------------------------------------------- preprocessing
cells = st.one_of(
    st.none(),
    st.floats(),
    st.integers(-(10**20), 10**20),
    st.booleans(),
    st.text(max_size=6),
    st.sampled_from(["1,234", " 3.5 ", "?", "", "nan", "inf", "-1e309", "RED", " red", "1e38"]),
)


def columns(n: int) -> st.SearchStrategy:
    return st.one_of(
        st.lists(cells, min_size=n, max_size=n),
        st.lists(st.floats(allow_infinity=False), min_size=n, max_size=n),
        st.lists(st.one_of(st.none(), st.sampled_from("abc")), min_size=n, max_size=n),
        st.sampled_from([[None] * n, [np.nan] * n]),  # a column with no value at all
        # a tiny spread: scaled, a value of another size must not overflow float32
        st.lists(st.floats(-1e-30, 1e-30), min_size=n, max_size=n),
    )


@st.composite
def table_pairs(draw) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows and other rows with the same columns (drawn apart: unseen values)."""
    width = draw(st.integers(1, 4))
    n, m = draw(st.integers(1, 8)), draw(st.integers(1, 5))
    train = {f"c{i}": draw(columns(n)) for i in range(width)}
    other = {f"c{i}": draw(columns(m)) for i in range(width)}
    return pd.DataFrame(train), pd.DataFrame(other)


data_configs = st.builds(
    lambda scaling, encoding, numeric, categorical, fix: DataConfig(
        scaling=scaling,
        encoding=encoding,
        cleaning={
            "numeric_impute": numeric,
            "categorical_impute": categorical,
            "fix_errors": fix,
        },
    ),
    st.sampled_from(["standard", "minmax", "robust", "none"]),
    st.sampled_from(["onehot", "ordinal"]),
    st.sampled_from(["median", "mean", "constant", "drop"]),
    st.sampled_from(["most_frequent", "missing", "drop"]),
    st.booleans(),
)


@BOUNDED
@given(table_pairs(), data_configs)
def test_any_table_fits_to_finite_float32_or_raises_a_data_error(tables, data_cfg):
    train, other = tables
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no overflow, no NaN from numpy
        warnings.simplefilter("error", UserWarning)  # nor a column scikit-learn skips
        try:
            pre = fit_preprocessor(train, "table", data_cfg)
            outputs = [pre.transform(train), pre.transform(other)]
        except DataError as err:
            assert str(err) and "\n" not in str(err)
            return
    for frame, out in zip((train, other), outputs, strict=True):
        assert out.dtype == np.float32
        assert out.shape == (len(frame), *pre.output_shape_)
        assert np.isfinite(out).all()


def test_an_infinite_fill_value_is_a_config_error():
    from orchestrator.config import Config, apply_overrides

    with pytest.raises(ConfigError, match=r"data\.cleaning\.fill_value: .*finite"):
        apply_overrides(Config(), {"data.cleaning.fill_value": float("inf")})


# --------------------------------------------------------------------------- REST scoring
MODEL_COLUMNS = ["x1", "x2", "color"]
request_cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["red", " RED", "purple", "1,234", "?", ""]),
)
any_json = st.recursive(
    request_cells,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(
                st.sampled_from([*MODEL_COLUMNS, "columns", "data", "index"]), st.text(max_size=6)
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=16,
)


@st.composite
def near_valid(draw) -> tuple[dict, int]:
    """A request in one of MLflow's forms with (some of) the model's columns: (body, rows)."""
    names = draw(st.permutations(MODEL_COLUMNS + ["zz"]))[: draw(st.integers(1, 4))]
    rows = [[draw(request_cells) for _ in names] for _ in range(draw(st.integers(0, 4)))]
    form = draw(st.sampled_from(["split", "records", "inputs"]))
    if form == "split":
        return {"dataframe_split": {"columns": names, "data": rows}}, len(rows)
    if form == "records":
        return {"dataframe_records": [dict(zip(names, r, strict=True)) for r in rows]}, len(rows)
    return {"inputs": {c: [r[i] for r in rows] for i, c in enumerate(names)}}, len(rows)


def post(url: str, data: str | bytes) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    return requests.post(f"{url}/invocations", data=data, headers=headers, timeout=30)


def strict_json(text: str):
    """The body as JSON, refusing NaN and Infinity (which JSON does not have)."""

    def refuse(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def assert_200_or_one_line_400(response: requests.Response) -> dict:
    assert response.status_code in (200, 400), (response.status_code, response.text[:2000])
    payload = strict_json(response.text)
    if response.status_code == 400:
        message = payload["message"]
        assert message and "\n" not in message, message
    return payload


@BOUNDED
@given(near_valid())
def test_a_request_near_the_model_columns_gets_200_or_400(server, request_rows):  # noqa: F811
    body, n_rows = request_rows
    response = post(server, json.dumps(body))
    payload = assert_200_or_one_line_400(response)
    if response.status_code == 200:
        assert len(payload["predictions"]) == n_rows


@BOUNDED
@given(
    st.one_of(
        any_json.map(lambda v: json.dumps(v, allow_nan=True)),
        st.builds(
            lambda key, value: json.dumps({key: value}, allow_nan=True),
            st.sampled_from(["dataframe_split", "dataframe_records", "inputs", "instances"]),
            any_json,
        ),
        st.text(max_size=40),
    )
)
def test_any_json_body_gets_200_or_400(server, body):  # noqa: F811
    assert_200_or_one_line_400(post(server, body.encode("utf-8", "surrogatepass")))
