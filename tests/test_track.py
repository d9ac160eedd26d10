"""Tracking (lifelong.experiments.track): TensorBoard and MLflow get every record and the final
metrics, read back here with the libraries' own readers; the run log is the same with tracking on
or off; a missing extra is a clear error (CLI exit 2, no traceback) that names the pip command.

The tests that need a library skip, with the reason, when it is not installed
(``pip install 'lifelong[tensorboard]' 'lifelong[mlflow]'``; both are in ``.[dev]``).
"""

from __future__ import annotations

import json
import math
import subprocess

import pytest
import tomli_w

from conftest import ROOT, cli, cli_env
from lifelong.errors import ConfigError
from lifelong.experiments.config import from_dict, load_config, override
from lifelong.experiments.run import execute
from lifelong.log import read_log

TINY = {"name": "trk", "seeds": [0, 1], "threads": 1,
        "dataset": {"name": "blobs", "n_per_class": 12, "n_test_per_class": 4},
        "scenario": {"name": "class_incremental", "n_chunks": 2}, "model": {"hidden": [8]},
        "train": {"epochs": 1, "batch_size": 8, "eval_every": 2}, "learner": {"name": "er", "mem_size": 16}}


def _cfg(**track):
    return from_dict({**TINY, "track": track} if track else TINY)


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    """The tiny run without tracking: its directory and metrics."""
    d = tmp_path_factory.mktemp("plain") / "run"
    return d, execute(_cfg(), d)


def _expected(run_dir):
    """Per seed: {tag: [(step, value), ...]} as the trackers should log them, from the run log."""
    out: dict[int, dict[str, list]] = {}
    for r in read_log(run_dir / "log.jsonl"):
        tags = out.setdefault(r.seed, {})
        if r.kind == "train":
            tags.setdefault("train/loss", []).append((r.step, r.loss_sum / r.n))
            tags.setdefault("train/accuracy", []).append((r.step, r.n_correct / r.n))
        elif r.kind == "eval":
            prefix = f"{'eval' if r.boundary else 'eval_every'}/task{r.task}"
            tags.setdefault(f"{prefix}/accuracy", []).append((r.step, r.n_correct / r.n))
    return out


def _finals(metrics, seed):
    return {f"final/{k}": v for k, v in metrics["per_seed"][str(seed)].items()
            if isinstance(v, (int, float)) and math.isfinite(v)}


def test_tensorboard_gets_every_record_and_the_final_metrics(tmp_path, plain_run):
    pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed: pip install 'lifelong[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    metrics = execute(_cfg(tensorboard=str(tmp_path / "tb")), run_dir)
    # tracking leaves the log as it is: byte-identical to the untracked run's
    assert (run_dir / "log.jsonl").read_bytes() == (plain_run[0] / "log.jsonl").read_bytes()
    expected = _expected(run_dir)
    assert set(expected) == {0, 1}
    for seed, tags in expected.items():
        ea = EventAccumulator(str(tmp_path / "tb" / "trk" / f"seed{seed}"), size_guidance={"scalars": 0})
        ea.Reload()
        for tag, points in tags.items():
            got = [(e.step, e.value) for e in ea.Scalars(tag)]
            assert [s for s, _ in got] == [s for s, _ in points], tag
            assert [v for _, v in got] == pytest.approx([v for _, v in points], rel=1e-6, abs=1e-7), tag
        assert any(t.startswith("eval_every/") for t in tags)  # periodic evaluations kept apart
        for tag, value in _finals(metrics, seed).items():
            assert ea.Scalars(tag)[-1].value == pytest.approx(value, rel=1e-6, abs=1e-7), tag


@pytest.mark.parametrize("store", ["sqlite", "file"])
def test_mlflow_gets_every_record_the_final_metrics_and_the_config(tmp_path, plain_run, store, monkeypatch):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install 'lifelong[mlflow]'")
    if store == "sqlite":
        pytest.importorskip("sqlalchemy", reason="MLflow's SQLite store needs sqlalchemy: pip install 'lifelong[mlflow]'")
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    else:
        monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses the file store without it
        uri = (tmp_path / "mlruns").as_uri()
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory besides what we name
    run_dir = tmp_path / "run"
    metrics = execute(_cfg(mlflow=uri, experiment="lifelong-test"), run_dir)
    assert (run_dir / "log.jsonl").read_bytes() == (plain_run[0] / "log.jsonl").read_bytes()
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("lifelong-test")
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert set(runs) == {"trk/seed0", "trk/seed1"}
    for seed, tags in _expected(run_dir).items():
        run = runs[f"trk/seed{seed}"]
        assert run.info.status == "FINISHED"
        assert run.data.tags["lifelong.seed"] == str(seed)
        assert run.data.params["learner.name"] == "er" and run.data.params["learner.mem_size"] == "16"
        assert run.data.params["train.batch_size"] == "8"
        for tag, points in tags.items():
            got = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, tag))
            assert [s for s, _ in got] == [s for s, _ in sorted(points)], tag
            assert [v for _, v in got] == pytest.approx([v for _, v in sorted(points)]), tag
        for tag, value in _finals(metrics, seed).items():
            assert run.data.metrics[tag] == pytest.approx(value), tag


def test_mlflow_store_that_cannot_be_used_is_a_config_error(tmp_path, monkeypatch):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install 'lifelong[mlflow]'")
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(ConfigError, match="MLflow cannot use this store"):
        execute(_cfg(mlflow="file:///definitely/not/writable/here"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def _blocker(tmp_path, *modules):
    """A directory whose packages ``modules`` fail to import, as when the extra is not installed."""
    d = tmp_path / "blocked"
    for m in modules:
        (d / m).mkdir(parents=True)
        (d / m / "__init__.py").write_text(f"raise ModuleNotFoundError(\"No module named {m!r}\", name={m!r})\n")
    return d


@pytest.mark.parametrize("flag,value,extra", [("--tensorboard", "tb", "tensorboard"),
                                              ("--mlflow", "sqlite:///m.db", "mlflow")])
def test_a_missing_extra_exits_2_naming_the_pip_command(tmp_path, flag, value, extra):
    (tmp_path / "tiny.toml").write_text(tomli_w.dumps(TINY))
    env = cli_env()
    env["PYTHONPATH"] = f"{_blocker(tmp_path, 'tensorboard', 'mlflow')}:{ROOT}"
    proc = subprocess.run(cli("run", "tiny.toml", flag, value), cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert f"pip install 'lifelong[{extra}]'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_track_section_is_checked_and_the_flags_set_it():
    with pytest.raises(ConfigError, match="unknown key 'tensorbord' in \\[track\\]"):
        from_dict({**TINY, "track": {"tensorbord": "x"}})
    with pytest.raises(ConfigError, match="\\[track\\] mlflow must be a non-empty string"):
        from_dict({**TINY, "track": {"mlflow": 3}})
    cfg = override(from_dict(TINY), tensorboard="tb", mlflow="sqlite:///m.db")
    assert cfg.track == {"tensorboard": "tb", "mlflow": "sqlite:///m.db"}
    assert from_dict(TINY).track == {} and "track" not in from_dict(TINY).to_toml()  # off: config.toml unchanged


def test_tracking_survives_the_config_round_trip(tmp_path):
    cfg = _cfg(tensorboard="tb", experiment="e")
    (tmp_path / "c.toml").write_text(cfg.to_toml())
    assert load_config(tmp_path / "c.toml").track == {"tensorboard": "tb", "experiment": "e"}
    assert json.loads(json.dumps(cfg.to_dict()))["track"] == {"tensorboard": "tb", "experiment": "e"}
