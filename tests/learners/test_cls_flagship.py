"""Mechanism tests for the flagship ``cls`` learner: each part, removed or switched off, changes the
rule it is responsible for (and the test that checks that rule fails)."""

from __future__ import annotations

import pytest
import torch

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.methods import make_learner
from lifelong.learn.methods.cls import Surprise, WeightAverage, two_views
from lifelong.learn.nets import mlp


def learner(**hp):
    return make_learner("cls", mlp((8,), 4, hidden=(16,), seed=0), seed=0, **hp)


def batches(n: int, shift: bool = False, seed: int = 0, size: int = 8):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(4, 8, generator=g) * 3
    out = []
    for _ in range(n):
        y = torch.randint(0, 2, (size,), generator=g) + (2 if shift else 0)
        out.append(Batch(means[y] + torch.randn(size, 8, generator=g), y))
    return out


def distance(a, b) -> float:
    return float(sum(((p.detach() - q.detach()) ** 2).sum() for p, q in zip(a.parameters(), b.parameters(), strict=True)))


def test_the_averages_horizon_grows_with_the_stream_and_is_capped():
    avg = WeightAverage(torch.nn.Linear(1, 1), fraction=0.1, max_horizon=1000.0)
    assert avg.decay(0) == 0.0  # the first update copies the model
    assert avg.decay(50) == pytest.approx(1 - 1 / 6)  # the last ~6 of 50 steps
    assert avg.decay(50_000) == pytest.approx(0.999)  # capped
    assert WeightAverage(torch.nn.Linear(1, 1), fraction=0.0, max_horizon=1000.0).decay(10**6) == 0.0


def test_after_fifty_steps_the_slow_average_has_left_the_random_start():
    lrn = learner()
    init = [p.detach().clone() for p in lrn.slow.model.parameters()]
    for b in batches(50):
        lrn.observe(b)
    moved = sum(float(((p - q) ** 2).sum()) for p, q in zip(lrn.slow.model.parameters(), init, strict=True))
    lag = distance(lrn.slow.model, lrn.model)
    assert lag < 0.1 * moved  # near the working model, far from the start (a fixed 0.99 is not)
    fixed = learner(slow_fraction=1e9, slow_horizon=100.0)  # α = 0.99 from the first step, like CLS-ER
    init = [p.detach().clone() for p in fixed.slow.model.parameters()]
    for b in batches(50):
        fixed.observe(b)
    assert distance(fixed.slow.model, fixed.model) > lag


def test_prediction_is_the_slow_average_when_not_surprised():
    lrn = learner(error_weight=0.0)
    for b in batches(10):
        lrn.observe(b)
    x = batches(1, seed=3)[0].x
    assert torch.equal(lrn.predict(x), lrn.slow.model(x))
    assert not torch.equal(lrn.predict(x), lrn.model(x))


def test_replay_draws_favour_samples_with_a_high_last_loss_and_write_their_loss_back():
    lrn = learner(mem_size=20)
    for b in batches(3):
        lrn.observe(b)
    term = lrn.term("prioritised_logit_replay")
    loss = torch.full((20,), 0.01)
    loss[3] = 10.0
    lrn.memory.fields["loss"][:20] = loss
    p = term.probabilities(lrn.memory)
    assert p.sum() == pytest.approx(1.0)
    assert float(p[3]) > 0.45 and float(p[0]) < 0.03  # (1 − ρ)/N + ρ·l/Σl with ρ = 0.5
    uniform = learner(mem_size=20, priority=0.0).term("prioritised_logit_replay").probabilities(lrn.memory)
    assert torch.allclose(uniform, torch.full((20,), 1 / 20))
    before = lrn.memory.fields["loss"].clone()
    lrn.observe(batches(1, seed=5)[0])
    assert not torch.equal(lrn.memory.fields["loss"], before)  # replayed slots got their current loss


def test_a_loss_jump_raises_the_learning_rate_and_max_multiplier_one_turns_it_off():
    s = Surprise(fast_rate=0.3, slow_rate=0.02, eps=0.05, max_multiplier=2.0)
    for _ in range(30):
        s.update(0.1)
    assert s.multiplier == 1.0 and s.gate == 0.0
    s.update(3.0)
    assert s.multiplier > 1.5 and s.gate > 0.5
    for max_m, expect_raised in ((2.0, True), (1.0, False)):
        lrn = learner(max_multiplier=max_m)
        for b in batches(40):
            lrn.observe(b)
        lrn.observe(batches(1, shift=True)[0])  # new classes: the loss jumps
        assert (lrn.opt.param_groups[0]["lr"] > lrn.lr) == expect_raised


