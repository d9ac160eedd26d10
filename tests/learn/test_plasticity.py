"""Plasticity: the measurements on hand-built cases, and the remedies' defining steps."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lifelong.data import Batch, Dataset
from lifelong.data.scenarios import build_stream, label_permuted
from lifelong.errors import ConfigError
from lifelong.evaluate.plasticity import dormant_fraction, effective_rank, relu_units, unit_activity
from lifelong.learn.methods import make_learner
from lifelong.learn.nets import mlp


def hand_net() -> nn.Sequential:
    """1 → 3 → 1; unit activations on x > 0: x, 0 (dead), 0.01·x."""
    net = nn.Sequential(nn.Linear(1, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0], [-1.0], [0.01]]))
        net[0].bias.zero_()
    return net


X1 = torch.tensor([[1.0], [2.0]])


def test_dormant_fraction_is_redos_normalised_score_on_a_hand_built_net():
    # means 1.5, 0, 0.015; layer mean 0.505; scores 2.97, 0, 0.0297
    assert dormant_fraction(hand_net(), X1, tau=0.0) == pytest.approx(1 / 3)
    assert dormant_fraction(hand_net(), X1, tau=0.02) == pytest.approx(1 / 3)
    assert dormant_fraction(hand_net(), X1, tau=0.03) == pytest.approx(2 / 3)
    assert dormant_fraction(hand_net(), X1, tau=3.0) == pytest.approx(1.0)


def test_dormant_fraction_pools_the_units_of_every_hidden_layer():
    net = nn.Sequential(nn.Linear(1, 3), nn.ReLU(), nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0], [-1.0], [0.01]]))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]))
        net[2].bias.zero_()
    assert [u.size for u in relu_units(net)] == [3, 2]
    acts = unit_activity(net, X1)
    assert torch.allclose(acts[0], torch.tensor([1.5, 0.0, 0.015])) and torch.allclose(acts[1], torch.tensor([1.5, 0.0]))
    assert dormant_fraction(net, X1) == pytest.approx(2 / 5)


def test_a_layer_of_dead_units_is_all_dormant_and_a_model_without_relu_layers_is_refused():
    net = hand_net()
    with torch.no_grad():
        net[0].weight.fill_(-1.0)
    assert dormant_fraction(net, X1) == 1.0
    with pytest.raises(ConfigError, match="no hidden nn.Linear"):
        dormant_fraction(nn.Linear(2, 2), torch.zeros(1, 2))


def test_effective_rank_is_the_exponential_of_the_singular_value_entropy():
    assert effective_rank(torch.eye(5)) == pytest.approx(5.0)
    assert effective_rank(7 * torch.eye(5)) == pytest.approx(5.0)  # scale-free
    assert effective_rank(torch.outer(torch.arange(1.0, 5.0), torch.tensor([1.0, -2.0, 3.0]))) == pytest.approx(1.0)
    p = torch.tensor([0.75, 0.25])
    assert effective_rank(torch.diag(torch.tensor([3.0, 1.0, 0.0]))) == pytest.approx(math.exp(float(-(p * p.log()).sum())))
    assert effective_rank(torch.zeros(3, 2)) == 0.0
    q = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0)))[0]  # rotation-invariant
    assert effective_rank(torch.diag(torch.tensor([3.0, 1.0, 0, 0, 0, 0])) @ q) == pytest.approx(effective_rank(torch.diag(torch.tensor([3.0, 1.0]))))


# -- remedies -------------------------------------------------------------------------------------
def learner_with(terms, *, hidden=(8,), momentum=0.0, seed=0):
    return make_learner("naive", mlp((4,), 3, hidden=hidden, seed=seed), seed=seed, momentum=momentum, terms=terms)


def data(n=32, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)


def kill(learner, unit=2):
    lin = learner.model.body[1]
    with torch.no_grad():
        lin.weight[unit] = 0.0
        lin.bias[unit] = -1.0  # never active


def test_redo_revives_a_dead_unit_without_changing_the_output_at_the_reset():
    learner = learner_with([{"name": "redo", "every": 1, "tau": 0.0}])
    x, _ = data()
    kill(learner)
    redo = learner.term("redo")
    lin, head = learner.model.body[1], learner.model.head
    before_out, before_w = learner.model(x).detach(), lin.weight.detach().clone()
    assert unit_activity(learner.model, x)[0][2] == 0
    assert redo.recycle(learner, x) == 1
    assert torch.equal(learner.model(x).detach(), before_out)  # outgoing weights are zero
    assert torch.equal(head.weight[:, 2], torch.zeros(3))
    assert unit_activity(learner.model, x)[0][2] > 0  # revived
    assert not torch.equal(lin.weight[2], before_w[2])
    others = [i for i in range(8) if i != 2]
    assert torch.equal(lin.weight[others], before_w[others])  # only the dormant unit is touched
    assert dormant_fraction(learner.model, x) == 0.0


def test_redo_recycles_a_tau_dormant_unit_that_still_fires_and_leaves_the_active_ones():
    learner = learner_with([{"name": "redo", "tau": 0.1}])
    lin, head = learner.model.body[1], learner.model.head
    x = data()[0].abs()  # positive inputs: a unit with positive weights is active on every sample
    with torch.no_grad():
        lin.weight.fill_(0.5)
        lin.bias.fill_(0.1)
        lin.weight[5] = 0.002  # alive (> 0 on every input) but its score is about 0.01
        lin.bias[5] = 0.0
    acts = unit_activity(learner.model, x)[0]
    assert acts[5] > 0 and acts[5] / acts.mean() < 0.1
    before_w, before_head = lin.weight.detach().clone(), head.weight.detach().clone()
    assert learner.term("redo").recycle(learner, x) == 1
    assert not torch.equal(lin.weight[5], before_w[5]) and torch.equal(head.weight[:, 5], torch.zeros(3))
    active = [i for i in range(8) if i != 5]
    assert torch.equal(lin.weight[active], before_w[active]) and torch.equal(head.weight[:, active], before_head[:, active])
    assert learner.term("redo").n_reset == 1


def test_redo_acts_every_n_updates_from_observe_and_zeroes_the_momentum_of_what_it_resets():
    x, y = data()
    learner = learner_with([{"name": "redo", "every": 2, "tau": 0.0}], momentum=0.9)
    kill(learner)
    learner.observe(Batch(x, y))
    assert unit_activity(learner.model, x)[0][2] == 0  # not yet: every 2 updates
    learner.observe(Batch(x, y))
    assert unit_activity(learner.model, x)[0][2] > 0 and learner.term("redo").n_reset == 1
    buf = learner.opt.state[learner.model.head.weight]["momentum_buffer"]
    assert torch.equal(buf[:, 2], torch.zeros(3))
    plain = learner_with(None)
    kill(plain)
    for _ in range(2):
        plain.observe(Batch(x, y))
    assert unit_activity(plain.model, x)[0][2] == 0  # SGD alone never revives it


def test_redo_draws_from_the_learners_generator():
    x, _ = data()
    a, b = learner_with([{"name": "redo", "tau": 0.0}], seed=3), learner_with([{"name": "redo", "tau": 0.0}], seed=3)
    for lr in (a, b):
        kill(lr)
        lr.term("redo").recycle(lr, x)
    assert torch.equal(a.model.body[1].weight, b.model.body[1].weight)
    torch.manual_seed(123)  # the global RNG plays no part
    c = learner_with([{"name": "redo", "tau": 0.0}], seed=3)
    kill(c)
    c.term("redo").recycle(c, x)
    assert torch.equal(a.model.body[1].weight, c.model.body[1].weight)


def test_shrink_perturb_scales_every_parameter_at_the_boundary_and_adds_seeded_noise():
    learner = learner_with([{"name": "shrink_perturb", "shrink": 0.5, "noise": 0.0}])
    assert learner.needs_boundaries
    before = [p.detach().clone() for p in learner.model.parameters()]
    learner.end_chunk()
    assert all(torch.equal(p, 0.5 * b) for p, b in zip(learner.model.parameters(), before))
    a, b = (learner_with([{"name": "shrink_perturb", "shrink": 0.5, "noise": 0.1}], seed=4) for _ in range(2))
    a.end_chunk(), b.end_chunk()
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    noise = [p.detach() - 0.5 * q.detach() for p, q in zip(a.model.parameters(), mlp((4,), 3, hidden=(8,), seed=4).parameters())]
    assert 0.05 < float(torch.cat([n.flatten() for n in noise]).std()) < 0.2


def test_shrink_perturb_every_n_updates_is_task_free():
    x, y = data()
    learner = learner_with([{"name": "shrink_perturb", "shrink": 0.5, "noise": 0.0, "every": 2}])
    assert not learner.needs_boundaries
    learner.observe(Batch(x, y))
    after_one = [p.detach().clone() for p in learner.model.parameters()]
    learner.end_chunk()  # does nothing in this mode
    assert all(torch.equal(p, q) for p, q in zip(learner.model.parameters(), after_one))
    learner.observe(Batch(x, y))
    assert learner.term("shrink_perturb").n_applied == 1


def test_continual_backprop_replaces_the_lowest_utility_mature_unit():
    x, y = data()
    # 8 units, rate 1/8: exactly one replacement due per update once all are mature
    learner = learner_with([{"name": "continual_backprop", "replacement_rate": 0.125, "maturity": 0, "decay": 0.5}])
    kill(learner)
    cbp = learner.term("continual_backprop")
    learner.observe(Batch(x, y))
    assert cbp.n_reset == 1
    assert unit_activity(learner.model, x)[0][2] > 0  # the dead unit had the lowest utility
    assert torch.equal(learner.model.head.weight[:, 2], torch.zeros(3))
    assert cbp.age[0][2] == 0 and cbp.age[0].sum() == 7
    young = learner_with([{"name": "continual_backprop", "replacement_rate": 0.125, "maturity": 5}])
    kill(young)
    young.observe(Batch(x, y))
    assert young.term("continual_backprop").n_reset == 0  # immature units are protected
    assert unit_activity(young.model, x)[0][2] == 0


def test_remedy_state_survives_a_weights_only_checkpoint(tmp_path):
    x, y = data()
    terms = [{"name": "redo", "every": 3}, {"name": "shrink_perturb", "every": 4},
             {"name": "continual_backprop", "replacement_rate": 0.05, "maturity": 2}]
    a = learner_with(terms, hidden=(8, 8))
    for _ in range(5):
        a.observe(Batch(x, y))
    torch.save(a.state_dict(), tmp_path / "ck.pt")
    b = learner_with(terms, hidden=(8, 8))
    b.load_state_dict(torch.load(tmp_path / "ck.pt", weights_only=True))
    for _ in range(7):
        a.observe(Batch(x, y))
        b.observe(Batch(x, y))
    assert all(torch.equal(p, q) for p, q in zip(a.model.parameters(), b.model.parameters()))
    assert a.state_dict()["terms"].keys() == b.state_dict()["terms"].keys()
    assert a.term("continual_backprop").n_reset == b.term("continual_backprop").n_reset > 0


@pytest.mark.parametrize("term, message", [
    ({"name": "redo", "every": 0}, "every must be >= 1"),
    ({"name": "shrink_perturb", "shrink": 1.5}, "shrink must be in"),
    ({"name": "continual_backprop", "decay": 1.0}, "decay must be in"),
])
def test_bad_remedy_options_say_what_to_fix(term, message):
    with pytest.raises(ConfigError, match=message):
        learner_with([term])


# -- the long stream ------------------------------------------------------------------------------
def test_label_permuted_relabels_the_same_inputs_by_a_seeded_permutation_per_task():
    g = torch.Generator().manual_seed(0)
    ds = Dataset("toy", torch.randn(40, 3, generator=g), torch.arange(40) % 4, torch.randn(8, 3, generator=g),
                 torch.arange(8) % 4)
    s = label_permuted(ds, n_chunks=6, seed=2)
    assert len(s.chunks) == len(s.eval_sets) == 6
    perms = s.info["permutations"]
    assert len({tuple(p) for p in perms}) > 1
    for c, e, p in zip(s.chunks, s.eval_sets, perms):
        assert torch.equal(c.x, ds.x_train) and torch.equal(c.y, torch.tensor(p)[ds.y_train])
        assert torch.equal(e.y, torch.tensor(p)[ds.y_test]) and sorted(p) == [0, 1, 2, 3]
    again = build_stream("label_permuted", ds, seed=2, n_chunks=6)
    assert again.info["permutations"] == perms
