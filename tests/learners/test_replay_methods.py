"""Mechanism tests for the replay-family learners: A-GEM, DER/DER++, ER-ACE, GDumb and iCaRL."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lifelong.data import Batch
from lifelong.learn.methods import LEARNERS, make_learner
from lifelong.learn.methods.agem import AGEM, project
from lifelong.learn.methods.der import DER, DERPP
from lifelong.learn.methods.er import ER
from lifelong.learn.methods.er_ace import ERACE, mask_absent
from lifelong.learn.methods.gdumb import GDumb, sgdr_lr
from lifelong.learn.methods.icarl import UNSEEN_SCORE, ICaRL, herding
from lifelong.learn.nets import Net, mlp
from lifelong.data.scenarios import class_incremental


def net(dim=12, n_classes=6, seed=0):
    return mlp((dim,), n_classes, hidden=(16,), seed=seed)


def batch_of(tiny, classes, n=8, offset=0):
    """``n`` training samples of ``tiny``, cycling through ``classes`` (skipping ``offset`` per class)."""
    per_class = [(tiny.y_train == c).nonzero().flatten()[offset:] for c in classes]
    idx = torch.stack([p[: -(-n // len(classes))] for p in per_class], 1).flatten()[:n]
    return Batch(tiny.x_train[idx], tiny.y_train[idx])


def test_registered_under_their_names():
    for name in ("agem", "der", "derpp", "er_ace", "gdumb", "icarl"):
        assert name in LEARNERS
    assert make_learner("derpp", net(), beta=0.25).beta == 0.25


# -- A-GEM ----------------------------------------------------------------------------------------
def test_agem_projection_removes_the_conflict_and_keeps_agreeing_gradients():
    g0 = torch.Generator().manual_seed(0)
    for _ in range(20):
        g, g_ref = torch.randn(50, generator=g0), torch.randn(50, generator=g0)
        out = project(g, g_ref)
        if torch.dot(g, g_ref) < 0:
            assert torch.dot(out, g_ref) >= -1e-5
            assert not torch.equal(out, g)
            # the change is along g_ref only
            assert torch.allclose(out - g, (out - g) @ g_ref / (g_ref @ g_ref) * g_ref, atol=1e-5)
        else:
            assert torch.equal(out, g)


def test_agem_steps_along_the_projected_gradient(tiny):
    learner = AGEM(net(), mem_size=50, ref_batch=16, lr=0.5, seed=0)
    learner.observe(batch_of(tiny, [0, 1], n=40))
    learner.end_chunk()  # memory: classes 0 and 1 (a past chunk)
    new = batch_of(tiny, [4, 5], n=8)
    # Recompute g and g_ref by hand on the replay batch the learner will draw.
    twin = copy.deepcopy(learner.model)
    gen = torch.Generator()
    gen.set_state(learner.generator.get_state())
    mb = learner.memory.sample(16, gen)
    flat = lambda loss: torch.cat([p.reshape(-1) for p in torch.autograd.grad(loss, list(twin.parameters()))])
    g = flat(F.cross_entropy(twin(new.x), new.y))
    g_ref = flat(F.cross_entropy(twin(mb.x), mb.y))
    assert torch.dot(g, g_ref) < 0  # new classes conflict with the stored ones: projection is active
    before = torch.cat([p.detach().reshape(-1) for p in learner.model.parameters()])
    learner.observe(new)
    after = torch.cat([p.detach().reshape(-1) for p in learner.model.parameters()])
    step = (before - after) / 0.5
    assert torch.allclose(step, project(g, g_ref), atol=1e-5)
    assert abs(float(step @ g_ref)) < 1e-4


# -- DER / DER++ ----------------------------------------------------------------------------------
def test_der_stores_the_logits_at_insertion_and_matches_them_exactly_when_unchanged(tiny):
    learner = DER(net(), mem_size=100, alpha=1.0, lr=0.5, seed=0)
    b = batch_of(tiny, [0, 1, 2], n=10)
    snapshot = copy.deepcopy(learner.model.state_dict())
    with torch.no_grad():
        expected = learner.model(b.x)
    learner.observe(b)
    stored = learner.memory.all()  # not full: all 10 in arrival order
    assert torch.equal(stored.x, b.x)
    assert torch.equal(stored.extras["logits"], expected)
    assert logit_replay(learner, stored) > 0  # the step moved the network
    learner.model.load_state_dict(snapshot)
    assert logit_replay(learner, stored) == 0.0


def logit_replay(learner, mb):
    """DER's ``α·MSE(f(x_m), z_m)`` on ``mb``, as a float."""
    return float((learner.alpha * F.mse_loss(learner.model(mb.x), mb.extras["logits"])).detach())


