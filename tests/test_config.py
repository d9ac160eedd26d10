"""Run-config parsing, validation and flag overrides."""

from __future__ import annotations

import sys

import pytest

from lifelong.experiments.config import RunConfig, from_dict, load_config, override, parse_toml
from lifelong.errors import ConfigError


def test_defaults_round_trip_through_toml(tmp_path):
    cfg = from_dict({"name": "x", "seeds": [1, 2], "learner": {"name": "er", "mem_size": 200}})
    path = tmp_path / "c.toml"
    path.write_text(cfg.to_toml())
    assert load_config(path) == cfg
    assert cfg.train == {}  # the protocol is filled from the data when the run starts (test_protocol.py)


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
        ({"learner": {"weight_decay": 0.0}}, None),  # name missing is filled from the default
        ({"learner": {"mem_size": 3}}, "'naive' has no hyper-parameter 'mem_size'"),  # ... naive's, which has no memory
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


# -- typed options: every section is checked against the signature it is passed to --------------
BLOBS = {"name": "blobs", "n_per_class": 10, "n_test_per_class": 4}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"learner": {"name": "er", "mem_size": 2.5}}, r"\[learner\] mem_size must be an integer, got 2.5"),
        ({"learner": {"name": "er", "mem_size": True}}, r"\[learner\] mem_size must be an integer, got True"),
        ({"learner": {"name": "er", "replay_batch": "8"}}, r"\[learner\] replay_batch must be an integer \(or omitted\)"),
        ({"learner": {"name": "ewc", "online": 1}}, r"\[learner\] online must be true or false, got 1"),
        ({"learner": {"name": "ewc", "fisher": 3}}, r"\[learner\] fisher must be a string, got 3"),
        ({"learner": {"name": "error_memory", "inner_hp": [1]}}, r"\[learner\] inner_hp must be a table"),
        ({"learner": {"name": "er", "mem_sise": 5}}, "has no hyper-parameter 'mem_sise'"),
        ({"learner": {"name": "nope"}}, "unknown learner 'nope'"),
        ({"scenario": {"name": "class_incremental", "n_chunks": 2.5}},
         r"scenario 'class_incremental': n_chunks must be an integer, got 2.5"),
        ({"scenario": {"name": "class_incremental", "class_order": 3}},
         r"class_order must be a string or a list of integers, got 3"),
        ({"scenario": {"name": "domain_incremental", "angles": ["a", "b", "c", "d", "e"]}}, "angles must be a list of numbers"),
        ({"scenario": {"name": "class_incremental", "colour": 1}}, r"scenario 'class_incremental': has no option 'colour'"),
        ({"scenario": {"name": "l2m_dispersed", "sleep": "yes"}}, "sleep must be true or false"),
        ({"model": {"hidden": 32}}, r"\[model\] hidden must be a list of integers, got 32"),
        ({"model": {"hidden": [32.5]}}, r"\[model\] hidden must be a list of integers"),
        ({"model": {"kind": "cnn", "channels": [8, 16], "hidden": [4]}}, r"\[model\] hidden must be an integer"),
        ({"model": {"kind": "transformer"}}, "unknown model 'transformer'"),
        ({"model": {"n_classes": 3}}, "the run takes it from the stream"),
        ({"dataset": {"name": "digits", "test_fraction": "half"}}, "dataset 'digits': test_fraction must be a number"),
        ({"dataset": {"name": "digits", "download": "yes"}}, "download must be true or false"),
        ({"dataset": {"name": "digits", "colour": True}}, "unknown option"),
        ({"threads": True}, "non-negative integer"),
    ],
)
def test_options_of_the_wrong_type_are_config_errors(doc, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(doc)


def test_an_int_for_a_float_is_converted_and_valid_values_are_kept():
    cfg = from_dict({"learner": {"name": "ewc", "ewc_lambda": 5, "online": True},
                     "scenario": {"name": "blurry", "n_chunks": 2, "disjoint_ratio": 1},
                     "dataset": {"name": "digits", "test_fraction": 1}, "train": {"lr": 1, "momentum": 0}})
    assert cfg.learner == {"name": "ewc", "ewc_lambda": 5.0, "online": True}
    assert isinstance(cfg.learner["ewc_lambda"], float) and isinstance(cfg.scenario["disjoint_ratio"], float)
    assert cfg.dataset["test_fraction"] == 1.0 and isinstance(cfg.dataset["test_fraction"], float)
    assert cfg.train["lr"] == 1.0 and isinstance(cfg.train["lr"], float) and isinstance(cfg.train["momentum"], float)
    # lists and optional values keep their type; a class order is a string or a list of ints
    cfg = from_dict({"scenario": {"name": "class_incremental", "n_chunks": 5, "class_order": [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]},
                     "learner": {"name": "der", "replay_batch": 16}, "model": {"hidden": [8, 8]}})
    assert cfg.scenario["class_order"] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0] and cfg.model == {"kind": "mlp", "hidden": [8, 8]}
    assert cfg.learner["replay_batch"] == 16


