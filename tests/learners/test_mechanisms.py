"""Mechanism tests against hand computations: EWC's diagonal Fisher and penalty, MAS's
output-sensitivity importance and its accumulation, LwF's distillation term and its gradient,
DER++'s two replay terms. Each fails if the mechanism is missing (EWC never consolidates, MAS
takes the batch-mean output or forgets earlier chunks' importance, LwF never distils, DER++ drops
its logit term)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lifelong.data import Batch
from lifelong.learn.methods.der import DERPP
from lifelong.learn.methods.ewc import EWC
from lifelong.learn.methods.lwf import LwF
from lifelong.learn.methods.mas import MAS
from lifelong.learn.nets import Net


def linear_net(d_in: int, n_classes: int, weight: list[list[float]]) -> Net:
    """``f(x) = W x``: a head without bias on an identity body; ``weight`` is (C, d_in)."""
    net = Net(nn.Identity(), nn.Linear(d_in, n_classes, bias=False))
    with torch.no_grad():
        net.head.weight.copy_(torch.tensor(weight))
    return net


def weight_of(learner) -> torch.Tensor:
    return learner.model.head.weight.detach().clone()


# -- EWC -------------------------------------------------------------------------------------------
def test_ewc_fisher_and_penalty_equal_a_hand_computation_on_a_two_parameter_network():
    # two parameters: f(x) = (w0·x, w1·x), two classes
    lam, lr = 2.0, 0.01
    learner = EWC(linear_net(1, 2, [[0.5], [-0.3]]), ewc_lambda=lam, fisher="empirical", lr=lr, seed=0)
    x = torch.tensor([[1.0], [2.0], [-1.0], [0.5]])
    y = torch.tensor([0, 1, 1, 0])
    learner.observe(Batch(x, y))
    star = weight_of(learner)  # θ*: the weights at the boundary
    learner.end_chunk()

    # Empirical Fisher: F_k = mean_i (∂ log p(y_i|x_i) / ∂w_k)² with ∂/∂w_k = x_i (1[k = y_i] − p_k(x_i)).
    p = F.softmax(x * star.T, dim=1)  # (4, 2): logits w_k·x_i
    grads = x * (F.one_hot(y, 2).float() - p)  # (4, 2)
    fisher = (grads**2).mean(0).reshape(2, 1)
    pen = learner.term("ewc").penalty
    assert torch.allclose(pen.importance["head.weight"], fisher, atol=1e-6)
    assert torch.equal(pen.anchor["head.weight"], star)

    # The penalty at new weights θ: (λ/2)·Σ_k F_k (θ_k − θ*_k)².
    theta = torch.tensor([[1.5], [0.7]])
    with torch.no_grad():
        learner.model.head.weight.copy_(theta)
    ctx = learner.context(Batch(x, y))
    expected = 0.5 * lam * (fisher * (theta - star) ** 2).sum()
    value = learner.term("ewc").value(ctx)
    assert value is not None and float(value.detach()) > 0
    assert torch.allclose(value.detach(), expected, atol=1e-6)

    # and the SGD step follows CE + penalty: Δθ = −lr·(∇CE + λ·F·(θ − θ*))
    xb, yb = torch.tensor([[1.0], [-2.0]]), torch.tensor([1, 0])
    w = theta.clone().requires_grad_(True)
    ce = F.cross_entropy(xb @ w.T, yb)
    (g_ce,) = torch.autograd.grad(ce, w)
    learner.observe(Batch(xb, yb))
    assert torch.allclose(weight_of(learner), theta - lr * (g_ce + lam * fisher * (theta - star)), atol=1e-6)


# -- MAS -------------------------------------------------------------------------------------------
def mas_importance_by_hand(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``(1/N) Σ_n |∂‖W x_n‖² / ∂W|`` for ``f(x) = W x``: ``∂‖Wx‖²/∂W_ck = 2 (Wx)_c x_k``."""
    out = x @ w.T  # (N, C)
    return (2 * out[:, :, None] * x[:, None, :]).abs().mean(0)  # (C, d_in)


