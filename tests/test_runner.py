"""The one runner: build_run / iter_seed are what run, the ledger, the L2M experts, tune and serve
use; torch's thread count is restored after a run."""

from __future__ import annotations

import json

import pytest
import torch

from lifelong.data.lifetimes import SCENARIO_TYPES, expert_streams
from lifelong.errors import ConfigError
from lifelong.evaluate.lifetimes import L2LOGGER_SCENARIO_TYPES
from lifelong.experiments import experts, tune
from lifelong.experiments.config import from_dict
from lifelong.experiments.run import execute
from lifelong.experiments.runner import BuiltRun, build_run, iter_seed, load_data, torch_threads
from lifelong.experiments.tune import first_chunks, trial_scores
from lifelong.log import read_log

BLOBS = {"name": "blobs", "n_classes": 4, "n_per_class": 12, "n_test_per_class": 4, "dim": 6}


def config(**changes):
    doc = {"name": "r", "seeds": [0], "dataset": BLOBS, "scenario": {"name": "class_incremental", "n_chunks": 2},
           "model": {"hidden": [8]}, "train": {"batch_size": 8}, "learner": {"name": "er", "mem_size": 10}}
    doc.update(changes)
    return from_dict(doc)


def test_a_built_run_is_deterministic_and_is_what_lifelong_run_logs(tmp_path):
    cfg = config()
    a, b = list(iter_seed(build_run(cfg, 0))), list(iter_seed(build_run(cfg, 0)))
    assert [r.to_json() for r in a] == [r.to_json() for r in b]
    execute(cfg, tmp_path / "run")
    assert [r.to_json() for r in read_log(tmp_path / "run" / "log.jsonl")] == [r.to_json() for r in a]
    assert a[0].kind == "meta" and a[0].extra["dataset"] == "blobs" and a[0].extra["seed"] == 0


def test_iter_seed_resumes_from_a_checkpoint_state():
    cfg = config()
    full = list(iter_seed(build_run(cfg, 0)))
    run = build_run(cfg, 0)
    records = iter_seed(run)
    head = []
    for rec in records:
        head.append(rec)
        if rec.kind == "chunk_end":
            break
    state = {"learner": run.learner.state_dict(), "next_chunk": head[-1].chunk + 1, "step": head[-1].step}
    tail = list(iter_seed(build_run(cfg, 0), state=state))
    assert tail and [r.to_json() for r in tail] == [r.to_json() for r in full[len(head):]]


def test_the_experts_are_built_and_run_by_the_runner(tmp_path, monkeypatch):
    cfg = config(scenario={"name": "l2m_condensed", "n_chunks": 2})
    built: list[BuiltRun] = []

    def spy(*args, **kwargs):
        built.append(build_run(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(experts, "build_run", spy)
    paths = experts.run_experts(cfg, tmp_path)
    ds = load_data(cfg)
    streams = expert_streams(ds, cfg.scenario, 0)
    assert [b.stream.name for b in built] == ["l2m_ste", "l2m_ste"] and sorted(paths) == sorted(streams)
    for task, stream in streams.items():
        expected = list(iter_seed(build_run(cfg, 0, ds, stream=stream), meta={"ste": True}))
        assert [r.to_json() for r in read_log(paths[task])] == [r.to_json() for r in expected]


def test_a_tune_trial_scores_the_runner_records_of_the_first_chunks(monkeypatch):
    cfg = config(scenario={"name": "class_incremental", "n_chunks": 4}, seeds=[3])
    built: list[BuiltRun] = []

    def spy(*args, **kwargs):
        built.append(build_run(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(tune, "build_run", spy)
    reports = list(trial_scores(cfg, 3, 2))
    assert len(built) == 1 and len(built[0].stream.chunks) == 2 and built[0].seed == 3
    ds = load_data(cfg)
    from lifelong.experiments.runner import make_stream

    records = list(iter_seed(build_run(cfg, 3, ds, stream=first_chunks(make_stream(cfg, ds, 3), 2))))
    last_row = [r.accuracy for r in records if r.kind == "eval" and r.boundary and r.chunk == 1]
    assert [r["chunk"] for r in reports] == [1, 2] and reports[-1]["final"] == 1
    assert reports[-1]["acc"] == pytest.approx(sum(last_row) / 2)


def test_torch_threads_are_restored_after_a_run_and_after_a_failed_one(tmp_path):
    before = torch.get_num_threads()
    seen = []
    execute(config(threads=2), tmp_path / "a", on_progress=lambda p: seen.append(torch.get_num_threads()))
    assert set(seen) == {2} and torch.get_num_threads() == before
    with pytest.raises(ConfigError, match="do not split"):  # fails inside the run, after the threads were set
        execute(config(threads=2, scenario={"name": "class_incremental", "n_chunks": 3}), tmp_path / "b")
    assert torch.get_num_threads() == before
    with torch_threads(0):  # 0 leaves torch's setting alone
        assert torch.get_num_threads() == before


def test_the_l2logger_scenario_types_are_the_lifetime_types():
    assert tuple(L2LOGGER_SCENARIO_TYPES) == tuple(SCENARIO_TYPES)


def test_a_run_with_experts_has_an_l2m_section(tmp_path):
    cfg = config(scenario={"name": "l2m_condensed", "n_chunks": 2, "ste": True})
    metrics = execute(cfg, tmp_path / "run")
    assert metrics["l2m"]["ste_tasks"] == sorted(expert_streams(load_data(cfg), cfg.scenario, 0))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["l2m"]["scenario_type"] == "condensed"