def test_the_error_memory_corrects_a_shift_at_once_and_only_while_surprised():
    lrn = learner(error_threshold=0.5)
    for b in batches(40):
        lrn.observe(b)
    shifted = batches(1, shift=True, seed=1)[0]
    lrn.observe(shifted)
    assert len(lrn.errors) > 0 and lrn.surprise.gate > 0
    plain = lrn.slow.model(shifted.x).softmax(1).gather(1, shifted.y[:, None]).mean()
    corrected = lrn.predict(shifted.x).softmax(1).gather(1, shifted.y[:, None]).mean()
    assert float(corrected) > float(plain) + 0.05
    lrn.surprise.multiplier = 1.0  # surprise over: the memory is silent
    assert torch.equal(lrn.predict(shifted.x), lrn.slow.model(shifted.x))
    off = learner(error_threshold=0.5, error_weight=0.0)
    for b in [*batches(40), shifted]:
        off.observe(b)
    assert torch.equal(off.predict(shifted.x), off.slow.model(shifted.x))


def test_view_consistency_reads_no_labels_and_trains_the_network():
    lrn = learner(consistency_every=1)
    for b in batches(5):
        lrn.observe(b)
    term = lrn.term("view_consistency")
    b = batches(1, seed=7)[0]
    ctx = lrn.context(Batch(b.x, torch.full_like(b.y, -1)))  # the term never reads a label
    ((replayed, _),) = ctx.replays[id(lrn.term("prioritised_logit_replay"))]
    n = replayed.extras["n_logit"]
    assert len(replayed) == 2 * n  # the logit and the label batch, drawn and forwarded as one
    views = lrn.second_view  # the teacher's views: the incoming rows, then the logit batch's
    assert torch.equal(ctx.batch.x, b.x) and views.shape == (len(b) + n, *b.x.shape[1:])
    assert not torch.equal(views[: len(b)], b.x) and not torch.equal(views[len(b):], replayed.x[:n])
    value = term(ctx)
    assert value is not None and float(value) > 0
    value.backward()
    assert any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in lrn.model.parameters())
    off = learner(consistency=0.0)
    ctx = off.context(b)
    assert torch.equal(ctx.batch.x, b.x) and off.term("view_consistency")(ctx) is None


def test_the_consistency_runs_every_kth_step_only():
    calls = []
    lrn = learner(consistency_every=3)
    fast = lrn.fast.model
    fast.register_forward_hook(lambda *_: calls.append(lrn.steps))
    for b in batches(9):
        lrn.observe(b)
    assert calls == [0, 3, 6]  # the teacher's pass, on steps 0, 3, 6 of 9
    every = learner(consistency_every=1)
    every.fast.model.register_forward_hook(lambda *_: calls.append(-1))
    for b in batches(4):
        every.observe(b)
    assert calls.count(-1) == 4


def test_every_part_changes_the_run():
    def run(**hp):
        lrn = learner(**hp)
        for b in [*batches(30), *batches(30, shift=True, seed=2)]:
            lrn.observe(b)
        return lrn.predict(batches(1, seed=9)[0].x)

    full = run()
    for off in ({"priority": 0.0}, {"consistency": 0.0}, {"max_multiplier": 1.0}, {"slow_fraction": 0.0},
                {"alpha": 0.0}, {"beta": 0.0}, {"error_weight": 0.0, "max_multiplier": 1.0}):
        assert not torch.allclose(run(**off), full), off


def test_two_views_differ_keep_shapes_and_use_only_the_given_generator():
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    for x in (torch.randn(4, 8), torch.randn(4, 1, 6, 6)):
        (a1, a2), (b1, b2) = two_views(x, g1, noise=0.1, drop=0.1), two_views(x, g2, noise=0.1, drop=0.1)
        assert a1.shape == a2.shape == x.shape and torch.equal(a1, b1) and torch.equal(a2, b2)
        assert not torch.equal(a1, a2) and not torch.equal(a1, x)


def test_bad_options_are_config_errors():
    for hp in ({"priority": 1.5}, {"slow_horizon": 0.5}, {"surprise_slow": 0.5}, {"view_drop": 1.0},
               {"consistency_every": 0}):
        with pytest.raises(ConfigError):
            learner(**hp)