def test_another_model_kind_does_not_inherit_the_mlp_defaults():
    cfg = from_dict({"model": {"kind": "cnn", "channels": [4, 8], "hidden": 16}})
    assert cfg.model == {"kind": "cnn", "channels": [4, 8], "hidden": 16}
    assert from_dict({"model": {"kind": "cnn"}}).model == {"kind": "cnn"}


@pytest.mark.parametrize("key", ["lr", "momentum"])
def test_lr_and_momentum_are_set_in_train_only(key):
    with pytest.raises(ConfigError, match=rf"\[learner\] {key}: .*set in one place, \[train\] {key}"):
        from_dict({"learner": {"name": "er", key: 0.1}})
    with pytest.raises(ConfigError, match=r"\[learner\] seed: .*top-level `seeds`"):
        from_dict({"learner": {"name": "er", "seed": 1}})


def test_train_lr_reaches_the_learner():
    from lifelong.experiments.runner import build_run

    cfg = from_dict({"dataset": BLOBS, "scenario": {"name": "class_incremental", "n_chunks": 2}, "model": {"hidden": [4]},
                     "train": {"lr": 0.2, "momentum": 0.5}, "learner": {"name": "er", "mem_size": 10}})
    learner = build_run(cfg, 0).learner
    assert (learner.lr, learner.momentum) == (0.2, 0.5)
    assert learner.opt.param_groups[0]["lr"] == 0.2 and learner.opt.param_groups[0]["momentum"] == 0.5


def test_unknown_sections_are_refused_and_reference_says_where_it_goes():
    with pytest.raises(ConfigError, match=r"no \[reference\] section.*lifelong report RUN --reference"):
        from_dict({"reference": {"run": "runs/joint"}})
    with pytest.raises(ConfigError, match="unknown config key"):
        from_dict({"optimizer": {"name": "adam"}})


def test_plugins_load_before_names_are_looked_up(tmp_path, monkeypatch):
    from lifelong.learn.methods import LEARNERS

    (tmp_path / "cfg_plugin_mod.py").write_text(
        "from lifelong.learn.methods import LEARNERS\n"
        "from lifelong.learn.methods.naive import Naive\n"
        "class Mine(Naive):\n"
        "    name = 'cfg_plugin_learner'\n"
        "    def __init__(self, model, *, width: int = 3, **base):\n"
        "        super().__init__(model, **base)\n"
        "        self.width = width\n"
        "LEARNERS.register('cfg_plugin_learner', Mine)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        cfg = from_dict({"plugins": ["cfg_plugin_mod"], "learner": {"name": "cfg_plugin_learner", "width": 5}})
        assert cfg.learner == {"name": "cfg_plugin_learner", "width": 5} and cfg.plugins == ("cfg_plugin_mod",)
        with pytest.raises(ConfigError, match=r"\[learner\] width must be an integer"):
            from_dict({"plugins": ["cfg_plugin_mod"], "learner": {"name": "cfg_plugin_learner", "width": 0.5}})
    finally:
        LEARNERS.pop("cfg_plugin_learner", None)
        sys.modules.pop("cfg_plugin_mod", None)
    with pytest.raises(ConfigError, match="no_such_plugin_mod"):
        from_dict({"plugins": ["no_such_plugin_mod"]})
