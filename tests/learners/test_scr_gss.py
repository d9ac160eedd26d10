"""Mechanism tests for SCR (supervised contrastive replay, NCM prediction) and GSS-greedy."""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from lifelong.data import Batch
from lifelong.learn.memory import GradientScoredMemory
from lifelong.learn.methods import LEARNERS
from lifelong.learn.methods.gss import GSS
from lifelong.learn.methods.scr import SCR, supcon_loss
from lifelong.learn.nets import mlp


def net(dim=12, n_classes=6, seed=0):
    return mlp((dim,), n_classes, hidden=(16,), seed=seed)


def batch_of(tiny, classes, n=8, offset=0):
    per_class = [(tiny.y_train == c).nonzero().flatten()[offset:] for c in classes]
    idx = torch.stack([p[: -(-n // len(classes))] for p in per_class], 1).flatten()[:n]
    return Batch(tiny.x_train[idx], tiny.y_train[idx])


def test_registered_and_task_free():
    assert LEARNERS.get("scr") is SCR and LEARNERS.get("gss") is GSS
    assert not SCR.needs_boundaries and not GSS.needs_boundaries


# -- SCR ------------------------------------------------------------------------------------------
def test_supcon_equals_the_hand_computed_value():
    # two samples of class 0 and one of class 1, unit vectors in the plane, τ = 0.5
    angles = [0.0, math.pi / 3, math.pi]
    z = torch.tensor([[math.cos(a), math.sin(a)] for a in angles], dtype=torch.float64)
    y = torch.tensor([0, 0, 1])
    tau = 0.5
    dot = lambda i, j: math.cos(angles[i] - angles[j])  # noqa: E731
    def log_p(i, p):
        return dot(i, p) / tau - math.log(sum(math.exp(dot(i, a) / tau) for a in range(3) if a != i))
    # anchors 0 and 1 each have one positive (the other); anchor 2 has none and is left out
    want = -(log_p(0, 1) + log_p(1, 0)) / 2
    assert math.isclose(float(supcon_loss(z, y, tau)), want, rel_tol=1e-12)
    # it is not the cross-entropy-like value over all anchors, nor indifferent to the temperature
    assert not math.isclose(float(supcon_loss(z, y, 1.0)), want, rel_tol=1e-3)


def test_scr_step_is_supcon_over_incoming_plus_replay_and_both_views(tiny):
    learner = SCR(net(), mem_size=40, replay_batch=6, view_noise=0.0, view_mask=0.0, seed=0)
    learner.observe(batch_of(tiny, [0, 1], n=16))
    learner.observe(batch_of(tiny, [2, 3], n=16))
    incoming = batch_of(tiny, [4, 5], n=4)
    twin = copy.deepcopy(learner)
    replay = twin.memory.sample(6, twin.generator)
    x, y = torch.cat([incoming.x, replay.x]), torch.cat([incoming.y, replay.y])
    with torch.no_grad():
        z = F.normalize(twin.projection(twin.model.features(torch.cat([x, x]))), dim=1)
    want = float(supcon_loss(z, torch.cat([y, y]), learner.temperature))
    stats = learner.observe(incoming)
    assert math.isclose(stats.loss_sum / stats.n, want, rel_tol=1e-5)
    # the projection head is trained by the step, the unused linear head is not
    assert not torch.equal(learner.projection[0].weight, twin.projection[0].weight)
    assert torch.equal(learner.model.head.weight, twin.model.head.weight)


def test_scr_predicts_the_nearest_class_mean_of_the_buffer_features(tiny):
    learner = SCR(net(), mem_size=60, replay_batch=10, seed=0)
    for classes in ([0, 1], [2, 3], [4, 5]):
        for off in (0, 8):
            learner.observe(batch_of(tiny, classes, n=16, offset=off))
    x = tiny.x_test
    stored = learner.memory.all()
    learner.model.eval()
    with torch.no_grad():
        f = F.normalize(learner.model.features(x), dim=1)
        u = F.normalize(learner.model.features(stored.x), dim=1)
    learner.model.train()
    means = torch.stack([F.normalize(u[stored.y == c].mean(0), dim=0) for c in range(6)])
    nearest = torch.cdist(f, means).argmin(1)  # Euclidean distance to the normalised means
    assert torch.equal(learner.predict(x).argmax(1), nearest)
    assert not torch.equal(learner.predict(x).argmax(1), learner.model(x).argmax(1))  # not the linear head
    # the prediction follows the buffer: relabelling the stored class-0 samples as class 1 and the
    # class-1 samples as class 0 swaps those two predictions
    y0, y1 = stored.y == 0, stored.y == 1
    learner.memory.y[: learner.memory.size][y0] = 1
    learner.memory.y[: learner.memory.size][y1] = 0
    swapped = nearest.clone()
    swapped[nearest == 0], swapped[nearest == 1] = 1, 0
    assert torch.equal(learner.predict(x).argmax(1), swapped)


# -- GSS ------------------------------------------------------------------------------------------
def test_gss_scorer_is_the_max_cosine_of_per_sample_gradients(tiny):
    learner = GSS(net(), mem_size=20, seed=0)
    cand, subset = batch_of(tiny, [0, 3], n=4), batch_of(tiny, [1, 2, 5], n=6)

    def flat_grad(x, y):
        learner.model.zero_grad()
        F.cross_entropy(learner.model(x[None]), y[None]).backward()
        return torch.cat([p.grad.flatten() for p in learner.model.parameters()])

    g = F.normalize(torch.stack([flat_grad(x, y) for x, y in zip(cand.x, cand.y)]), dim=1)
    h = F.normalize(torch.stack([flat_grad(x, y) for x, y in zip(subset.x, subset.y)]), dim=1)
    assert torch.allclose(learner.gradient_cosine(cand, subset), (g @ h.T).max(1).values, atol=1e-5)
    # the torch.func route (networks the Gram shortcut does not cover) gives the same gradients
    assert torch.allclose(F.normalize(learner.sample_gradients(cand), dim=1), g, atol=1e-5)
    tasks = GSS(net(), mem_size=20, seed=0, task_classes=[(0, 1, 2), (3, 4, 5)])
    masked = Batch(cand.x, cand.y, torch.tensor([0, 1, 0, 1]))
    assert torch.isfinite(tasks.sample_gradients(masked)).all()


def admissions(memory, candidate, trials=60):
    """How often ``candidate`` enters a copy of the full ``memory``, each trial with another seed."""
    n = 0
    for t in range(trials):
        mem = copy.deepcopy(memory)
        mem.generator.manual_seed(1000 + t)
        before = mem.x.clone()
        mem.add(candidate)
        n += int(not torch.equal(mem.x, before))
    return n


def test_gss_admits_a_candidate_whose_gradient_is_unlike_the_buffers(tiny):
    learner = GSS(net(), mem_size=4, score_subset=4, seed=0)
    stored = batch_of(tiny, [0], n=4)
    for i in range(4):  # full: four samples of class 0, offered one at a time so that each is scored
        learner.memory.add(Batch(stored.x[i : i + 1], stored.y[i : i + 1]))
    assert learner.memory.scores[1:].min() > 1.5  # alike: their gradients point the same way
    similar = Batch(stored.x[:1].clone(), stored.y[:1].clone())  # a copy of a stored sample
    unlike = batch_of(tiny, [4], n=1)  # a class the buffer does not hold
    scores = learner.gradient_cosine(Batch(torch.cat([similar.x, unlike.x]), torch.cat([similar.y, unlike.y])),
                                     learner.memory.all())
    assert scores[0] > 0.99 and scores[1] < 0  # cos with its twin's gradient; the new class points away
    assert admissions(learner.memory, similar) == 0
    assert admissions(learner.memory, unlike) >= 20


def test_gss_replaces_the_highest_scored_samples_most_often():
    mem = GradientScoredMemory(4, seed=0, subset=4)
    mem.add(Batch(torch.eye(4, 3), torch.arange(4)))
    mem.scores[:] = torch.tensor([1.9, 0.1, 0.1, 0.1], dtype=torch.float64)
    mem.scorer = lambda cand, subset: torch.full((len(cand),), -0.5)  # every candidate scores c = 0.5
    hits = torch.zeros(4)
    for t in range(200):
        m = copy.deepcopy(mem)
        m.generator.manual_seed(t)
        m.add(Batch(torch.full((1, 3), 9.0), torch.tensor([0])))
        replaced = (m.x[:, 0] == 9.0).nonzero().flatten()
        hits[replaced] += 1
        if len(replaced):
            assert float(m.scores[replaced]) == 0.5  # the newcomer keeps its own score
    # slot 0 is picked with probability 1.9/2.2 and then replaced with probability 1.9/2.4; each
    # other slot with 0.1/2.2 and 0.1/0.6
    assert hits[0] > 110 and hits[1:].max() < 15