def test_mas_importance_is_per_sample_and_accumulates_over_chunks():
    lam, lr = 0.5, 0.01
    learner = MAS(linear_net(2, 2, [[0.5, -0.3], [0.2, 0.4]]), mas_lambda=lam, normalize=False, lr=lr, seed=0)
    # the samples' gradients on W_c1 have opposite signs: a batch-mean output (or the absolute value
    # of a summed gradient) gives a different, smaller importance than the per-sample mean
    x1 = torch.tensor([[1.0, 1.0], [1.0, -1.0], [0.5, 2.0]])
    learner.observe(Batch(x1, torch.tensor([0, 1, 0])))
    star1 = weight_of(learner)
    learner.end_chunk()
    omega1 = mas_importance_by_hand(star1, x1)
    mean_out = x1.mean(0, keepdim=True)  # the wrong estimates this test rules out
    assert not torch.allclose(omega1, mas_importance_by_hand(star1, mean_out), atol=1e-3)
    summed = (2 * (x1 @ star1.T)[:, :, None] * x1[:, None, :]).mean(0).abs()
    assert not torch.allclose(omega1, summed, atol=1e-3)
    pen = learner.term("mas").penalty
    assert torch.allclose(pen.importance["head.weight"], omega1, atol=1e-6)
    assert torch.equal(pen.anchor["head.weight"], star1)

    # a second chunk: Ω ← Ω + Ω_new (the paper accumulates), anchored at the newest weights
    x2 = torch.tensor([[-1.0, 0.5], [2.0, 0.0]])
    learner.observe(Batch(x2, torch.tensor([1, 1])))
    star2 = weight_of(learner)
    learner.end_chunk()
    omega = omega1 + mas_importance_by_hand(star2, x2)
    assert torch.allclose(pen.importance["head.weight"], omega, atol=1e-6)
    assert torch.equal(pen.anchor["head.weight"], star2)

    # the penalty λ·Σ Ω (θ − θ*)² and the SGD step Δθ = −lr·(∇CE + 2λ·Ω·(θ − θ*))
    theta = torch.tensor([[1.0, 0.2], [-0.4, 0.9]])
    with torch.no_grad():
        learner.model.head.weight.copy_(theta)
    xb, yb = torch.tensor([[1.0, -2.0], [0.3, 0.7]]), torch.tensor([1, 0])
    value = learner.term("mas").value(learner.context(Batch(xb, yb)))
    assert torch.allclose(value.detach(), lam * (omega * (theta - star2) ** 2).sum(), atol=1e-6)
    w = theta.clone().requires_grad_(True)
    (g_ce,) = torch.autograd.grad(F.cross_entropy(xb @ w.T, yb), w)
    learner.observe(Batch(xb, yb))
    assert torch.allclose(weight_of(learner), theta - lr * (g_ce + 2 * lam * omega * (theta - star2)), atol=1e-6)


def test_mas_normalize_scales_each_chunks_importance_to_mean_one_before_summing():
    learner = MAS(linear_net(2, 2, [[0.5, -0.3], [0.2, 0.4]]), mas_lambda=0.1, lr=0.01, seed=0)
    assert learner.normalize  # the default
    x1, x2 = torch.tensor([[1.0, 1.0], [1.0, -1.0]]), torch.tensor([[3.0, 0.5], [-2.0, 1.0]])
    learner.observe(Batch(x1, torch.tensor([0, 1])))
    star1 = weight_of(learner)
    learner.end_chunk()
    learner.observe(Batch(x2, torch.tensor([1, 0])))
    star2 = weight_of(learner)
    learner.end_chunk()
    o1, o2 = mas_importance_by_hand(star1, x1), mas_importance_by_hand(star2, x2)
    expected = o1 / o1.mean() + o2 / o2.mean()
    assert torch.allclose(learner.term("mas").penalty.importance["head.weight"], expected, atol=1e-6)


