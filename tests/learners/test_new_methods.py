"""Mechanism tests for the methods of issue 15, each against an independent computation: GEM's dual
QP (against enumeration of the active sets) and its projected step (against the KKT conditions of
the primal); MIR's retrieval (against a hand-made virtual step and every other choice of replay
samples); NCM's and SLDA's frozen backbone and heads (against batch class means and batch LDA).
Each fails when the method's defining step is removed."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from lifelong.data import Batch
from lifelong.learn.methods.gem import GEM, solve_dual
from lifelong.learn.methods.mir import MIR
from lifelong.learn.methods.ncm import NCM
from lifelong.learn.methods.slda import SLDA
from lifelong.learn.nets import Net, mlp


def linear_net(d_in: int, n_classes: int, weight: list[list[float]]) -> Net:
    """``f(x) = W x``: a head without bias on an identity body; ``weight`` is (C, d_in)."""
    net = Net(nn.Identity(), nn.Linear(d_in, n_classes, bias=False))
    with torch.no_grad():
        net.head.weight.copy_(torch.tensor(weight))
    return net


# -- GEM -------------------------------------------------------------------------------------------
def qp_by_enumeration(P: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``argmin ½vᵀPv + qᵀv, v ≥ 0`` by trying every set of free variables (exact for small K)."""
    k, best = len(q), None
    for r in range(k + 1):
        for free in itertools.combinations(range(k), r):
            v = torch.zeros(k, dtype=P.dtype)
            if free:
                f = list(free)
                v[f] = torch.linalg.solve(P[f][:, f], -q[f])
            if (v >= -1e-12).all():
                value = 0.5 * v @ P @ v + q @ v
                if best is None or value < best[0]:
                    best = (value, v)
    return best[1]


def test_gem_dual_solver_is_exact_against_enumerating_the_active_sets():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        k = int(torch.randint(1, 7, (1,), generator=g))
        a = torch.randn(k, 4, generator=g, dtype=torch.float64)  # rank ≤ 4 < k sometimes: eps makes it PD
        P = a @ a.T + 1e-3 * torch.eye(k, dtype=torch.float64)
        q = torch.randn(k, generator=g, dtype=torch.float64)
        assert torch.allclose(solve_dual(P, q), qp_by_enumeration(P, q), atol=1e-9)


def test_gem_step_is_the_primal_qp_solution_over_every_past_chunk():
    lr = 0.1
    learner = GEM(linear_net(3, 2, [[0.2, -0.1, 0.3], [0.1, 0.4, -0.2]]), mem_size=40, margin=0.0, eps=0.0, lr=lr, seed=0)
    # two past chunks whose memories want class 0 on two different features; the batch wants class 1
    learner.memory.append(Batch(torch.tensor([[1.0, 0.0, 0.2], [2.0, 0.1, 0.0]]), torch.tensor([0, 0])), 0)
    learner.memory.append(Batch(torch.tensor([[0.0, 1.0, 0.1], [0.1, 2.0, 0.0]]), torch.tensor([0, 0])), 1)
    learner.n_chunks = 2
    batch = Batch(torch.tensor([[1.0, 1.0, 0.0], [1.5, 0.5, 1.0]]), torch.tensor([1, 1]))

    W = learner.model.head.weight.detach().clone()
    Wg = W.clone().requires_grad_(True)

    def grad(x, y):
        (gw,) = torch.autograd.grad(F.cross_entropy(x @ Wg.T, y), Wg)
        return gw.reshape(-1).double()

    g = grad(batch.x, batch.y)
    mem = learner.memory.all()
    G = torch.stack([grad(mem.x[mem.extras["chunk"] == k], mem.y[mem.extras["chunk"] == k]) for k in (0, 1)])
    assert (G @ g < 0).all(), "the test needs both past chunks to conflict with the batch"

    learner.observe(batch)
    step = (W - learner.model.head.weight.detach()).reshape(-1).double() / lr  # the g̃ the learner used
    assert learner.n_projected == 1
    # KKT of min ½‖z − g‖² s.t. Gz ≥ 0: z = g + Gᵀv, v ≥ 0, Gz ≥ 0, v·(Gz) = 0
    v = torch.linalg.lstsq(G.T, (step - g)[:, None]).solution.flatten()
    assert torch.allclose(G.T @ v + g, step, atol=1e-5), "g̃ − g is not a combination of the past gradients"
    assert (v >= -1e-6).all() and (G @ step >= -1e-5).all()
    assert torch.allclose(v * (G @ step), torch.zeros(2, dtype=torch.float64), atol=1e-5)
    assert not torch.allclose(step, g, atol=1e-3)  # the projection changed the step (plain SGD fails here)
    # and it is not A-GEM's answer (one constraint on the mean of the past gradients)
    g_ref = G.mean(0)
    agem = g - (g @ g_ref) / (g_ref @ g_ref) * g_ref if g @ g_ref < 0 else g
    assert not torch.allclose(step, agem, atol=1e-3)


