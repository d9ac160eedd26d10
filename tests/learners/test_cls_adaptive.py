"""Mechanism tests for SI, CLS-ER, the error memory, homeostatic plasticity, drift-triggered
experts and power-law rehearsal: each checks the method's defining rule, not just that it runs."""

from __future__ import annotations


import pytest
import torch
from torch import nn

from lifelong.data import Batch
from lifelong.errors import ConfigError
from lifelong.learn.methods import make_learner
from lifelong.learn.nets import Net, mlp
from tests.conftest import tiny_dataset


def two_param_net(w0: float, w1: float) -> Net:
    """logits = w·x for a scalar input x: exactly two parameters, w = (w0, w1)."""
    head = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[w0], [w1]]))
    return Net(nn.Identity(), head)


def hand_si(w: torch.Tensor, batches, lr: float, c: float, omega_big: torch.Tensor, anchor: torch.Tensor):
    """SGD on softmax(w·x) with the SI penalty, returning (final w, path integral ω) by hand.

    Gradient of the mean cross-entropy: mean_n (p_n − e_{y_n}) x_n; of c·Σ Ω (w − w̃)²: 2cΩ(w − w̃).
    """
    omega = torch.zeros(2, dtype=torch.float64)
    for x, y in batches:
        p = torch.softmax(x[:, None] * w[None, :], dim=1)  # (B, 2)
        g_task = ((p - torch.nn.functional.one_hot(y, 2)) * x[:, None]).mean(0)
        g_total = g_task + 2 * c * omega_big * (w - anchor)
        step = -lr * g_total
        omega += -g_task * step
        w = w + step
    return w, omega


@pytest.mark.parametrize(("lr", "c", "xi", "capped"), [(0.2, 0.5, 0.1, False), (0.5, 2.0, 0.1, True)])
def test_si_importance_is_the_hand_computed_path_integral(lr, c, xi, capped):
    xs = [torch.tensor([1.0, -2.0, 0.5]), torch.tensor([1.5, 0.3, -1.0]), torch.tensor([2.0, -0.7, 0.1])]
    chunk1 = [(x, torch.tensor(ys)) for x, ys in zip(xs, ([0, 1, 0], [0, 0, 1], [1, 0, 0]), strict=True)]
    chunk2 = [(x, torch.tensor(ys)) for x, ys in zip(xs, ([1, 1, 0], [1, 0, 0], [0, 1, 1]), strict=True)]
    learner = make_learner("si", two_param_net(0.3, -0.2), c=c, xi=xi, lr=lr)
    cap = 1 / (2 * lr * c)  # the stiffness cap: 2·lr·c·Ω <= 1

    def feed(chunk):
        for x, y in chunk:
            learner.observe(Batch(x[:, None], y))
        learner.end_chunk()

    w0 = torch.tensor([0.3, -0.2], dtype=torch.float64)
    dbl = [(x.double(), y) for x, y in chunk1]
    w1, omega1 = hand_si(w0, dbl, lr, c, torch.zeros(2, dtype=torch.float64), w0)
    raw1 = omega1 / ((w1 - w0) ** 2 + xi)
    big1 = raw1.clamp(max=cap)
    assert bool((raw1 > cap).any()) == capped
    feed(chunk1)
    got = learner.term("si").penalty.importance["head.weight"].flatten().double()
    assert torch.allclose(got, big1, rtol=1e-4, atol=1e-7)
    assert (big1 > 0).all()  # without a penalty, ω = lr·Σ g² > 0

    # second chunk: the penalty is active, yet ω integrates the task gradient only
    dbl = [(x.double(), y) for x, y in chunk2]
    w2, omega2 = hand_si(w1, dbl, lr, c, big1, w1)
    feed(chunk2)
    expected = (big1 + omega2 / ((w2 - w1) ** 2 + xi)).clamp(max=cap)
    got = learner.term("si").penalty.importance["head.weight"].flatten().double()
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-7)
    assert torch.allclose(learner.term("si").penalty.anchor["head.weight"].flatten().double(), w2, atol=1e-6)


def stream_batches(ds, n_steps, batch=16, seed=0, relabel=None):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_steps):
        idx = torch.randint(len(ds.y_train), (batch,), generator=g)
        y = ds.y_train[idx] if relabel is None else relabel[ds.y_train[idx]]
        yield Batch(ds.x_train[idx], y)