# -- LwF -------------------------------------------------------------------------------------------
def test_lwf_distillation_and_its_gradient_equal_a_hand_computation():
    alpha, T = 0.7, 2.0
    learner = LwF(linear_net(2, 3, [[0.2, -0.1], [0.4, 0.3], [-0.5, 0.1]]), alpha=alpha, temperature=T, lr=0.1, seed=0)
    x0 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    learner.observe(Batch(x0, torch.tensor([0, 1, 0])))  # classes 0 and 1 seen
    teacher_w = weight_of(learner)
    learner.end_chunk()
    with torch.no_grad():  # the student moves away from the teacher
        learner.model.head.weight.add_(torch.tensor([[0.3, -0.2], [-0.4, 0.5], [0.2, 0.2]]))
    student_w = weight_of(learner)

    x = torch.tensor([[0.5, -1.0], [2.0, 0.3]])
    ctx = learner.context(Batch(x, torch.tensor([2, 2])))
    value = learner.term("lwf")(ctx)
    assert value is not None, "LwF did not distil after a boundary"

    old = [0, 1]
    s, t = (x @ student_w.T)[:, old], (x @ teacher_w.T)[:, old]  # (2, 2) old-class logits
    target = torch.softmax(t / T, 1)
    expected = -alpha * (target * torch.log_softmax(s / T, 1)).sum(1).mean()
    assert torch.allclose(value.detach(), expected, atol=1e-6)

    # ∂/∂s = α/(B·T)·(softmax(s/T) − target) on the old classes, 0 on the new one; ∂/∂W = (∂/∂s)ᵀ x
    ds = torch.zeros(2, 3)
    ds[:, old] = alpha / (2 * T) * (torch.softmax(s / T, 1) - target)
    (grad,) = torch.autograd.grad(value, learner.model.head.weight)
    assert torch.allclose(grad, ds.T @ x, atol=1e-6)
    assert torch.all(grad[2] == 0)  # the new class's row gets no distillation gradient


# -- DER++ -----------------------------------------------------------------------------------------
def test_derpp_loss_is_alpha_mse_on_one_draw_plus_beta_ce_on_another():
    alpha, beta, lr = 0.3, 0.6, 0.2
    learner = DERPP(linear_net(2, 3, [[0.2, -0.1], [0.4, 0.3], [-0.5, 0.1]]), alpha=alpha, beta=beta, mem_size=20,
                    replay_batch=4, lr=lr, seed=0)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        learner.observe(Batch(torch.randn(6, 2, generator=g), torch.randint(3, (6,), generator=g)))
    assert len(learner.memory) == 18

    batch = Batch(torch.randn(5, 2, generator=g), torch.randint(3, (5,), generator=g))
    w = weight_of(learner)
    # the learner's draws, replayed with a copy of its generator: two independent samples of 4
    twin = torch.Generator()
    twin.set_state(learner.generator.get_state())
    first, second = learner.memory.sample(4, twin), learner.memory.sample(4, twin)
    assert not torch.equal(first.x, second.x)
    stored = first.extras["logits"]
    assert not torch.allclose(first.x @ w.T, stored)  # the network moved since: the logit term is non-zero

    W = w.clone().requires_grad_(True)
    mse = ((first.x @ W.T - stored) ** 2).mean()
    ce2 = F.cross_entropy(second.x @ W.T, second.y)
    ce = F.cross_entropy(batch.x @ W.T, batch.y)
    term = alpha * mse + beta * ce2

    probe = torch.Generator()  # the draws happen in context(), before the forward pass
    probe.set_state(learner.generator.get_state())
    ctx = learner.context(batch)
    value = learner.term("logit_replay")(ctx)
    assert torch.allclose(value.detach(), term.detach(), atol=1e-6)

    # the update: one SGD step on CE(batch) + α·MSE + β·CE(second draw), with the same draws
    learner.generator.set_state(probe.get_state())
    (g_total,) = torch.autograd.grad(ce + term, W, retain_graph=True)
    learner.observe(batch)
    assert torch.allclose(weight_of(learner), w - lr * g_total, atol=1e-6)
    # without the logit term the step would differ
    (g_no_logits,) = torch.autograd.grad(ce + beta * ce2, W)
    assert not torch.allclose(weight_of(learner), w - lr * g_no_logits, atol=1e-4)