def test_derpp_draws_two_independent_replay_batches(tiny):
    learner = DERPP(net(), mem_size=100, lr=0.1, seed=0)
    learner.observe(batch_of(tiny, [0, 1, 2], n=40))
    draws = []
    original = learner.memory.sample

    def spy(n, generator):
        out = original(n, generator)
        draws.append(out)
        return out

    learner.memory.sample = spy
    learner.observe(batch_of(tiny, [3], n=8))
    assert len(draws) == 2
    assert all(len(d) == 8 for d in draws)
    assert not torch.equal(draws[0].x, draws[1].x)
    # DER draws only one
    der = DER(net(), mem_size=100, lr=0.1, seed=0)
    der.observe(batch_of(tiny, [0, 1, 2], n=40))
    calls = []
    der_sample = der.memory.sample
    der.memory.sample = lambda n, g: calls.append(n) or der_sample(n, g)
    der.observe(batch_of(tiny, [3], n=8))
    assert calls == [8]


# -- ER-ACE ---------------------------------------------------------------------------------------
def test_ace_gives_no_gradient_to_classes_absent_from_the_incoming_batch():
    logits = torch.randn(4, 6, requires_grad=True)
    y = torch.tensor([1, 3, 3, 1])
    F.cross_entropy(mask_absent(logits, y), y).backward()
    absent = torch.tensor([0, 2, 4, 5])
    assert torch.all(logits.grad[:, absent] == 0)
    assert torch.all(logits.grad[:, [1, 3]] != 0)


@pytest.mark.parametrize("cls, untouched", [(ERACE, True), (ER, False)])
def test_er_ace_incoming_step_leaves_absent_class_head_rows_alone(tiny, cls, untouched):
    learner = cls(net(), mem_size=50, lr=0.5, seed=0)
    head = learner.model.head
    w, bias = head.weight.detach().clone(), head.bias.detach().clone()
    learner.observe(batch_of(tiny, [0, 1], n=8))  # empty memory: the incoming term only
    absent = [2, 3, 4, 5]
    same = torch.equal(head.weight[absent], w[absent]) and torch.equal(head.bias[absent], bias[absent])
    assert same is untouched
    assert not torch.equal(head.weight[[0, 1]], w[[0, 1]])


# -- GDumb ----------------------------------------------------------------------------------------
def test_sgdr_schedule_restarts_and_anneals():
    lrs = [sgdr_lr(e, 0.05, 0.0005) for e in range(16)]
    assert lrs[0] == pytest.approx(0.005)
    assert [lrs[e] for e in (1, 2, 4, 8)] == [pytest.approx(0.05)] * 4  # restarts
    assert lrs[15] < lrs[14] < lrs[9] and lrs[15] == pytest.approx(0.0005, abs=0.002)


def test_gdumb_memory_is_class_balanced(tiny):
    learner = GDumb(net(), mem_size=12, seed=0)
    for classes, n in (([0], 30), ([1], 5), ([2], 30), ([3], 30)):
        learner.observe(batch_of(tiny, classes, n=n))
    counts = torch.bincount(learner.memory.all().y, minlength=6)
    assert counts.tolist() == [3, 3, 3, 3, 0, 0]


def test_gdumb_observe_takes_no_gradient_step(tiny):
    learner = GDumb(net(), mem_size=12, seed=0)
    before = copy.deepcopy(learner.model.state_dict())
    learner.observe(batch_of(tiny, [0, 1], n=8))
    assert all(torch.equal(before[k], v) for k, v in learner.model.state_dict().items())


def test_gdumb_retrains_from_scratch_only_when_the_memory_changed(tiny):
    learner = GDumb(net(), mem_size=4, epochs=4, seed=0)
    x = tiny.x_test[:5]
    learner.predict(x)
    assert learner.n_retrains == 0  # nothing stored yet
    learner.observe(batch_of(tiny, [0, 1], n=2))
    learner.observe(batch_of(tiny, [0, 1], n=2, offset=5))
    assert learner.dirty and len(learner.memory) == 4
    first = learner.predict(x)
    assert learner.n_retrains == 1 and not learner.dirty
    assert torch.equal(learner.predict(x), first) and learner.n_retrains == 1
    before = learner.memory.n_writes
    learner.observe(batch_of(tiny, [0], n=3, offset=10))  # class 0 at its share: only its reservoir may store
    stored = learner.memory.n_writes != before
    assert learner.dirty == stored
    learner.predict(x)
    assert learner.n_retrains == 1 + stored
    learner.observe(batch_of(tiny, [2], n=1))  # a new class takes a slot
    assert learner.dirty

    # From scratch: the previous weights do not matter, only the memory.
    twin = copy.deepcopy(learner)
    with torch.no_grad():
        for p in twin.model.parameters():
            p.add_(torch.ones_like(p))
    out = learner.predict(x)
    assert learner.n_retrains == 2 + stored
    assert torch.equal(twin.predict(x), out)