def test_cls_er_stable_model_moves_less_than_plastic_and_serves_predictions():
    ds = tiny_dataset()
    model = mlp(ds.input_shape, ds.n_classes, hidden=(16,), seed=0)
    learner = make_learner("cls_er", model, seed=0, lr=0.1, mem_size=50, plastic_update_freq=1.0, plastic_alpha=0.99,
                           stable_update_freq=0.2, stable_alpha=0.999)
    init = torch.cat([p.detach().flatten() for p in model.parameters()])

    def moved(net):
        return float((torch.cat([p.detach().flatten() for p in net.parameters()]) - init).norm())

    for b in stream_batches(ds, 60):
        learner.observe(b)
    assert 0 < moved(learner.stable) < moved(learner.plastic) < moved(learner.model)
    x = ds.x_test[:7]
    assert torch.equal(learner.predict(x), learner.stable(x))


def test_cls_er_takes_per_sample_logits_of_the_surer_memory():
    ds = tiny_dataset()
    learner = make_learner("cls_er", mlp(ds.input_shape, ds.n_classes, hidden=(8,), seed=0), seed=0)
    with torch.no_grad():  # stable predicts class 0 strongly, plastic class 1
        for net, cls in ((learner.stable, 0), (learner.plastic, 1)):
            for p in net.parameters():
                p.zero_()
            net.head.bias[cls] = 5.0
    mb = Batch(ds.x_test[:4], torch.tensor([0, 1, 1, 0]))
    z = learner.semantic_logits(mb)
    assert torch.equal(z[[0, 3]], learner.stable(mb.x)[[0, 3]])
    assert torch.equal(z[[1, 2]], learner.plastic(mb.x)[[1, 2]])


def test_error_memory_returns_the_stored_residual_for_an_exact_key_and_is_bounded():
    ds = tiny_dataset()
    learner = make_learner("error_memory", mlp(ds.input_shape, ds.n_classes, hidden=(16,), seed=0), seed=0,
                           inner="naive", capacity=10, top_k=3, lam=1.0, sim_threshold=0.9999, conf_threshold=1.01)
    batch = Batch(ds.x_train[::40][:6], ds.y_train[::40][:6])  # one sample of each class
    p = torch.softmax(learner.inner.predict(batch.x), 1)
    learner.update_memory(batch)  # conf_threshold > 1: every sample is stored
    assert len(learner.store) == 6
    residual = torch.nn.functional.one_hot(batch.y, 6).float() - p
    correction = learner.correction(learner._keys(batch.x))
    assert torch.allclose(correction, residual, atol=1e-6)
    # the model did not move, so p + e is the one-hot label: the memory answers exactly
    assert torch.equal(learner.predict(batch.x).argmax(1), batch.y)
    assert torch.allclose(learner.predict(batch.x).exp().max(1).values, torch.ones(6), atol=1e-5)
    learner.clock += learner.half_life  # one half-life later the residual counts half
    assert torch.allclose(learner.correction(learner._keys(batch.x)), residual / 2, atol=1e-6)
    # bounded FIFO: 12 more rows evict the 6 first, size stays at capacity
    for _ in range(2):
        learner.update_memory(Batch(ds.x_train[1::40][:6], ds.y_train[1::40][:6]))
    assert len(learner.store) == 10
    assert torch.allclose(learner.correction(learner._keys(batch.x)), torch.zeros(6, 6))


def test_error_memory_corrects_a_relabelled_concept_before_any_gradient_step():
    ds = tiny_dataset()
    learner = make_learner("error_memory", mlp(ds.input_shape, ds.n_classes, hidden=(32,), seed=0), seed=0,
                           inner="naive", lr=0.1, capacity=200, sim_threshold=0.5)
    for b in stream_batches(ds, 150):
        learner.inner.observe(b)  # the slow model only
    shift = torch.tensor([1, 2, 3, 4, 5, 0])
    feedback = next(stream_batches(ds, 1, batch=120, seed=1, relabel=shift))
    test_y = shift[ds.y_test]
    before = float((learner.predict(ds.x_test).argmax(1) == test_y).float().mean())
    learner.update_memory(feedback)  # no gradient step
    after = float((learner.predict(ds.x_test).argmax(1) == test_y).float().mean())
    assert before < 0.3 and after > 0.7