def test_ewc_fisher_from_one_backward_equals_per_sample_gradients():
    """The Linear-layer shortcut ((δ∘δ)ᵀ(a∘a)) gives the same squared gradients as torch.func."""
    from torch.func import functional_call, grad, vmap

    from lifelong.learn.nets import mlp
    from lifelong.learn.persample import linear_sample_grad_sums

    model = mlp((5,), 4, hidden=(7, 6), seed=3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(9, 5, generator=g)
    target = F.one_hot(torch.randint(4, (9,), generator=g), 4).bool()
    allowed = torch.ones(9, 4, dtype=torch.bool)
    allowed[:3, 3] = False  # a task mask on three samples (their targets must be allowed)
    target[:3] = F.one_hot(torch.tensor([0, 1, 2]), 4).bool()
    params = {k: v.detach() for k, v in model.named_parameters()}

    def log_prob(p, xi, ti, ai):
        out = functional_call(model, p, (xi.unsqueeze(0),))[0].masked_fill(~ai, float("-inf"))
        return torch.where(ti, F.log_softmax(out, 0), 0.0).sum()

    per_sample = vmap(grad(log_prob), in_dims=(None, 0, 0, 0))(params, x, target, allowed)
    fast = linear_sample_grad_sums(
        model, x, lambda out: torch.where(target, F.log_softmax(out.masked_fill(~allowed, float("-inf")), 1), 0.0).sum(),
        torch.square)
    assert fast is not None and set(fast) == set(params)
    for k in params:
        assert torch.allclose(fast[k], (per_sample[k] ** 2).sum(0), atol=1e-6), k


def test_mas_importance_from_one_backward_equals_per_sample_gradients():
    """MAS's |per-sample gradient| summed over samples: the shortcut (|δ|ᵀ|a|) equals torch.func's
    per-sample route, and a network with parameters outside Linear layers takes the generic route
    and gets the same importance as before."""
    from torch.func import functional_call, grad, vmap

    from lifelong.learn.nets import cnn, mlp
    from lifelong.learn.persample import linear_sample_grad_sums

    model = mlp((5,), 4, hidden=(7, 6), seed=3)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(9, 5, generator=g)
    keep = torch.ones(9, 4)
    keep[:4, 2:] = 0.0  # four samples of a task that owns classes 0 and 1
    params = {k: v.detach() for k, v in model.named_parameters()}

    def sq_norm(p, xi, ki):
        return ((functional_call(model, p, (xi.unsqueeze(0),))[0] * ki) ** 2).sum()

    per_sample = vmap(grad(sq_norm), in_dims=(None, 0, 0))(params, x, keep)
    fast = linear_sample_grad_sums(model, x, lambda out: ((out * keep) ** 2).sum(), torch.abs)
    assert fast is not None and set(fast) == set(params)
    for k in params:
        assert torch.allclose(fast[k], per_sample[k].abs().sum(0), atol=1e-5), k
    # the absolute value is taken per sample: the |sum| of the batch's gradient is smaller
    first = dict(model.named_parameters())["body.1.weight"]
    (batch_grad,) = torch.autograd.grad(((model(x) * keep) ** 2).sum(), [first])
    assert (fast["body.1.weight"] - batch_grad.abs()).max() > 1e-3
    conv = cnn((1, 8, 8), 3, seed=0)
    assert linear_sample_grad_sums(conv, torch.randn(2, 1, 8, 8), lambda out: (out ** 2).sum(), torch.abs) is None
