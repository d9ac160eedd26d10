"""User data from the command line (``--data``, ``--label``, ``--standardize``), the file loader's
``standardize`` option, flag normalisation and notes, and config errors found before any data is read."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
import torch

from conftest import cli, cli_env
from lifelong.data.datasets import load_dataset
from lifelong.data.datasets.files import standardize_splits


def write_csv(path, *, n_per_class=30, n_classes=4, scale=1.0, label="target", seed=0):
    """A CSV of ``n_classes`` Gaussian classes in 3 features (times ``scale``), labels in ``label``."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 4.0, size=(n_classes, 3))
    y = np.repeat(np.arange(n_classes), n_per_class)
    x = (means[y] + rng.normal(size=(len(y), 3))) * scale
    frame = pd.DataFrame(x, columns=["f0", "f1", "f2"])
    frame[label] = y
    frame.to_csv(path, index=False)
    return path


# -- the standardize option ------------------------------------------------------------------------
def test_standardize_uses_the_training_statistics_for_both_splits(tmp_path):
    file = tmp_path / "test_stats.npz"
    rng = np.random.default_rng(1)
    x_train = rng.normal(100.0, 20.0, size=(50, 3)).astype(np.float32)
    x_train[:, 2] = 7.0  # a constant feature: centred, not divided by 0
    x_test = rng.normal(-30.0, 2.0, size=(10, 3)).astype(np.float32)  # its own statistics differ
    y_train, y_test = np.arange(50) % 2, np.arange(10) % 2
    np.savez(file, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)

    ds = load_dataset("file", path=str(file), standardize=True)
    mean, std = x_train.astype(np.float64).mean(0), x_train.astype(np.float64).std(0)
    std[2] = 1.0
    np.testing.assert_allclose(ds.x_test.numpy(), (x_test - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.numpy().mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.numpy()[:, :2].std(0), 1.0, atol=1e-5)
    assert (ds.x_train[:, 2] == 0).all() and torch.allclose(ds.x_test[:, 2], torch.tensor(x_test[:, 2] - 7.0))
    assert ds.x_test.numpy()[:, :2].mean() < -3  # not re-centred on its own statistics
    # default: the values as they are in the file
    raw = load_dataset("file", path=str(file))
    assert torch.equal(raw.x_test, torch.from_numpy(x_test))


def test_standardize_on_a_csv_keeps_the_split_and_the_labels(tmp_path):
    file = write_csv(tmp_path / "table.csv", scale=1000.0)
    raw = load_dataset("file", path=str(file), label="target", seed=3)
    scaled = load_dataset("file", path=str(file), label="target", seed=3, standardize=True)
    assert torch.equal(raw.y_train, scaled.y_train) and torch.equal(raw.y_test, scaled.y_test)
    expected_train, expected_test = standardize_splits(raw.x_train.numpy(), raw.x_test.numpy())
    np.testing.assert_allclose(scaled.x_train.numpy(), expected_train, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(scaled.x_test.numpy(), expected_test, rtol=1e-5, atol=1e-5)
    mean = raw.x_train.double().mean(0)
    std = raw.x_train.double().std(0, correction=0)
    np.testing.assert_allclose(scaled.x_test.numpy(), ((raw.x_test.double() - mean) / std).numpy(), rtol=1e-4, atol=1e-4)


def test_standardize_must_be_a_bool(tmp_path):
    from lifelong.errors import ConfigError

    file = tmp_path / "toy.npz"
    np.savez(file, x=np.eye(8, dtype=np.float32), y=np.arange(8) % 2)
    with pytest.raises(ConfigError, match="standardize"):
        load_dataset("file", path=str(file), standardize="yes")


# -- flags: names with hyphens, the same learner keeps its options, notes ------------------------
from lifelong.errors import ConfigError  # noqa: E402
from lifelong.experiments.config import from_dict, override  # noqa: E402

BLOBS = {"name": "blobs", "n_per_class": 10, "n_test_per_class": 4}


def test_hyphenated_names_are_the_registered_ones():
    cfg = from_dict({"dataset": BLOBS, "learner": {"name": "er"}})
    out = override(cfg, learner="cls-er", scenario="class-incremental", dataset="fashion-mnist", note=print)
    assert (out.learner["name"], out.scenario["name"], out.dataset["name"]) == ("cls_er", "class_incremental",
                                                                                 "fashion_mnist")
    notes: list[str] = []
    with pytest.raises(ConfigError, match="unknown learner 'no-such'"):  # the error comes alone
        override(from_dict({"dataset": BLOBS, "learner": {"name": "er", "mem_size": 9}}), learner="no-such",
                 note=notes.append)
    assert notes == []


def test_the_same_learner_keeps_its_hyper_parameters_and_a_new_one_names_what_it_drops():
    cfg = from_dict({"dataset": BLOBS, "learner": {"name": "cls_er", "mem_size": 40, "reg_weight": 0.5}})
    notes: list[str] = []
    same = override(cfg, learner="cls-er", note=notes.append)
    assert same.learner == {"name": "cls_er", "mem_size": 40, "reg_weight": 0.5} and notes == []
    assert override(cfg, learner="cls_er", mem_size=7, note=notes.append).learner["reg_weight"] == 0.5
    other = override(cfg, learner="er", mem_size=30, note=notes.append)
    assert other.learner == {"name": "er", "mem_size": 30}
    assert notes == ["--learner er replaces cls_er: dropped its [learner] hyper-parameters mem_size, reg_weight"]


def test_memory_on_a_learner_without_one_is_ignored_with_a_note():
    cfg = from_dict({"dataset": BLOBS, "learner": {"name": "er", "mem_size": 40}})
    for name in ("naive", "ewc", "joint"):
        notes: list[str] = []
        out = override(cfg, learner=name, mem_size=100, note=notes.append)
        assert "mem_size" not in out.learner
        assert notes[-1] == f"{name} has no memory; --memory ignored"
    with pytest.warns(UserWarning, match="naive has no memory"):  # no note callback: a warning
        override(from_dict({"dataset": BLOBS}), mem_size=100)
    assert override(cfg, mem_size=9).learner["mem_size"] == 9  # a learner with a memory takes it


def test_data_flag_selects_the_file_dataset(tmp_path):
    file = write_csv(tmp_path / "table.csv")
    cfg = from_dict({"dataset": BLOBS})
    out = override(cfg, data=file, label="target", standardize=True, note=print)
    assert out.dataset == {"name": "file", "path": str(file), "label": "target", "standardize": True}
    with pytest.raises(ConfigError, match="drop --dataset digits"):
        override(cfg, data=file, dataset="digits")


def test_divergence_on_unscaled_inputs_suggests_standardize(tmp_path):
    from lifelong.experiments.run import execute
    from lifelong.learn.base import TrainingDiverged

    def run(file, name, lr, **dataset):
        cfg = from_dict({"dataset": {"name": "file", "path": str(file), "label": "target", **dataset},
                         "scenario": {"name": "class_incremental", "n_chunks": 2}, "model": {"hidden": [16]},
                         "train": {"epochs": 1, "batch_size": 8, "lr": lr}, "learner": {"name": "naive"}})
        return execute(cfg, tmp_path / name)

    big = write_csv(tmp_path / "big.csv", scale=1e4)
    with pytest.raises(TrainingDiverged, match=r"unscaled: features of 'big' reach \|x\| = .*standardize = true"):
        run(big, "raw", 0.05)
    assert run(big, "scaled", 0.05, standardize=True)["summary"]["acc"][0] > 0.4  # 4 classes: chance 0.25
    small = write_csv(tmp_path / "small.csv", scale=0.1)
    with pytest.raises(TrainingDiverged) as info:  # diverges for another reason: no scaling hint
        run(small, "lr", 1e12)
    assert "unscaled" not in str(info.value)


# -- the command line ------------------------------------------------------------------------------
def fresh_env(tmp_path) -> dict[str, str]:
    """The CLI's environment on a machine without Fashion-MNIST anywhere."""
    env = cli_env()
    env["LIFELONG_NO_SYSTEM_DATA"] = "1"
    env["LIFELONG_DATA"] = str(tmp_path / "no-data")
    env["LIFELONG_CACHE"] = str(tmp_path / "no-cache")
    return env


def run_cli(tmp_path, *args, env=None):
    return subprocess.run(cli(*args), cwd=tmp_path, env=env or fresh_env(tmp_path), capture_output=True, text=True,
                          timeout=300)


def test_the_fresh_machine_switch_hides_the_system_copy(tmp_path, monkeypatch):
    from test_datasets import write_mnist_dir

    from lifelong.data.datasets import dataset_available, fashion_mnist

    write_mnist_dir(tmp_path / "system")
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "system")  # as if the package were here
    monkeypatch.delenv("LIFELONG_DATA", raising=False)
    monkeypatch.setenv("LIFELONG_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("LIFELONG_NO_SYSTEM_DATA", raising=False)
    assert dataset_available("fashion_mnist")
    monkeypatch.setenv("LIFELONG_NO_SYSTEM_DATA", "0")
    assert dataset_available("fashion_mnist")
    monkeypatch.setenv("LIFELONG_NO_SYSTEM_DATA", "1")
    assert not dataset_available("fashion_mnist")


@pytest.mark.slow
def test_config_errors_come_before_missing_data(tmp_path):
    (tmp_path / "fm.toml").write_text('[dataset]\nname = "fashion_mnist"\n[learner]\nname = "nosuch"\n')
    (tmp_path / "fm_ok.toml").write_text('[dataset]\nname = "fashion_mnist"\n[learner]\nname = "naive"\n')
    cases = [
        (["run", "--learner", "nosuch"], "unknown learner 'nosuch'"),
        (["run", "--dataset", "fashion-mnist", "--learner", "nosuch"], "unknown learner 'nosuch'"),
        (["run", "fm.toml"], "unknown learner 'nosuch'"),
        (["run", "fm_ok.toml", "--scenario", "no-such"], "unknown scenario"),
        (["run", "fm_ok.toml", "--learner", "ewc", "--label", "y"], "--label applies to your own file"),
        # the control: the same machine really has no Fashion-MNIST
        (["run", "fm_ok.toml"], "fashion_mnist: no directory holds the four files"),
    ]
    for args, message in cases:
        proc = run_cli(tmp_path, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        first = proc.stderr.strip().splitlines()[0]
        assert first.startswith("error: ") and message in first, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_run_on_a_csv_from_the_command_line(tmp_path):
    write_csv(tmp_path / "sensors.csv", scale=1e4, label="target")
    common = ["--data", "sensors.csv", "--label", "target", "--learner", "er", "--memory", "40", "--n-chunks", "2",
              "--epochs", "1", "--batch-size", "8", "--lr", "0.05", "--seeds", "0"]
    raw = run_cli(tmp_path, "run", *common)
    assert raw.returncode == 2 and "Traceback" not in raw.stderr
    assert "inputs look unscaled" in raw.stderr and "--standardize" in raw.stderr
    proc = run_cli(tmp_path, "run", *common, "--standardize")
    assert proc.returncode == 0, proc.stderr
    assert "Split sensors.csv, class-incremental, 2 chunks" in proc.stdout
    config = (tmp_path / "runs" / "demo-er" / "config.toml").read_text()
    for line in ('name = "file"', 'label = "target"', "standardize = true", "mem_size = 40"):
        assert line in config
    metrics = json.loads((tmp_path / "runs" / "demo-er" / "metrics.json").read_text())
    assert metrics["summary"]["acc"][0] > 0.4  # 4 well-separated classes; chance is 0.25


@pytest.mark.slow
def test_memory_note_hyphens_and_kept_hyper_parameters_on_the_command_line(tmp_path):
    (tmp_path / "c.toml").write_text(
        'name = "c"\nseeds = [0]\n[dataset]\nname = "blobs"\nn_per_class = 10\nn_test_per_class = 4\n'
        '[scenario]\nname = "class_incremental"\nn_chunks = 2\n[model]\nhidden = [8]\n'
        '[train]\nepochs = 1\nbatch_size = 16\nlr = 0.05\n[learner]\nname = "cls_er"\nmem_size = 30\nreg_weight = 0.5\n')
    kept = run_cli(tmp_path, "run", "c.toml", "--learner", "cls-er", "--scenario", "class-incremental",
                   "--dataset", "blobs", "--name", "kept")
    assert kept.returncode == 0, kept.stderr
    assert "note:" not in kept.stderr
    config = (tmp_path / "runs" / "kept" / "config.toml").read_text()
    assert 'name = "cls_er"' in config and "mem_size = 30" in config and "reg_weight = 0.5" in config
    naive = run_cli(tmp_path, "run", "c.toml", "--learner", "naive", "--memory", "50", "--name", "naive")
    assert naive.returncode == 0, naive.stderr
    notes = [line for line in naive.stderr.splitlines() if line.startswith("note: ")]
    assert notes == ["note: --learner naive replaces cls_er: dropped its [learner] hyper-parameters mem_size, reg_weight",
                     "note: naive has no memory; --memory ignored"]
    assert "mem_size" not in (tmp_path / "runs" / "naive" / "config.toml").read_text()


@pytest.mark.slow
def test_name_prefixes_the_run_directories_of_the_built_in_comparison(tmp_path):
    proc = run_cli(tmp_path, "run", "--dataset", "blobs", "--learner", "naive", "--n-chunks", "2", "--epochs", "1",
                   "--seeds", "0", "--name", "mine")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "runs" / "mine-naive" / "metrics.json").is_file()
    assert not (tmp_path / "runs" / "demo-naive").exists()
    assert "mine-naive/report.md" in proc.stdout.replace("\n", "")
