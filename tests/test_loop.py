"""The loop's record stream: order, accuracy-matrix shape, periodic evaluation and data views."""

from __future__ import annotations

import pytest
import torch

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.base import SleepStats
from lifelong.learn.methods import make_learner
from lifelong.learn.loop import LoopConfig, iter_run, sleep_step, training_view
from lifelong.evaluate import accuracy_matrix, random_init_accuracy
from lifelong.learn.nets import mlp
from lifelong.data.scenarios import class_incremental


def records_for(name, stream, cfg=LoopConfig(batch_size=8), seed=0):
    learner = make_learner(name, mlp(stream.input_shape, stream.n_classes, hidden=(16,), seed=seed), seed=seed)
    return list(iter_run(stream, learner, cfg, seed=seed))


def test_record_order_and_matrix(tiny):
    stream = class_incremental(tiny, n_chunks=3)
    recs = records_for("naive", stream)
    kinds = [r.kind for r in recs]
    assert kinds[0] == "meta" and kinds[1:4] == ["eval"] * 3  # untrained network first
    assert kinds.count("chunk_end") == 3
    n_train = sum(r.kind == "train" for r in recs)
    assert n_train == sum(-(-len(c) // 8) for c in stream.chunks)
    steps = [r.step for r in recs if r.kind == "train"]
    assert steps == list(range(1, n_train + 1))
    R = accuracy_matrix(recs, 0)
    assert R.shape == (3, 3)
    # naive on disjoint classes: the newest chunk is learned, older ones forgotten
    assert R[2, 2] > 0.9 and R[2, 0] < R[0, 0] - 0.3
    assert random_init_accuracy(recs, 0).shape == (3,)


def test_eval_every_adds_periodic_non_boundary_evaluations(tiny):
    stream = class_incremental(tiny, n_chunks=3)
    recs = records_for("naive", stream, LoopConfig(batch_size=8, eval_every=5))
    periodic = [r for r in recs if r.kind == "eval" and not r.boundary]
    assert periodic and all(r.step % 5 == 0 for r in periodic)
    assert {r.task for r in periodic} == {0, 1, 2}
    # periodic evaluations do not change the boundary rows
    assert (accuracy_matrix(recs, 0) == accuracy_matrix(records_for("naive", stream), 0)).all()


def test_joint_and_cumulative_views(tiny):
    stream = class_incremental(tiny, n_chunks=3)
    joint = training_view(stream, "joint")
    cumulative = training_view(stream, "cumulative")
    assert len(joint) == 1 and len(joint[0]) == sum(len(c) for c in stream.chunks)
    assert [len(c) for c in cumulative] == [len(stream.chunks[0]) * k for k in (1, 2, 3)]
    R = accuracy_matrix(records_for("joint", stream), 0)
    assert R.shape == (1, 3) and R.min() > 0.6  # the upper bound learns every chunk
    Rc = accuracy_matrix(records_for("cumulative", stream), 0)
    assert Rc.shape == (3, 3) and Rc[2].min() > 0.6


def test_the_loop_leaves_global_random_state_alone(tiny):
    stream = class_incremental(tiny, n_chunks=3)
    before = torch.get_rng_state()
    records_for("er", stream)
    assert torch.equal(before, torch.get_rng_state())


def test_sleep_steps_go_through_the_declared_consolidate_capability():
    b = Batch(torch.zeros(3, 2), torch.tensor([0, 1, 0]))
    g = torch.Generator().manual_seed(0)

    class Sleeper:  # any object with consolidate(batch, generator) may sleep; no base class needed
        def consolidate(self, batch, generator=None):
            self.got = generator
            return SleepStats(len(batch), 1, 0.5, source="memory")

    sleeper = Sleeper()
    stats, extra = sleep_step(sleeper, b, g)
    assert sleeper.got is g and stats.n == 3 and extra == {"subtype": "sleep", "source": "memory"}
    with pytest.raises(ConfigError, match="consolidate"):
        sleep_step(object(), b, g)


def test_boundary_evaluations_see_the_learner_after_its_end_chunk(tiny):
    """Row i of the accuracy matrix is the model after chunk i *including* its end_chunk (where
    EWC consolidates, iCaRL picks exemplars): a learner whose end_chunk makes it predict perfectly
    must score 1.0 at every boundary, and the untrained row must not."""
    stream = class_incremental(tiny, n_chunks=3)
    learner = make_learner("naive", mlp(stream.input_shape, stream.n_classes, hidden=(8,), seed=0), seed=0)
    truth = {}
    for ev in stream.eval_sets:
        for x, y in zip(ev.x, ev.y):
            truth[tuple(x.tolist())] = int(y)
    ended = {"n": 0}
    original = learner.predict

    def predict(x, task=None):
        if not ended["n"]:
            return original(x, task)
        out = torch.zeros(len(x), stream.n_classes)
        out[torch.arange(len(x)), torch.tensor([truth[tuple(r.tolist())] for r in x])] = 1.0
        return out

    learner.predict = predict
    learner.end_chunk = lambda: ended.__setitem__("n", ended["n"] + 1)
    recs = list(iter_run(stream, learner, LoopConfig(batch_size=8), seed=0))
    R = accuracy_matrix(recs, 0)
    assert ended["n"] == 3
    assert (R == 1.0).all(), f"a boundary evaluation ran before end_chunk:\n{R}"
