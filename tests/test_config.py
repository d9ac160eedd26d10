"""Run-config parsing, validation and flag overrides."""

from __future__ import annotations

import pytest

from lifelong.experiments.config import RunConfig, from_dict, load_config, override, parse_toml
from lifelong.errors import ConfigError


def test_defaults_round_trip_through_toml(tmp_path):
    cfg = from_dict({"name": "x", "seeds": [1, 2], "learner": {"name": "er", "mem_size": 200}})
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    assert load_config(path) == cfg
    assert cfg.train["lr"] == 0.05 and cfg.train["batch_size"] == 32


def test_override_replaces_options_of_a_different_learner():
    cfg = from_dict({"learner": {"name": "ewc", "ewc_lambda": 5.0}})
    assert override(cfg, learner="er", mem_size=100).learner == {"name": "er", "mem_size": 100}
    assert override(cfg, learner="ewc").learner["ewc_lambda"] == 5.0


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"seeds": []}, "non-empty list"),
        ({"seeds": [0, 0]}, "distinct"),
        ({"seeds": ["a"]}, "integers"),
        ({"name": "../x"}, "plain directory name"),
        ({"train": {"lr": 0}}, "positive number"),
        ({"train": {"batch_size": 1.5}}, "positive integer"),
        ({"learner": {"mem_size": 3}}, None),  # name missing is filled from the default
        ({"dataset": "digits"}, "must be a table"),
        ({"threads": -1}, "non-negative"),
    ],
)
def test_validation(doc, message):
    if message is None:
        assert isinstance(from_dict(doc), RunConfig)
        return
    with pytest.raises(ConfigError, match=message):
        from_dict(doc)


def test_malformed_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_toml("a = ")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