def test_gem_keeps_an_equal_share_per_past_chunk_and_never_the_current_one():
    g = torch.Generator().manual_seed(0)
    learner = GEM(linear_net(3, 4, [[0.1] * 3] * 4), mem_size=12, lr=0.1, seed=0)
    for chunk in range(3):
        for _ in range(4):
            learner.observe(Batch(torch.randn(5, 3, generator=g), torch.full((5,), chunk)))
        stored = learner.memory.y[: len(learner.memory)]
        assert chunk not in stored.tolist()
        learner.end_chunk()
        counts = torch.bincount(learner.memory.fields["chunk"][: len(learner.memory)]).tolist()
        assert counts == [12 // (chunk + 1)] * (chunk + 1)


# -- MIR -------------------------------------------------------------------------------------------
def test_mir_replays_the_candidates_a_virtual_step_would_hurt_most():
    lr, k = 0.5, 2
    learner = MIR(linear_net(2, 3, [[0.3, -0.2], [0.1, 0.4], [-0.2, 0.1]]), mem_size=6, subsample=6,
                  replay_batch=k, lr=lr, seed=0)
    g = torch.Generator().manual_seed(3)
    learner.memory.add(Batch(torch.randn(6, 2, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])))
    batch = Batch(torch.tensor([[1.0, 0.5], [0.8, -0.3]]), torch.tensor([2, 2]))

    W = learner.model.head.weight.detach().clone()
    Wg = W.clone().requires_grad_(True)
    (g_batch,) = torch.autograd.grad(F.cross_entropy(batch.x @ Wg.T, batch.y), Wg)
    W_virtual = W - lr * g_batch
    mem = learner.memory.all()

    def losses(w):
        return F.cross_entropy(mem.x @ w.T, mem.y, reduction="none")

    score = losses(W_virtual) - losses(W)  # how much the virtual step raises each stored sample's loss
    top = score.topk(k).indices
    assert set(top.tolist()) != set(score.topk(k, largest=False).indices.tolist())
    # the real step: SGD on CE(batch) + CE(top-k), from the original weights
    (g_total,) = torch.autograd.grad(F.cross_entropy(batch.x @ Wg.T, batch.y)
                                     + F.cross_entropy(mem.x[top] @ Wg.T, mem.y[top]), Wg)
    learner.observe(batch)
    assert torch.allclose(learner.model.head.weight.detach(), W - lr * g_total, atol=1e-6)
    # every other choice of k stored samples gives a different step (the retrieval matters)
    for other in itertools.combinations(range(6), k):
        if set(other) == set(top.tolist()):
            continue
        o = list(other)
        (g_o,) = torch.autograd.grad(F.cross_entropy(batch.x @ Wg.T, batch.y)
                                     + F.cross_entropy(mem.x[o] @ Wg.T, mem.y[o]), Wg)
        assert not torch.allclose(W - lr * g_o, W - lr * g_total, atol=1e-5)


