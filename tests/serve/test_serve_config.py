"""The serve config goes through the run config's validators: typed learner and model options,
lr and momentum in [train] only, plugins loaded first; its learner comes from the one runner."""

from __future__ import annotations

import sys

import pytest

from lifelong.errors import ConfigError
from lifelong.experiments.config import from_dict
from lifelong.learn.methods import LEARNERS
from lifelong.serve.config import build_learner, config_from_dict

MODEL = {"input_shape": [4], "n_classes": 3, "hidden": [8]}


def serve_cfg(**data):
    return config_from_dict({"model": dict(MODEL), **data}, env={})


@pytest.mark.parametrize(("data", "message"), [
    ({"learner": {"name": "er", "mem_size": 2.5}}, r"\[learner\] mem_size must be an integer, got 2.5"),
    ({"learner": {"name": "er", "mem_sise": 5}}, "has no hyper-parameter 'mem_sise'"),
    ({"learner": {"name": "er", "lr": 0.1}}, r"\[learner\] lr: .*\[train\] lr"),
    ({"learner": {"name": "nope"}}, "unknown learner 'nope'"),
    ({"model": {**MODEL, "hidden": 8}}, r"\[model\] hidden must be a list of integers, got 8"),
    ({"model": {**MODEL, "kind": "transformer"}}, "unknown model 'transformer'"),
    ({"train": {"lr": -1.0}}, r"lr must be a positive number"),
    ({"train": {"epochs": 2}}, r"unknown key 'epochs' in \[train\]"),
    ({"serve": {"batch_size": 2.5}}, r"\[serve\] batch_size must be an integer, got 2.5"),
    ({"serve": {"linger_ms": "soon"}}, r"\[serve\] linger_ms must be a number, got 'soon'"),
    ({"plugins": "mod"}, "plugins must be a list of module names"),
    ({"reference": {}}, "unknown key"),
])
def test_the_serve_config_uses_the_run_config_validators(data, message):
    with pytest.raises(ConfigError, match=message):
        serve_cfg(**data)
    # the same learner and model tables give the same message in a run config
    if "learner" in data or "model" in data:
        run_doc = {k: v for k, v in data.items() if k == "learner"}
        if "model" in data:
            run_doc["model"] = {k: v for k, v in data["model"].items() if k not in ("input_shape", "n_classes")}
        with pytest.raises(ConfigError, match=message):
            from_dict(run_doc)


def test_train_lr_reaches_the_served_learner_and_keeps_the_fingerprint():
    cfg = serve_cfg(learner={"name": "er", "mem_size": 20}, train={"lr": 0.2, "momentum": 0.5})
    learner = build_learner(cfg)
    assert (learner.lr, learner.momentum) == (0.2, 0.5) and learner.opt.param_groups[0]["lr"] == 0.2
    assert build_learner(serve_cfg(learner={"name": "er", "mem_size": 20})).lr == 0.05  # the learner's default
    # a data dir made when lr sat in [learner] keeps its fingerprint once lr moves to [train]
    old = config_from_dict({"model": dict(MODEL), "learner": {"name": "er", "mem_size": 20}}, env={})
    assert old.fingerprint() == serve_cfg(learner={"name": "er", "mem_size": 20}, train={}).fingerprint()
    moved = serve_cfg(learner={"name": "er", "mem_size": 20}, train={"lr": 0.2})
    assert moved.fingerprint() != old.fingerprint()
    # ints stay as given in the served config (existing fingerprints), the learner still gets floats
    cfg = serve_cfg(learner={"name": "ewc", "ewc_lambda": 5})
    assert cfg.learner["ewc_lambda"] == 5 and isinstance(build_learner(cfg).ewc_lambda, float)


def test_the_serve_config_loads_plugins_before_the_learner_lookup(tmp_path, monkeypatch):
    (tmp_path / "serve_plugin_mod.py").write_text(
        "from lifelong.learn.methods import LEARNERS\n"
        "from lifelong.learn.methods.naive import Naive\n"
        "class Served(Naive):\n"
        "    name = 'serve_plugin_learner'\n"
        "LEARNERS.register('serve_plugin_learner', Served)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        cfg = serve_cfg(plugins=["serve_plugin_mod"], learner={"name": "serve_plugin_learner"})
        assert cfg.plugins == ("serve_plugin_mod",) and type(build_learner(cfg)).__name__ == "Served"
    finally:
        LEARNERS.pop("serve_plugin_learner", None)
        sys.modules.pop("serve_plugin_mod", None)


def test_the_served_learner_guards_its_gradients():
    """A step with a non-finite gradient is skipped in the service (tests/learners/test_methods_loud.py
    checks what the guard does), so the worker never publishes NaN weights."""
    assert build_learner(serve_cfg()).guard_gradients is True