def test_error_memory_builds_its_inner_learner_from_config_values():
    ds = tiny_dataset()
    learner = make_learner("error_memory", mlp(ds.input_shape, ds.n_classes, hidden=(8,), seed=0), seed=0,
                           inner="er", inner_hp={"mem_size": 7}, lr=0.02)
    assert learner.inner.name == "er" and learner.inner.mem_size == 7 and learner.inner.lr == 0.02
    with pytest.raises(ConfigError, match="inner must be"):
        make_learner("error_memory", mlp(ds.input_shape, ds.n_classes, hidden=(8,)), inner="joint")


def test_homeostatic_lr_rises_after_a_label_shift_and_relaxes_after():
    ds = tiny_dataset()
    learner = make_learner("homeostatic", mlp(ds.input_shape, ds.n_classes, hidden=(32,), seed=0), seed=0, lr=0.05)
    for b in stream_batches(ds, 200):
        learner.observe(b)
    settled = learner.multiplier
    shift = torch.tensor([1, 2, 3, 4, 5, 0])
    trace = []
    for b in stream_batches(ds, 300, seed=1, relabel=shift):
        learner.observe(b)
        trace.append((learner.multiplier, learner.opt.param_groups[0]["lr"]))
    assert settled < 1.1
    peak = max(m for m, _ in trace[:10])
    assert peak > 2.0  # the shift raised plasticity quickly
    assert max(lr for _, lr in trace[:10]) == pytest.approx(0.05 * peak)
    assert trace[-1][0] < 1.1  # and it relaxed once predictions were right again


def test_drift_detector_fires_on_a_loss_jump_spawns_an_expert_and_switches_back():
    ds = tiny_dataset()
    learner = make_learner("drift_experts", mlp(ds.input_shape, ds.n_classes, hidden=(32,), seed=0), seed=0, lr=0.1)
    for b in stream_batches(ds, 150):
        learner.observe(b)
    assert len(learner.experts) == 1
    shift = torch.tensor([1, 2, 3, 4, 5, 0])
    for b in stream_batches(ds, 150, seed=1, relabel=shift):
        learner.observe(b)
    assert any(150 <= s < 170 for s in learner.drift_steps)  # detected soon after the jump
    assert len(learner.experts) == 2 and learner.active == 1
    for b in stream_batches(ds, 60, seed=2):  # the first concept comes back
        learner.observe(b)
    assert len(learner.experts) == 2 and learner.active == 0  # switched back, no third expert


@pytest.mark.parametrize("detector", ["page_hinkley", "adwin"])
def test_drift_detector_state_survives_a_weights_only_checkpoint(tmp_path, detector):
    ds = tiny_dataset()
    shift = torch.tensor([1, 2, 3, 4, 5, 0])

    def build():
        return make_learner("drift_experts", mlp(ds.input_shape, ds.n_classes, hidden=(16,), seed=0), seed=0,
                            lr=0.1, response="plasticity", detector=detector)

    a = build()
    for b in stream_batches(ds, 80):
        a.observe(b)
    path = tmp_path / "state.pt"
    torch.save(a.state_dict(), path)
    b_ = build()
    b_.load_state_dict(torch.load(path, weights_only=True))
    assert b_.fed == a.fed and len(a.fed) > 30
    if detector == "adwin":  # the rebuilt window matches the original one
        assert (b_.detector.width, b_.detector.estimation) == (a.detector.width, a.detector.estimation)
    for batch in stream_batches(ds, 80, seed=1, relabel=shift):
        assert a.observe(batch) == b_.observe(batch)
    assert a.drift_steps == b_.drift_steps
    assert a.drift_steps or detector == "adwin"  # Page-Hinkley saw the jump (both at the same step)


