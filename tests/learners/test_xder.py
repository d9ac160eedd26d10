"""Mechanism tests for X-DER: the past logit update (by hand), the boundary memory, the stream loss on
the current classes, SupCon on the future logits and the future constraint."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from lifelong.data import Batch
from lifelong.learn.methods import LEARNERS, make_learner
from lifelong.learn.methods.xder import XDER, supcon, transplant
from lifelong.learn.nets import mlp


def net(dim=12, n_classes=6, seed=0):
    return mlp((dim,), n_classes, hidden=(16,), seed=seed)


def batch_of(tiny, classes, n=8, offset=0):
    """``n`` training samples of ``tiny``, cycling through ``classes``."""
    per_class = [(tiny.y_train == c).nonzero().flatten()[offset:] for c in classes]
    idx = torch.stack([p[: -(-n // len(classes))] for p in per_class], 1).flatten()[:n]
    return Batch(tiny.x_train[idx], tiny.y_train[idx])


def after_first_chunk(tiny, **hp):
    """An X-DER learner trained on classes 0 and 1, past its first boundary (memory of 8)."""
    learner = XDER(net(), **{"mem_size": 8, "lr": 0.1, "seed": 0, **hp})
    for i in range(3):
        learner.observe(batch_of(tiny, [0, 1], n=8, offset=8 * i))
    learner.end_chunk()
    return learner


# -- the rescaling rule, by hand -------------------------------------------------------------------
def test_transplant_rescales_the_new_logits_below_the_ground_truth_by_hand():
    stored = torch.tensor([[4.0, 1.0, 0.0, 0.0],  # g = 4, new max 8 > 4: × 0.5·4/8 = 0.25
                           [5.0, 2.0, 1.0, 1.0],  # g = 5, new max 3 < 5: copied as they are
                           [-1.0, 0.0, 0.0, 0.0]])  # g = -1 <= 0, new max 1: shifted
    new = torch.tensor([[9.0, 9.0, 2.0, 8.0],
                        [9.0, 9.0, 3.0, -2.0],
                        [9.0, 9.0, 1.0, -3.0]])
    y = torch.tensor([0, 0, 0])
    cols = torch.tensor([False, False, True, True])  # the classes the samples did not know
    out = transplant(stored, new, y, cols, 0.5)
    # shift for row 3: g − m − (1 − γ)(m − g) = −1 − 1 − 0.5·2 = −3
    expected = torch.tensor([[4.0, 1.0, 0.5, 2.0],
                             [5.0, 2.0, 3.0, -2.0],
                             [-1.0, 0.0, -2.0, -6.0]])
    assert torch.allclose(out, expected)
    assert torch.equal(stored[:, :2], out[:, :2])  # the known classes (and the label) are kept
    assert (out[:, cols].max(1).values <= out[:, 0]).all()  # the label's logit stays the largest
    assert torch.equal(transplant(stored, new, y, torch.zeros(4, dtype=torch.bool), 0.5), stored)


def test_supcon_matches_its_definition_by_hand():
    g = torch.Generator().manual_seed(0)
    f = F.normalize(torch.randn(3, 2, 4, generator=g), dim=2)  # 3 samples, 2 views
    y = torch.tensor([0, 1, 0])
    t = 0.5
    views = [(i, v) for v in range(2) for i in range(3)]
    total = 0.0
    for a, (i, v) in enumerate(views):
        za = f[i, v]
        others = [(j, w) for b, (j, w) in enumerate(views) if b != a]
        denom = sum(math.exp(float(za @ f[j, w]) / t) for j, w in others)
        pos = [(j, w) for j, w in others if y[j] == y[i]]
        total += -sum(float(za @ f[j, w]) / t - math.log(denom) for j, w in pos) / len(pos)
    assert math.isclose(float(supcon(f, y, t)), total / len(views), rel_tol=1e-5)


# -- the past update in a step -----------------------------------------------------------------------
def test_a_replayed_sample_gets_the_present_logits_of_the_classes_it_did_not_know(tiny):
    learner = after_first_chunk(tiny, replay_batch=8)  # every step replays the whole memory
    mem = learner.memory
    assert len(mem) == 8 and sorted(mem.y.tolist()) == [0] * 4 + [1] * 4
    stored = mem.fields["logits"].clone()  # the first chunk's final network's logits
    x = mem.x.clone()
    with torch.no_grad():
        learner.model.head.bias[2:] += torch.tensor([0.5, -0.5, 1.0, 2.0])  # the network has moved on
        h = learner.model(x)  # the logits of the step's forward pass (no augmentation)
    learner.observe(batch_of(tiny, [2, 3], n=8))
    after = mem.fields["logits"]
    # the first replay of a slot in a chunk is always taken (probability 1/1); by hand: the columns
    # of classes 2..5 (not past) come from h, times γ·z[y]/max when their max exceeds z[y] > 0
    gamma = learner.gamma
    for s in range(8):
        g = float(stored[s, mem.y[s]])
        hn = h[s, 2:]
        m = float(hn.max())
        want = hn * (gamma * g / m) if (m > g and g > 0) else (hn + (g - m - (1 - gamma) * (m - g)) if m > g else hn)
        assert torch.allclose(after[s, 2:], want, atol=1e-5), s
        assert torch.equal(after[s, :2], stored[s, :2])  # the past classes' stored logits are kept
    assert not torch.allclose(after[:, 2:], stored[:, 2:])  # the update happened
    assert learner.update_count[:8].tolist() == [1.0] * 8


def test_later_replays_are_taken_with_probability_one_over_k(tiny):
    learner = after_first_chunk(tiny, replay_batch=8)
    taken = 0
    trials = 0
    for i in range(12):
        before = learner.memory.fields["logits"].clone()
        learner.observe(batch_of(tiny, [2, 3], n=8, offset=8 * (i % 3)))
        if i >= 1:  # replay k = i + 1 of every slot
            changed = (learner.memory.fields["logits"] != before).any(1)
            taken += int(changed.sum())
            trials += 8
    expected = sum(8 / k for k in range(2, 13))  # Σ_k 8·(1/k)
    assert learner.update_count[:8].tolist() == [12.0] * 8
    assert abs(taken - expected) < 3 * math.sqrt(expected)
    assert taken < trials / 2  # far fewer than every replay (the 1/k rule, not "always")


# -- the boundary ----------------------------------------------------------------------------------
def test_the_boundary_balances_the_memory_and_updates_the_old_logits(tiny):
    learner = after_first_chunk(tiny, replay_batch=8)
    for i in range(3):
        learner.observe(batch_of(tiny, [2, 3], n=8, offset=8 * i))
    model = copy.deepcopy(learner.model)
    old = learner.memory.all()
    learner.end_chunk()
    mem = learner.memory.all()
    assert sorted(mem.y.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3]  # 8 // 4 classes = 2 each
    with torch.no_grad():
        z = model(mem.x)
    gamma = learner.gamma
    for i in range(8):
        y, stored = int(mem.y[i]), mem.extras["logits"][i]
        if y in (0, 1):  # an old sample: the first two of its class, classes 2..5 from the final net
            j = (old.y == y).nonzero().flatten()[[0, 1]][int((mem.y[:i] == y).sum())]
            assert torch.equal(stored[:2], old.extras["logits"][j, :2])
            g, hn = float(stored[y]), z[i, 2:]
            m = float(hn.max())
            want = hn * (gamma * g / m) if (m > g and g > 0) else hn
            assert torch.allclose(stored[2:], want, atol=1e-5)
            assert mem.extras["head"][i].tolist() == [True, True, False, False, False, False]
        else:  # a new sample: the final net's logits, those of classes 0, 1 kept below its label's
            assert torch.allclose(stored[2:], z[i, 2:], atol=1e-6)
            assert float(stored[:2].max()) <= float(stored[y]) + 1e-6
            assert mem.extras["head"][i].tolist() == [False, False, True, True, False, False]
    assert learner.past.tolist() == [True] * 4 + [False] * 2
    assert learner.update_count.sum() == 0


def test_nothing_is_replayed_in_the_first_chunk(tiny):
    learner = XDER(net(), mem_size=8, seed=0)
    learner.observe(batch_of(tiny, [0, 1]))
    assert len(learner.memory) == 0 and len(learner.chunk) == 8


# -- the objective ---------------------------------------------------------------------------------
def test_the_stream_loss_covers_the_current_classes_only(tiny):
    learner = XDER(net(), mem_size=8, lambd=0.0, eta=0.0, seed=0)
    head = learner.model.head.weight.detach().clone()
    learner.observe(batch_of(tiny, [0, 1]))
    changed = (learner.model.head.weight.detach() != head).any(1)
    assert changed.tolist() == [True, True, False, False, False, False]


def test_supcon_and_the_future_constraint_train_the_future_logits(tiny):
    b = batch_of(tiny, [0, 1])
    rows = {}
    for lambd, eta in [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)]:
        learner = XDER(net(), mem_size=8, lambd=lambd, eta=eta, margin=5.0, seed=0)
        head = learner.model.head.weight.detach().clone()
        learner.observe(b)
        rows[lambd, eta] = (learner.model.head.weight.detach() != head)[2:].any().item()
    assert rows == {(0.0, 0.0): False, (1.0, 0.0): True, (0.0, 1.0): True}


def test_registered_and_needs_boundaries():
    assert LEARNERS["xder"] is XDER and XDER.needs_boundaries
    assert make_learner("xder", net(), gamma=0.5).gamma == 0.5


def test_a_recurring_class_keeps_room_for_each_chunk(tiny):
    # domain-incremental: the same classes in every chunk; the memory is balanced over (chunk, class)
    learner = after_first_chunk(tiny)
    for i in range(3):
        learner.observe(batch_of(tiny, [0, 1], n=8, offset=8 * i + 4))
    learner.end_chunk()
    mem = learner.memory.all()
    assert len(mem) == 8 and mem.extras["chunk"].tolist().count(0) == 4 == mem.extras["chunk"].tolist().count(1)
    assert sorted(mem.y[mem.extras["chunk"] == 1].tolist()) == [0, 0, 1, 1]