# -- semi-supervised streams (scenario option label_fraction) ------------------------------------------
def semi_stream(fraction: float, seed: int = 0):
    from lifelong.data.scenarios import build_stream
    from tests.conftest import tiny_dataset

    return build_stream("class_incremental", tiny_dataset(), seed=seed, n_chunks=3, label_fraction=fraction)


def test_label_fraction_hides_a_seeded_share_of_training_labels_only():
    full, semi = semi_stream(1.0), semi_stream(0.25)
    for a, b in zip(full.chunks, semi.chunks, strict=True):
        kept = b.y >= 0
        assert int(kept.sum()) == round(0.25 * len(a)) and bool((b.y[~kept] == -1).all())
        assert torch.equal(b.y[kept], a.y[kept]) and torch.equal(a.x, b.x)
    assert all(torch.equal(e.y, f.y) for e, f in zip(full.eval_sets, semi.eval_sets, strict=True))
    assert torch.equal(semi_stream(0.25).chunks[0].y, semi.chunks[0].y)  # seeded
    assert not torch.equal(semi_stream(0.25, seed=1).chunks[0].y, semi.chunks[0].y)
    for bad in (0.0, 1.5, "half"):
        with pytest.raises(ConfigError, match="label_fraction"):
            semi_stream(bad)


@pytest.mark.parametrize(("name", "hp"), [("er", {"mem_size": 20}), ("joint", {}), ("cls", {"mem_size": 20})])
def test_a_learner_gets_only_labelled_samples_unless_it_learns_from_unlabelled_ones(name, hp):
    from lifelong.learn.loop import LoopConfig, iter_run

    stream = semi_stream(0.25)
    lrn = make_learner(name, mlp((12,), 6, hidden=(16,), seed=0), seed=0, **hp)
    seen: list[torch.Tensor] = []
    observe = lrn.observe
    lrn.observe = lambda b: (seen.append(b.y.clone()), observe(b))[1]
    records = list(iter_run(stream, lrn, LoopConfig(epochs=1, batch_size=8), seed=0))
    ys = torch.cat(seen)
    if name == "cls":
        assert bool((ys == -1).any()) and len(ys) == sum(len(c) for c in stream.chunks)
    else:
        assert bool((ys >= 0).all()) and len(ys) > 0
    assert any(r.kind == "eval" for r in records)


def test_cls_trains_on_unlabelled_samples_through_its_view_consistency():
    b = batches(1, seed=4)[0]
    unlabelled = Batch(b.x, torch.full_like(b.y, -1))
    lrn = learner()
    for x in batches(5):
        lrn.observe(x)
    before = [p.detach().clone() for p in lrn.model.parameters()]
    n_mem = len(lrn.memory)
    lrn.observe(unlabelled)
    assert len(lrn.memory) == n_mem  # nothing unlabelled is stored
    assert any(not torch.equal(p, q) for p, q in zip(lrn.model.parameters(), before, strict=True))
    off = learner(consistency=0.0, alpha=0.0, beta=0.0)
    for x in batches(5):
        off.observe(x)
    before = [p.detach().clone() for p in off.model.parameters()]
    off.observe(unlabelled)  # no labelled loss, no replay, no consistency: nothing to learn from
    assert all(torch.equal(p, q) for p, q in zip(off.model.parameters(), before, strict=True))


def test_sleep_replays_the_memory_offline_only_for_what_unlabelled_samples_pay():
    labelled = batches(6)
    unlabelled = [Batch(b.x, torch.full_like(b.y, -1)) for b in batches(2, seed=6)]
    steps = []

    def run(sleep: float, stream) -> list[torch.Tensor]:
        lrn = learner(sleep=sleep, mem_size=40)
        step = lrn.step
        lrn.step = lambda loss: (steps.append(sleep), step(loss))[1]  # the sleep's own SGD steps
        for b in stream:
            lrn.observe(b)
        return [p.detach().clone() for p in lrn.model.parameters()]

    off = run(0.0, [*labelled, *unlabelled])
    assert steps == []  # no sleep by default
    on = run(2.0, [*labelled, *unlabelled])
    # 8 unlabelled rows a batch, credit 2 each: 16 rows a batch, one replay step of 2 x 8 rows each
    assert steps == [2.0, 2.0]
    assert any(not torch.equal(p, q) for p, q in zip(on, off, strict=True))
    steps.clear()
    run(2.0, labelled)  # every label present: nothing paid, never asleep
    assert steps == []
