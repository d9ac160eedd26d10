"""Protocol defaults: the [train] keys a config leaves out come from the dataset and the scenario."""

import tomllib

import pytest

from lifelong.data.datasets import load_dataset
from lifelong.experiments.config import from_dict
from lifelong.experiments.protocol import MAX_EPOCHS, describe, resolve_protocol as _resolve, size_protocol
from lifelong.experiments.run import execute
from lifelong.experiments.runner import build_run


def resolve_protocol(cfg, ds, n=None):
    return _resolve(cfg, ds.name, len(ds.y_train) if n is None else n)


def _cfg(**sections):
    return from_dict({"dataset": {"name": "digits"}, "scenario": {"name": "class_incremental", "n_chunks": 5},
                      **sections})


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_small_data_gets_enough_epochs_and_large_data_one(digits):
    cfg = resolve_protocol(_cfg(), digits)
    assert cfg.train["epochs"] == size_protocol(len(digits.y_train))["epochs"] > 20
    assert size_protocol(60000)["epochs"] == 1 and size_protocol(10)["epochs"] == MAX_EPOCHS
    assert size_protocol(1000)["epochs"] > size_protocol(5000)["epochs"]


def test_user_keys_win_and_resolution_is_idempotent(digits):
    cfg = resolve_protocol(_cfg(train={"epochs": 3}), digits)
    assert cfg.train["epochs"] == 3 and cfg.train["batch_size"] == 32 and cfg.train["lr"] == 0.05
    assert resolve_protocol(cfg, digits) == cfg
    assert "epochs 3 (your config)" in describe(_cfg(train={"epochs": 3}), "digits", 1000)


def test_domain_incremental_streams_train_each_domain_like_the_dataset(digits):
    cil = build_run(_cfg(), 0, digits).loop.epochs
    dil = {"name": "domain_incremental", "n_chunks": 10}
    assert build_run(_cfg(scenario=dil), 0, digits).loop.epochs == cil == size_protocol(len(digits.y_train))["epochs"]
    # cumulative retrains on everything seen: it counts the whole stream
    cum = build_run(_cfg(scenario=dil, learner={"name": "cumulative"}), 0, digits).loop.epochs
    assert cum == size_protocol(10 * len(digits.y_train))["epochs"] < cil


def test_declared_dataset_protocol_is_used():
    blobs = load_dataset("blobs", n_per_class=30, n_test_per_class=5)
    # blobs declares none: derived from its size; mnist1d declares 40 epochs (not loaded here)
    assert resolve_protocol(_cfg(dataset={"name": "blobs"}), blobs).train["epochs"] == size_protocol(300)["epochs"]
    from lifelong.data.datasets import DATASETS
    assert DATASETS["mnist1d"].protocol["epochs"] == 40 and DATASETS["fashion_mnist"].protocol["epochs"] == 1


def test_online_scenario_is_single_pass_at_batch_10_but_references_keep_their_epochs(digits):
    online = {"name": "online", "n_chunks": 5}
    er = resolve_protocol(_cfg(scenario=online, learner={"name": "er"}), digits)
    assert (er.train["epochs"], er.train["batch_size"]) == (1, 10)
    joint = resolve_protocol(_cfg(scenario=online, learner={"name": "joint"}), digits)
    assert joint.train["epochs"] > 1 and joint.train["batch_size"] == 10
    assert build_run(_cfg(scenario=online, learner={"name": "er"}), 0, digits).loop.batch_size == 10


def test_run_writes_the_resolved_protocol_to_config_toml(tmp_path):
    cfg = from_dict({"dataset": {"name": "blobs", "n_per_class": 20, "n_test_per_class": 4},
                     "scenario": {"name": "class_incremental", "n_chunks": 2}, "model": {"hidden": [8]},
                     "checkpoint": False})
    execute(cfg, tmp_path / "r")
    written = tomllib.loads((tmp_path / "r" / "config.toml").read_text())
    assert written["train"]["epochs"] == size_protocol(200)["epochs"] and written["train"]["lr"] == 0.05



def test_icarl_refuses_a_domain_incremental_stream(digits):
    from lifelong.errors import ConfigError
    from lifelong.experiments.runner import iter_seed
    run = build_run(_cfg(scenario={"name": "domain_incremental", "n_chunks": 3}, learner={"name": "icarl"}), 0, digits)
    with pytest.raises(ConfigError, match="every chunk brings new classes"):
        next(iter_seed(run))
