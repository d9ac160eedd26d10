"""The contract every registered learner must pass. New learners are covered automatically."""

from __future__ import annotations

import pytest
import torch

from lifelong.data import Batch
from lifelong.learn.methods import LEARNERS, hyperparameters, make_learner
from lifelong.log import Record
from lifelong.learn.loop import LoopConfig, iter_run
from lifelong.learn.nets import mlp

NAMES = sorted(LEARNERS)
# Gentler settings where a method's default strength is tuned for real data, not this tiny stream.
CONTRACT_HP = {"ewc": {"ewc_lambda": 1.0}}


def build(name, stream, seed=0):
    hp = {"mem_size": 30} if "mem_size" in hyperparameters(LEARNERS[name]) else {}
    hp.update(CONTRACT_HP.get(name, {}))
    model = mlp(stream.input_shape, stream.n_classes, hidden=(16,), seed=seed)
    return make_learner(name, model, seed=seed, lr=0.05, task_classes=stream.task_classes, **hp)


def run_records(name, stream, seed=0):
    return [r.to_json() for r in iter_run(stream, build(name, stream, seed), LoopConfig(batch_size=8), seed=seed)]


@pytest.mark.parametrize("name", NAMES)
def test_predict_works_before_any_observe(name, tiny_stream):
    learner = build(name, tiny_stream)
    ev = tiny_stream.eval_sets[0]
    out = learner.predict(ev.x[:5], ev.task[:5] if ev.task is not None else None)
    assert out.shape == (5, tiny_stream.n_classes)
    assert torch.isfinite(out.max(1).values).all()


@pytest.mark.parametrize("name", NAMES)
def test_observe_does_not_mutate_its_input(name, tiny_stream):
    learner = build(name, tiny_stream)
    for chunk in tiny_stream.chunks[:2]:
        for batch in chunk.batches(8, torch.Generator().manual_seed(0)):
            x, y = batch.x.clone(), batch.y.clone()
            stats = learner.observe(batch)
            assert torch.equal(batch.x, x) and torch.equal(batch.y, y)
            assert stats.n == len(y) and 0 <= stats.n_correct <= stats.n
        learner.end_chunk()


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_gives_identical_predictions(name, tiny_stream, tmp_path):
    learner = build(name, tiny_stream)
    for chunk in tiny_stream.chunks[:2]:
        for batch in chunk.batches(8, torch.Generator().manual_seed(1)):
            learner.observe(batch)
        learner.end_chunk()
    path = tmp_path / "state.pt"
    torch.save(learner.state_dict(), path)
    clone = build(name, tiny_stream, seed=123)  # different init: everything must come from the state
    clone.load_state_dict(torch.load(path, weights_only=True))
    ev = tiny_stream.eval_sets[-1]
    assert torch.equal(learner.predict(ev.x, ev.task), clone.predict(ev.x, ev.task))
    # and both continue identically (generators and memories restored too)
    batch = next(tiny_stream.chunks[2].batches(8, torch.Generator().manual_seed(2)))
    a, b = learner.observe(batch), clone.observe(batch)
    assert a == b
    assert torch.equal(learner.predict(ev.x, ev.task), clone.predict(ev.x, ev.task))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_identical_log(name, tiny_stream):
    first = run_records(name, tiny_stream, seed=3)
    assert first == run_records(name, tiny_stream, seed=3)
    assert first != run_records(name, tiny_stream, seed=4)


@pytest.mark.parametrize("name", NAMES)
def test_never_receives_task_ids_in_class_incremental(name, tiny):
    from lifelong.data.scenarios import class_incremental

    stream = class_incremental(tiny, n_chunks=3)
    learner = build(name, stream)
    seen = []
    original = learner.observe

    def spy(batch: Batch):
        seen.append(batch.task)
        return original(batch)

    learner.observe = spy
    predicted = []
    original_predict = learner.predict

    def spy_predict(x, task=None):
        predicted.append(task)
        return original_predict(x, task)

    learner.predict = spy_predict
    records = list(iter_run(stream, learner, LoopConfig(batch_size=8), seed=0))
    assert seen and all(t is None for t in seen)
    assert predicted and all(t is None for t in predicted)
    assert all(isinstance(r, Record) for r in records)


@pytest.mark.parametrize("name", NAMES)
def test_rejects_labels_outside_the_head(name, tiny_stream):
    from lifelong.errors import DataError

    learner = build(name, tiny_stream)
    bad = Batch(torch.zeros(2, *tiny_stream.input_shape), torch.tensor([0, tiny_stream.n_classes]))
    with pytest.raises(DataError, match="labels must lie"):
        learner.observe(bad)
