"""L2M lifetimes: block structure of every scenario type, determinism, sleep blocks in the loop,
single-task experts run by the runner, the "l2m" section of metrics.json, and l2logger export/import."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from conftest import tiny_dataset

from lifelong.experiments.config import from_dict
from lifelong.errors import ConfigError
from lifelong.evaluate.l2logger import read_l2logger, records_to_l2rows
from lifelong.evaluate.lifetimes import export_l2logger, expert_rows
from lifelong.data.lifetimes import (
    expert_streams,
    l2m_alternating,
    l2m_condensed,
    l2m_dispersed,
    l2m_permuted,
    l2m_ste,
    lifetime_schedule,
)
from lifelong.learn.methods import make_learner
from lifelong.learn.methods.naive import Naive
from lifelong.log import read_log
from lifelong.learn.loop import LoopConfig, iter_run
from lifelong.evaluate.l2m import LIFETIME_METRICS, l2m_metrics
from lifelong.learn.nets import mlp
from lifelong.experiments.run import execute
from lifelong.data.scenarios import SCENARIOS, build_stream


@pytest.fixture(scope="module")
def ds():
    return tiny_dataset(n_classes=6, n_train=30, n_test=10)


def names(stream):
    return [c.name.split("_")[0] for c in stream.chunks]


def rows_of(x: torch.Tensor) -> set[tuple[float, ...]]:
    return {tuple(r.tolist()) for r in x}


def test_every_l2m_scenario_is_registered():
    assert {"l2m_condensed", "l2m_dispersed", "l2m_alternating", "l2m_permuted", "l2m_ste"} <= set(SCENARIOS)


def test_condensed_learns_each_task_once_and_pairs_chunks_with_eval_sets(ds):
    s = l2m_condensed(ds, n_chunks=3)
    assert names(s) == ["task0", "task1", "task2"]
    assert [e.index for e in s.eval_sets] == [0, 1, 2]
    assert [c.name for c in s.chunks] == [e.name for e in s.eval_sets]
    assert [len(c) for c in s.chunks] == [60, 60, 60]  # 2 classes x 30 samples, all of them
    assert s.info["scenario_type"] == "condensed" and s.info["sleep_chunks"] == []


def test_dispersed_cuts_each_task_into_disjoint_pieces_visited_in_rounds(ds):
    s = l2m_dispersed(ds, n_chunks=3, repeats=3)
    assert names(s) == ["task0", "task1", "task2"] * 3
    base = l2m_condensed(ds, n_chunks=3)
    for t in range(3):
        pieces = [c for c in s.chunks if c.name == base.chunks[t].name]
        assert sorted(len(p) for p in pieces) == [20, 20, 20]
        union = set().union(*(rows_of(p.x) for p in pieces))
        assert union == rows_of(base.chunks[t].x)  # the pieces partition the task's data
        assert all(set(p.y.tolist()) == set(base.chunks[t].classes) for p in pieces)  # every class in every piece
    assert len(s.eval_sets) == 3  # a recurring task keeps its evaluation set


def test_alternating_switches_back_and_forth_within_pairs(ds):
    assert lifetime_schedule("alternating", 4, repeats=2) == [0, 1, 0, 1, 2, 3, 2, 3]
    s = l2m_alternating(ds, n_chunks=3, repeats=2)
    assert names(s) == ["task0", "task1", "task0", "task1", "task2", "task0", "task2", "task0"]
    with pytest.raises(ConfigError, match="repeats >= 2"):
        l2m_alternating(ds, n_chunks=3, repeats=1)


def test_permuted_is_a_seeded_random_order_without_immediate_repeats(ds):
    orders = {tuple(lifetime_schedule("permuted", 5, repeats=2, seed=seed)) for seed in range(6)}
    assert len(orders) > 1  # the seed changes the order
    for order in orders:
        assert Counter(order) == {t: 2 for t in range(5)}
        assert all(a != b for a, b in zip(order, order[1:]))
    s = l2m_permuted(ds, n_chunks=3, seed=4)
    # evaluation sets follow the order of first learning, so chunk i trains evaluation set i
    assert [c.name for c in s.chunks] == [e.name for e in s.eval_sets]


def test_same_seed_same_lifetime(ds):
    a = l2m_permuted(ds, n_chunks=3, repeats=2, sleep=True, sleep_size=16, seed=7)
    b = l2m_permuted(ds, n_chunks=3, repeats=2, sleep=True, sleep_size=16, seed=7)
    assert [c.name for c in a.chunks] == [c.name for c in b.chunks]
    assert all(torch.equal(x.x, y.x) and torch.equal(x.y, y.y) for x, y in zip(a.chunks, b.chunks))


def test_task_split_keeps_task_ids_consistent_with_task_classes(ds):
    s = l2m_dispersed(ds, split="task", n_chunks=3, repeats=2, sleep=True, sleep_size=16)
    for c in s.chunks:
        assert c.task is not None
        for y, t in zip(c.y.tolist(), c.task.tolist()):
            assert y in s.task_classes[t]


def test_sleep_blocks_follow_every_learning_block_and_replay_only_learned_tasks(ds):
    s = l2m_dispersed(ds, n_chunks=3, repeats=2, sleep=True, sleep_size=16)
    assert s.info["sleep_chunks"] == list(range(1, 12, 2))
    assert s.info["block_subtypes"] == ["wake", "sleep"] * 6
    for i in s.info["sleep_chunks"]:
        assert s.chunks[i].name == s.chunks[i - 1].name  # named after the task just learned
        assert len(s.chunks[i]) == 16
        learned = set().union(*(s.chunks[k].classes for k in range(i) if k not in s.info["sleep_chunks"]))
        assert set(s.chunks[i].y.tolist()) <= learned
    assert set(s.chunks[1].y.tolist()) == {0, 1}  # after the first block only task 0 exists


def test_bad_options_are_config_errors(ds):
    with pytest.raises(ConfigError, match="repeats >= 2"):
        build_stream("l2m_dispersed", ds, seed=0, n_chunks=3, repeats=1)
    with pytest.raises(ConfigError, match="split"):
        build_stream("l2m_condensed", ds, seed=0, n_chunks=3, split="pixels")
    with pytest.raises(ConfigError, match="sleep_size"):
        build_stream("l2m_condensed", ds, seed=0, n_chunks=3, sleep=True, sleep_size=0)
    with pytest.raises(ConfigError, match="no task named"):
        l2m_ste(ds, n_chunks=3, task="nope")


def test_ste_streams_hold_each_whole_task_alone(ds):
    lifetime = l2m_dispersed(ds, n_chunks=3, repeats=3, seed=2)
    experts = expert_streams(ds, {"name": "l2m_dispersed", "n_chunks": 3, "repeats": 3, "sleep": True}, seed=2)
    assert list(experts) == [e.name for e in lifetime.eval_sets]
    for task, s in experts.items():
        assert len(s.chunks) == 1 and len(s.eval_sets) == 1 and s.info["scenario_type"] == "ste"
        pieces = [c for c in lifetime.chunks if c.name == task]
        assert rows_of(s.chunks[0].x) == set().union(*(rows_of(p.x) for p in pieces))
        assert torch.equal(s.eval_sets[0].x, next(e.x for e in lifetime.eval_sets if e.name == task))
    assert l2m_ste(ds, n_chunks=3, task=1, seed=2).chunks[0].name == list(experts)[1]


class CountingNaive(Naive):
    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.ends = 0

    def end_chunk(self):
        self.ends += 1


def run_lifetime(stream, learner):
    return list(iter_run(stream, learner, LoopConfig(batch_size=8), seed=0))


def test_the_loop_sleeps_on_memory_or_rehearsal_and_skips_end_chunk(ds):
    s = l2m_dispersed(ds, n_chunks=3, repeats=2, sleep=True, sleep_size=16)
    naive = CountingNaive(mlp(s.input_shape, s.n_classes, hidden=(16,), seed=0), seed=0)
    recs = run_lifetime(s, naive)
    assert naive.ends == 6  # after each of the 6 learning blocks, not after the 6 sleep blocks
    sleep_train = [r for r in recs if r.kind == "train" and r.chunk in s.info["sleep_chunks"]]
    assert len(sleep_train) == 6 * 2  # 16 samples per sleep block, batches of 8
    assert {(r.extra["subtype"], r.extra["source"]) for r in sleep_train} == {("sleep", "rehearsal")}
    assert all("subtype" not in r.extra for r in recs if r.kind == "train" and r.chunk not in s.info["sleep_chunks"])

    er = make_learner("er", mlp(s.input_shape, s.n_classes, hidden=(16,), seed=0), seed=0, mem_size=20)
    seen_before_sleep = []
    for r in iter_run(s, er, LoopConfig(batch_size=8), seed=0):
        if r.kind == "train" and r.chunk in s.info["sleep_chunks"]:
            assert r.extra["source"] == "memory"
            seen_before_sleep.append(er.memory.n_seen)
    assert len(set(seen_before_sleep)) == len(s.info["sleep_chunks"])  # sleep never adds to the memory

    rows = records_to_l2rows(recs, 0)
    subtypes = {(r["block_num"], r["block_subtype"]) for r in rows if r["block_type"] == "train"}
    assert [b for b, st in sorted(subtypes) if st == "sleep"] == [4 * k + 3 for k in range(6)]  # test,train,test,sleep,...
    m = l2m_metrics(rows)
    assert m["perf_maintenance_mrlep"] == m["perf_maintenance_mrlep"]  # defined (not NaN)
    assert len(m["task_metrics"]["task0_0-1"]["recovery_times"]) == 1  # two wake blocks of task 0


def test_same_seed_same_records_with_sleep(ds):
    s = l2m_alternating(ds, n_chunks=3, repeats=2, sleep=True, sleep_size=16)

    def log():
        er = make_learner("er", mlp(s.input_shape, s.n_classes, hidden=(16,), seed=0), seed=0, mem_size=20)
        return [r.to_json() for r in run_lifetime(s, er)]

    assert log() == log()


def test_a_lifetime_with_sleep_resumes_exactly(ds):
    s = l2m_dispersed(ds, n_chunks=3, repeats=2, sleep=True, sleep_size=16)

    def er():
        return make_learner("er", mlp(s.input_shape, s.n_classes, hidden=(16,), seed=0), seed=0, mem_size=20)

    full = [r.to_json() for r in run_lifetime(s, er())]
    first, head = er(), []
    for r in iter_run(s, first, LoopConfig(batch_size=8), seed=0):
        head.append(r.to_json())
        if r.kind == "chunk_end" and r.chunk == 3:  # right after a sleep block
            state, step = first.state_dict(), r.step
            break
    second = er()
    second.load_state_dict(state)
    tail = [r.to_json() for r in iter_run(s, second, LoopConfig(batch_size=8), seed=0, start_chunk=4, start_step=step)]
    assert head + tail == full


def blobs_config(run, **scenario):
    return from_dict({
        "name": run, "seeds": [0],
        "dataset": {"name": "blobs", "n_classes": 4, "n_per_class": 24, "n_test_per_class": 10},
        "scenario": {"name": "l2m_dispersed", "n_chunks": 2, "repeats": 3, **scenario},
        "model": {"kind": "mlp", "hidden": [16]}, "train": {"batch_size": 8, "lr": 0.1},
        "learner": {"name": "er", "mem_size": 16},
    })


def test_run_with_ste_writes_experts_and_an_l2m_section(tmp_path):
    run = tmp_path / "run"
    metrics = execute(blobs_config("l2m", ste=True, sleep=True, sleep_size=8), run)
    assert sorted(p.parent.name for p in (run / "ste").glob("*/log.jsonl")) == ["task0_0-1", "task1_2-3"]
    l2m = json.loads((run / "metrics.json").read_text())["l2m"]
    assert l2m == json.loads(json.dumps(metrics["l2m"]))
    assert l2m["ste_tasks"] == ["task0_0-1", "task1_2-3"] and l2m["scenario_type"] == "dispersed"
    lifetime = l2m["per_seed"]["0"]
    assert set(lifetime) == set(LIFETIME_METRICS)
    assert lifetime["ste_rel_perf"] == lifetime["ste_rel_perf"] and lifetime["ste_rel_perf"] > 0  # finite
    expert = read_log(run / "ste" / "task0_0-1" / "log.jsonl")
    assert next(r for r in expert if r.kind == "meta").extra["scenario"] == "l2m_ste"

    # the export reads back to the same numbers; import-l2logger scores it from the command line
    from lifelong.cli import main

    out = tmp_path / "l2"
    (log_dir,) = export_l2logger(run, out)
    assert (log_dir / "logger_info.json").is_file() and list((out / "ste" / "run" / "seed0").glob("*/logger_info.json"))
    ours = l2m_metrics(read_l2logger(log_dir), ste=expert_rows(run, 0))
    for k in LIFETIME_METRICS:
        assert ours[k] == pytest.approx(lifetime[k], abs=1e-9, nan_ok=True)
    main(["import-l2logger", str(log_dir), "--out", str(tmp_path / "scored.json")])
    scored = json.loads((tmp_path / "scored.json").read_text())
    assert scored["perf_maintenance_mrlep"] == pytest.approx(lifetime["perf_maintenance_mrlep"])


def test_a_run_without_ste_has_no_expert_metrics_and_stale_experts_are_dropped(tmp_path):
    run = tmp_path / "run"
    execute(blobs_config("l2m", ste=True), run)
    execute(blobs_config("l2m"), run, force=True)  # overwrite without experts
    l2m = json.loads((run / "metrics.json").read_text())["l2m"]
    assert l2m["ste_tasks"] == []
    assert l2m["per_seed"]["0"]["ste_rel_perf"] != l2m["per_seed"]["0"]["ste_rel_perf"]  # NaN
    with pytest.raises(ConfigError, match="ste"):  # experts need an L2M lifetime
        bad = {**blobs_config("x").to_dict(), "scenario": {"name": "class_incremental", "n_chunks": 2, "ste": True}}
        execute(from_dict(bad), tmp_path / "bad")


@pytest.mark.slow
def test_a_run_with_experts_scores_the_same_in_l2metrics(tmp_path):
    """End to end: our scenario, runner, experts and export against the official l2metrics 3.1.0."""
    import math

    from l2m_tools import reference


    try:
        python = reference.ensure_venv()
    except reference.ReferenceUnavailable as e:
        pytest.skip(f"cannot build the l2metrics 3.1.0 reference venv: {e}")
    run = tmp_path / "run"
    execute(blobs_config("e2e", ste=True, name="l2m_alternating"), run)
    ours = json.loads((run / "metrics.json").read_text())["l2m"]["per_seed"]["0"]
    (log_dir,) = export_l2logger(run, tmp_path / "l2")
    l2data = tmp_path / "l2data"
    store = reference.start(python, reference.store_ste_args(tmp_path / "l2" / "ste" / "run" / "seed0"),
                            l2data=l2data, cwd=tmp_path)
    reference.finish(store, "storing the experts")
    out = tmp_path / "scored"
    proc = reference.start(python, reference.metrics_args(log_dir, out), l2data=l2data, cwd=tmp_path)
    ref = reference.read_metrics(log_dir, out, reference.finish(proc, "l2metrics"))
    assert not math.isnan(ours["ste_rel_perf"]) and not math.isnan(ours["perf_recovery"])
    for key in LIFETIME_METRICS:
        theirs = ref.get(key)
        if theirs is None or (isinstance(theirs, float) and math.isnan(theirs)):
            assert math.isnan(ours[key]), f"{key}: l2metrics has no value, we have {ours[key]}"
        else:
            assert ours[key] == pytest.approx(theirs, abs=1e-6, rel=1e-6), key