def test_mir_scores_candidates_without_changing_the_model():
    learner = MIR(linear_net(2, 3, [[0.3, -0.2], [0.1, 0.4], [-0.2, 0.1]]), mem_size=6, lr=0.5, seed=0)
    learner.memory.add(Batch(torch.randn(6, 2, generator=torch.Generator().manual_seed(0)), torch.arange(6) % 3))
    before = learner.model.head.weight.detach().clone()
    learner.retrieve(Batch(torch.ones(2, 2), torch.tensor([2, 2])))
    assert torch.equal(learner.model.head.weight.detach(), before)

    # nor a BatchNorm network's running statistics (the virtual step and the scoring use copies)
    bn = MIR(Net(nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4), nn.ReLU()), nn.Linear(4, 3)), mem_size=6, seed=0)
    bn.memory.add(learner.memory.all())
    stats = {k: b.clone() for k, b in bn.model.named_buffers()}
    bn.retrieve(Batch(torch.ones(2, 2), torch.tensor([2, 2])))
    assert all(torch.equal(stats[k], b) for k, b in bn.model.named_buffers())


# -- NCM and SLDA (frozen-feature heads) -----------------------------------------------------------
def two_chunks(seed=0):
    """Chunk 0: classes 0, 1; chunk 1: classes 2, 3 (Gaussian blobs in 6 dims)."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(4, 6, generator=g)
    def chunk(classes, n=20):
        y = torch.tensor(classes).repeat_interleave(n)
        return Batch(centres[y] + torch.randn(len(y), 6, generator=g), y)
    return chunk([0, 1]), chunk([2, 3])


def run_two_chunks(learner, first, second):
    for i in range(0, 40, 8):
        learner.observe(Batch(first.x[i:i + 8], first.y[i:i + 8]))
    learner.end_chunk()
    frozen = [p.detach().clone() for p in learner.model.parameters()]
    for i in range(0, 40, 10):
        learner.observe(Batch(second.x[i:i + 10], second.y[i:i + 10]))
    learner.end_chunk()
    return frozen


def test_ncm_freezes_the_backbone_and_scores_by_cosine_to_the_class_means():
    first, second = two_chunks()
    learner = NCM(mlp((6,), 4, hidden=(8,), seed=0), lr=0.1, seed=0)
    frozen = run_two_chunks(learner, first, second)
    assert all(torch.equal(a, b) for a, b in zip(frozen, learner.model.parameters())), "the backbone moved"
    with torch.no_grad():
        z = learner.model.features(torch.cat([first.x, second.x])).double()
    y = torch.cat([first.y, second.y])
    means = torch.stack([z[y == c].mean(0) for c in range(4)])  # every sample of both chunks, frozen features
    x = torch.randn(7, 6, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        zx = learner.model.features(x).double()
    expected = F.normalize(zx, dim=1) @ F.normalize(means, dim=1).T
    assert torch.allclose(learner.predict(x).double(), expected, atol=1e-5)


def test_slda_statistics_equal_batch_lda_and_do_not_depend_on_the_batching():
    first, second = two_chunks()
    learner = SLDA(mlp((6,), 4, hidden=(8,), seed=0), shrinkage=0.01, lr=0.1, seed=0)
    frozen = run_two_chunks(learner, first, second)
    assert all(torch.equal(a, b) for a, b in zip(frozen, learner.model.parameters())), "the backbone moved"
    with torch.no_grad():
        z = learner.model.features(torch.cat([first.x, second.x])).double()
    y = torch.cat([first.y, second.y])
    means = torch.stack([z[y == c].mean(0) for c in range(4)])
    centred = z - means[y]
    sigma = centred.T @ centred / len(y)  # the pooled within-class covariance
    assert torch.allclose(learner.means, means, atol=1e-9)
    assert torch.allclose(learner.scatter / learner.counts.sum(), sigma, atol=1e-9)
    precision = torch.linalg.inv(0.99 * sigma + 0.01 * torch.eye(8, dtype=torch.float64))
    x = torch.randn(7, 6, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        zx = learner.model.features(x).double()
    expected = zx @ precision @ means.T - 0.5 * ((means @ precision) * means).sum(1)
    assert torch.allclose(learner.predict(x).double(), expected, rtol=1e-4, atol=1e-3)
    # one sample at a time gives the same statistics (the batch merge is exact)
    other = SLDA(mlp((6,), 4, hidden=(8,), seed=0), shrinkage=0.01, seed=0)
    other.load_state_dict(learner.state_dict())
    other.means, other.scatter, other.counts = None, None, torch.zeros(4, dtype=torch.float64)
    for i in range(len(y)):
        other.fit(z[i:i + 1], y[i:i + 1])
    assert torch.allclose(other.means, learner.means, atol=1e-9)
    assert torch.allclose(other.scatter, learner.scatter, atol=1e-8)


def test_frozen_heads_refuse_domain_incremental_streams_and_say_why():
    from lifelong.data.scenarios import domain_incremental
    from lifelong.errors import ConfigError
    from lifelong.learn.loop import LoopConfig, iter_run
    from tests.conftest import tiny_dataset

    stream = domain_incremental(tiny_dataset(), n_chunks=2)
    for cls in (NCM, SLDA):
        learner = cls(mlp(stream.input_shape, stream.n_classes, hidden=(8,), seed=0), seed=0)
        try:
            next(iter_run(stream, learner, LoopConfig(batch_size=10), seed=0))
        except ConfigError as e:
            msg = str(e)
        else:
            raise AssertionError(f"{cls.name} ran on a domain-incremental stream")
        assert "frozen" in msg and "pooled over domains" in msg and "distil" not in msg


def test_ncm_by_default_keeps_the_given_network_and_runs_task_free():
    """SimpleCIL: no fine-tuning; the prototypes are of the network as given, from the first batch."""
    from lifelong.data.scenarios import online
    from lifelong.learn.loop import LoopConfig, iter_run
    from tests.conftest import tiny_dataset

    first, second = two_chunks()
    net = mlp((6,), 4, hidden=(8,), seed=0)
    given = [p.detach().clone() for p in net.parameters()]
    learner = NCM(net, lr=0.1, seed=0)
    assert learner.needs_boundaries is False and NCM(mlp((6,), 4, hidden=(8,)), adapt=True).needs_boundaries
    learner.observe(first)  # no boundary: the head has the batch at once
    assert all(torch.equal(a, b) for a, b in zip(given, learner.model.parameters()))
    with torch.no_grad():
        z = net.features(first.x).double()
    assert torch.allclose(learner.sums[:2], torch.stack([z[first.y == c].sum(0) for c in range(2)]))
    adapted = NCM(mlp((6,), 4, hidden=(8,), seed=0), adapt=True, lr=0.1, seed=0)
    adapted.observe(first)
    assert not all(torch.equal(a, b) for a, b in zip(given, adapted.model.parameters())), "adapt=True fine-tunes"
    stream = online(tiny_dataset(), n_chunks=2)
    records = list(iter_run(stream, NCM(mlp(stream.input_shape, stream.n_classes, hidden=(8,)), seed=0),
                            LoopConfig(batch_size=10), seed=0))
    assert any(r.kind == "train" for r in records)


def test_ncm_in_task_il_compares_only_the_tasks_prototypes():
    first, second = two_chunks()
    learner = NCM(mlp((6,), 4, hidden=(8,), seed=0), task_classes=[(0, 1), (2, 3)], seed=0)
    learner.observe(Batch(first.x, first.y, torch.zeros(40, dtype=torch.long)))
    learner.observe(Batch(second.x, second.y, torch.ones(40, dtype=torch.long)))
    x = torch.cat([first.x, second.x])
    free = learner.predict(x)  # (80, 4) cosine to all four prototypes
    task = torch.tensor([1] * 40 + [0] * 40)  # every sample asked within the other task
    masked = learner.predict(x, task)
    allowed = torch.tensor([[False, False, True, True]] * 40 + [[True, True, False, False]] * 40)
    assert torch.isinf(masked[~allowed]).all() and torch.equal(masked[allowed], free[allowed])
    assert allowed.gather(1, masked.argmax(1, keepdim=True)).all()
