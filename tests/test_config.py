"""The typed config: YAML loading, dotted overrides and the wording of its errors."""

from __future__ import annotations

import pytest

from orchestrator.config import Config, apply_overrides, load_config, parse_override
from orchestrator.errors import ConfigError


def test_defaults_are_valid_and_frozen():
    config = Config()
    assert config.split.folds == 5 and config.split.test_size == 0.15
    with pytest.raises(Exception, match="frozen"):
        config.seed = 3


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "seed: 7\nmodel: {family: gru, hidden_size: 32}\ntraining:\n  optimizer: {lr: 0.01}\n"
    )
    config = load_config(path)
    assert (config.seed, config.model.family, config.model.hidden_size) == (7, "gru", 32)
    assert config.training.optimizer.lr == 0.01
    assert config.flat()["training.optimizer.lr"] == 0.01


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("training.optimizer.lr=0.01", ("training.optimizer.lr", 0.01)),
        ("model.hidden_sizes=[64, 32]", ("model.hidden_sizes", [64, 32])),
        ("model.batch_norm=false", ("model.batch_norm", False)),
        ("data.source=builtin:wine", ("data.source", "builtin:wine")),
    ],
    ids=["float", "list", "bool", "string-with-colon"],
)
def test_parse_override(text, expected):
    assert parse_override(text) == expected


def test_overrides_are_validated_again():
    config = apply_overrides(Config(), {"model.hidden_sizes": [64, 32], "split.folds": 3})
    assert config.model.hidden_sizes == [64, 32] and config.split.folds == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"model.family": "fnnn"},
            r"model.family: must be one of .*did you mean 'fnn'.*got 'fnnn'",
        ),
        (
            {"model.hiden_sizes": [3]},
            r"unknown key 'model.hiden_sizes' \(did you mean 'hidden_sizes'",
        ),
        ({"training.optimzer.lr": 1}, r"'optimzer' is not a section .*did you mean 'optimizer'"),
        ({"split.folds": 0}, r"split.folds: .*greater than or equal to 1, got 0"),
        (
            {"model.dropout": 1.5},
            r"model.dropout: must be a number at least 0 and below 1, or .auto., got 1.5",
        ),
    ],
    ids=["bad-literal", "typo-key", "typo-section", "folds-zero", "dropout-range"],
)
def test_bad_values_name_field_value_and_options(override, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Config(), override)


def test_bad_yaml_file_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  family: cnnn\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: model.family"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_transformer_heads_must_divide_d_model():
    with pytest.raises(ConfigError, match="divisible by model.num_heads"):
        apply_overrides(Config(), {"model.family": "transformer", "model.d_model": 30})
