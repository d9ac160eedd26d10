"""Mechanism tests for RanPAC (McDonnell et al. 2023), each against an independent computation: the
head is the closed-form ridge solution on the projected features of every sample seen; the
projection and the decorrelation each change the predictions; the ridge is the grid value with
the least validation error. Each fails when the step it names is removed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lifelong.data import Batch
from lifelong.learn.methods.ranpac import RIDGES, RanPAC, choose_ridge
from lifelong.learn.nets import mlp


def two_chunks(seed=0):
    """Chunk 0: classes 0, 1; chunk 1: classes 2, 3 (Gaussian blobs in 6 dims), 20 samples each."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(4, 6, generator=g)

    def chunk(classes, n=20):
        y = torch.tensor(classes).repeat_interleave(n)
        return Batch(centres[y] + torch.randn(len(y), 6, generator=g), y)
    return chunk([0, 1]), chunk([2, 3])


def trained(dim=30, seed=0, **hp):
    first, second = two_chunks()
    learner = RanPAC(mlp((6,), 4, hidden=(8,), seed=0), dim=dim, lr=0.1, seed=seed, **hp)
    for i in range(0, 40, 8):
        learner.observe(Batch(first.x[i:i + 8], first.y[i:i + 8]))
    learner.end_chunk()
    frozen = [p.detach().clone() for p in learner.model.parameters()]
    for i in range(0, 40, 10):
        learner.observe(Batch(second.x[i:i + 10], second.y[i:i + 10]))
    learner.end_chunk()
    assert all(torch.equal(a, b) for a, b in zip(frozen, learner.model.parameters())), "the backbone moved"
    return learner, torch.cat([first.x, second.x]), torch.cat([first.y, second.y])


def frozen_features(learner, x):
    with torch.no_grad():
        return learner.model.features(x).double()


def test_the_head_is_the_closed_form_ridge_solution_on_the_projected_features():
    learner, x, y = trained()
    z = frozen_features(learner, x)
    W = learner.projection
    assert W.shape == (8, 30)
    h = torch.relu(z @ W)  # the random ReLU projection, (n, M)
    Y = F.one_hot(y, 4).double()
    lam = learner.ridge
    assert lam in RIDGES
    expected_head = torch.linalg.inv(h.T @ h + lam * torch.eye(30, dtype=torch.float64)) @ h.T @ Y
    assert torch.allclose(learner.gram, h.T @ h, rtol=1e-9, atol=1e-8)
    assert torch.allclose(learner.protos, h.T @ Y, rtol=1e-9, atol=1e-8)
    assert torch.allclose(learner.head, expected_head, rtol=1e-5, atol=1e-6)
    xt = torch.randn(7, 6, generator=torch.Generator().manual_seed(5))
    expected = torch.relu(frozen_features(learner, xt) @ W) @ expected_head
    assert torch.allclose(learner.predict(xt).double(), expected, rtol=1e-4, atol=1e-4)


def test_the_projection_is_fixed_gaussian_and_drawn_from_the_seed():
    a, _, _ = trained(seed=0)
    b, _, _ = trained(seed=0)
    c, _, _ = trained(seed=1)
    assert torch.equal(a.projection, b.projection) and not torch.equal(a.projection, c.projection)
    w = trained(dim=500)[0].projection
    assert abs(float(w.mean())) < 0.05 and abs(float(w.std()) - 1) < 0.05  # N(0, 1) entries


def test_removing_the_projection_or_the_decorrelation_changes_the_predictions():
    learner, x, y = trained()
    xt = torch.randn(200, 6, generator=torch.Generator().manual_seed(5))
    z, zt = frozen_features(learner, x), frozen_features(learner, xt)
    Y = F.one_hot(y, 4).double()
    lam = learner.ridge
    got = learner.predict(xt).double()
    # without the projection: the same ridge head on the backbone's own features
    plain = zt @ torch.linalg.solve(z.T @ z + lam * torch.eye(8, dtype=torch.float64), z.T @ Y)
    # without the decorrelation: the class prototypes C alone (G replaced by the identity)
    h, ht = torch.relu(z @ learner.projection), torch.relu(zt @ learner.projection)
    prototypes_only = ht @ (h.T @ Y)
    for other in (plain, prototypes_only):
        assert not torch.allclose(got, other, rtol=1e-2, atol=1e-2)
        assert (got.argmax(1) != other.argmax(1)).any()


def test_the_ridge_is_the_grid_value_with_the_least_validation_error():
    g = torch.Generator().manual_seed(0)
    h = torch.relu(torch.randn(60, 5, generator=g, dtype=torch.float64) @ torch.randn(5, 40, generator=g, dtype=torch.float64))
    y = torch.randint(0, 3, (60,), generator=g)
    got = choose_ridge(h, y, 3, generator=torch.Generator().manual_seed(1))
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(1))
    va, tr = perm[:12], perm[12:]
    Y = F.one_hot(y, 3).double()

    def val_error(r):  # the primal ridge fit on the training part, by a direct solve
        W = torch.linalg.solve(h[tr].T @ h[tr] + r * torch.eye(40, dtype=torch.float64), h[tr].T @ Y[tr])
        return float(((h[va] @ W - Y[va]) ** 2).mean())
    errors = [val_error(r) for r in RIDGES]
    best = RIDGES[min(range(len(RIDGES)), key=errors.__getitem__)]
    assert got == best
    assert len({round(e, 6) for e in errors}) > 3  # the grid matters here: the errors differ
    # the dual form (fewer samples than dimensions) gives the same choice as the primal
    wide = torch.cat([h, h ** 2], 1)
    assert choose_ridge(wide, y, 3, generator=torch.Generator().manual_seed(1)) in RIDGES


def test_the_ridge_is_chosen_on_each_chunk_without_repeated_samples(monkeypatch):
    import lifelong.learn.methods.ranpac as mod
    seen = []
    real = mod.choose_ridge

    def spy(h, y, n_classes, **kw):
        seen.append(sorted(set(y.tolist())))
        assert torch.unique(h, dim=0).shape[0] == h.shape[0]  # no sample twice
        return real(h, y, n_classes, **kw)
    monkeypatch.setattr(mod, "choose_ridge", spy)
    first, second = two_chunks()
    learner = RanPAC(mlp((6,), 4, hidden=(8,), seed=0), dim=30, lr=0.1, seed=0)
    for _ in range(2):  # two epochs: every sample is kept twice
        learner.observe(first)
    learner.end_chunk()
    for _ in range(3):
        learner.observe(second)
    learner.end_chunk()
    assert seen == [[0, 1], [2, 3]]


def test_without_adaptation_it_freezes_the_given_network_before_the_first_batch():
    first, second = two_chunks()
    net = mlp((6,), 4, hidden=(8,), seed=0)
    before = [p.detach().clone() for p in net.parameters()]
    learner = RanPAC(net, dim=30, adapt=False, lr=0.1, seed=0)
    learner.observe(first)
    learner.end_chunk()
    assert all(torch.equal(a, b) for a, b in zip(before, learner.model.parameters()))
    assert float(learner.counts.sum()) == 40 and learner.head is not None