def test_power_law_replay_probabilities_follow_the_law():
    ds = tiny_dataset()
    learner = make_learner("powerlaw", mlp(ds.input_shape, ds.n_classes, hidden=(8,), seed=0), seed=0,
                           mem_size=60, exponent=1.5)
    for k in range(3):  # three chunks of two classes each -> groups 0, 1, 2
        sel = (ds.y_train == 2 * k) | (ds.y_train == 2 * k + 1)
        learner.observe(Batch(ds.x_train[sel][:40], ds.y_train[sel][:40]))
        learner.end_chunk()
    assert learner.group == 3 and learner.past_groups().tolist() == [0, 1, 2]
    learner.t = 100
    learner.last_met[:3] = torch.tensor([0, 90, 99])
    groups, p = learner.replay_probabilities()
    w = torch.tensor([101.0, 11.0, 2.0], dtype=torch.float64) ** -1.5
    assert torch.allclose(p, w / w.sum())
    draws = []
    for _ in range(4000):  # one group per replay batch; restore the clocks between draws
        learner.last_met[:3] = torch.tensor([0, 90, 99])
        batch_groups = learner.draw_replay(5).extras["group"]
        assert len(set(batch_groups.tolist())) == 1
        draws.append(int(batch_groups[0]))
    freq = torch.bincount(torch.tensor(draws), minlength=3).double() / 4000
    assert torch.allclose(freq, p, atol=0.02)
    # only the drawn group was met now
    expected = [0, 90, 99]
    expected[draws[-1]] = 100
    assert learner.last_met[:3].tolist() == expected


def test_refresh_takes_an_ascent_step_before_the_descent_step():
    ds = tiny_dataset()
    batch = next(stream_batches(ds, 1))
    net = mlp(ds.input_shape, ds.n_classes, hidden=(8,), seed=0)
    learner = make_learner("refresh", net, seed=0, unlearn_lr=0.5, fisher_kappa=0.0)
    loss0 = float(learner.ce(net(batch.x), batch.y).detach())
    params = [p.detach().clone() for p in net.parameters()]
    grads = torch.autograd.grad(learner.ce(net(batch.x), batch.y), list(net.parameters()))
    learner.unlearn({k: g for (k, _), g in zip(net.named_parameters(), grads, strict=True)})
    assert float(learner.ce(net(batch.x), batch.y).detach()) > loss0  # unlearned
    for p, p0, g in zip(net.parameters(), params, grads, strict=True):
        assert torch.allclose(p - p0, 0.5 * g)  # κ = 0: a plain ascent step of size γ


@pytest.mark.parametrize("name", ["si", "mas", "l2"])
def test_regularisers_anchor_at_a_boundary_and_pull_back_after(name):
    ds = tiny_dataset()
    learner = make_learner(name, mlp(ds.input_shape, ds.n_classes, hidden=(8,), seed=0), seed=0, lr=0.05)
    penalty = learner.term(name).penalty
    assert not penalty
    for b in stream_batches(ds, 10):
        learner.observe(b)
    learner.end_chunk()
    assert penalty and float(penalty(learner.model).detach()) == 0.0  # anchored here
    for b in stream_batches(ds, 10, seed=1, relabel=torch.tensor([1, 2, 3, 4, 5, 0])):
        learner.observe(b)
    assert float(penalty(learner.model).detach()) > 0.0
    if name == "mas":  # non-negative by construction, and within the stiffness cap
        assert all(bool((w >= 0).all() and (w <= 1 / (2 * 0.05 * learner.mas_lambda)).all())
                   for w in penalty.importance.values())


def test_external_drift_alarms_reach_the_drift_responses(tiny):
    """The serving worker calls on_drift(); each adaptive learner answers it, and error memory
    passes it to its inner learner."""
    from lifelong.learn.methods import make_learner
    from lifelong.learn.nets import mlp
    from lifelong.data.scenarios import class_incremental

    stream = class_incremental(tiny, n_chunks=3)
    batches = list(stream.chunks[0].batches(8, torch.Generator().manual_seed(0)))

    def build(name, **hp):
        return make_learner(name, mlp(stream.input_shape, stream.n_classes, hidden=(16,), seed=0), seed=0, **hp)

    homeo = build("homeostatic")
    for b in batches[:4]:
        homeo.observe(b)
    before = homeo.fast_error
    homeo.on_drift()
    assert homeo.fast_error > before
    experts = build("drift_experts", response="experts")
    experts.observe(batches[0])
    experts.on_drift()
    experts.observe(batches[1])
    assert experts.drift_steps == [1] and not experts.pending_alarm
    wrapped = build("error_memory", inner="homeostatic")
    for b in batches[:4]:
        wrapped.observe(b)
    before = wrapped.inner.fast_error
    wrapped.on_drift()
    assert wrapped.inner.fast_error > before