# -- iCaRL ----------------------------------------------------------------------------------------
def test_herding_picks_the_sample_closest_to_the_mean_first():
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        f = F.normalize(torch.randn(30, 8, generator=g), dim=1)
        order = herding(f, 10)
        assert int(order[0]) == int((f - f.mean(0)).norm(dim=1).argmin())
        assert len(set(order.tolist())) == 10
        # the running mean of the chosen features approaches the class mean
        errs = [(f[order[:k]].mean(0) - f.mean(0)).norm() for k in (1, 5, 10)]
        assert errs[2] < errs[0]
    assert herding(f, 100).shape == (30,)


def identity_feature_net(dim, n_classes):
    """A Net whose features are its inputs: NME then acts directly on the inputs."""
    return Net(nn.Flatten(), nn.Linear(dim, n_classes))


def test_icarl_nme_classifies_the_class_means():
    dim, n_classes = 8, 5
    learner = ICaRL(identity_feature_net(dim, n_classes), mem_size=40, seed=0)
    g = torch.Generator().manual_seed(1)
    centres = F.normalize(torch.randn(3, dim, generator=g), dim=1) * 3
    for c in range(3):  # exemplars only for classes 0..2
        x = centres[c] + 0.3 * torch.randn(10, dim, generator=g)
        learner.exemplars.replace_class(c, Batch(x, torch.full((10,), c)))
    means = torch.stack([learner.exemplars.of_class(c).x.mean(0) for c in range(3)])
    scores = learner.predict(means)
    assert scores.shape == (3, n_classes) and torch.isfinite(scores).all()
    assert scores.argmax(1).tolist() == [0, 1, 2]
    assert torch.all(scores[:, 3:] == UNSEEN_SCORE)
    assert torch.all(scores[:, :3] <= 0) and torch.all(scores[:, :3] >= -2)


def test_icarl_uses_network_logits_before_any_boundary_then_budgets_exemplars(tiny):
    stream = class_incremental(tiny, n_chunks=3)
    learner = ICaRL(net(), mem_size=24, seed=0, lr=0.1)
    x = tiny.x_test[:4]
    for b in stream.chunks[0].batches(8, torch.Generator().manual_seed(0)):
        learner.observe(b)
    with torch.no_grad():
        assert torch.equal(learner.predict(x), learner.model(x))
    learner.end_chunk()
    ex = learner.exemplars.all()
    assert torch.bincount(ex.y, minlength=6).tolist() == [12, 12, 0, 0, 0, 0]
    first = {c: learner.exemplars.of_class(c).x for c in (0, 1)}
    # herding order: the first exemplar is the chunk sample closest to the class mean of features
    chunk = stream.chunks[0]
    for c in (0, 1):
        feats = learner.normalised_features(chunk.x[chunk.y == c])
        best = chunk.x[chunk.y == c][(feats - feats.mean(0)).norm(dim=1).argmin()]
        assert torch.equal(first[c][0], best)
    for b in stream.chunks[1].batches(8, torch.Generator().manual_seed(0)):
        learner.observe(b)
    learner.end_chunk()
    counts = torch.bincount(learner.exemplars.all().y, minlength=6).tolist()
    assert counts == [6, 6, 6, 6, 0, 0]
    for c in (0, 1):  # old sets are cut to their best (first) exemplars
        assert torch.equal(learner.exemplars.of_class(c).x, first[c][:6])
    assert not torch.equal(learner.predict(x), learner.model(x))


def test_icarl_distillation_targets_are_the_frozen_network_outputs(tiny):
    stream = class_incremental(tiny, n_chunks=3)
    learner = ICaRL(net(), mem_size=24, seed=0, lr=0.1)
    for b in stream.chunks[0].batches(8, torch.Generator().manual_seed(0)):
        learner.observe(b)
    learner.end_chunk()  # teacher == model right now
    b = batch_of(tiny, [2, 3], n=8)
    logits = learner.model(b.x).detach().requires_grad_(True)
    active = torch.tensor([True, True, True, True, False, False])
    learner.icarl_loss(b.x, logits, b.y, None, active).backward()
    grad = logits.grad
    assert torch.allclose(grad[:, :2], torch.zeros(8, 2), atol=1e-7)  # old classes: sigmoid(z) - q = 0
    assert torch.all(grad[:, 2:4] != 0)  # new classes: one-hot targets
    assert torch.all(grad[:, 4:] == 0)  # classes not seen yet are out of the loss
