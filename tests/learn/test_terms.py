"""The learner contract and composable loss terms: composition by configuration, its validation,
capability discovery by isinstance, and the sleep step."""

from __future__ import annotations

import copy
import pkgutil

import pytest
import torch
import torch.nn.functional as F

from lifelong.data import Batch
from lifelong.errors import CheckpointError, ConfigError
from lifelong.learn import base
from lifelong.learn.base import (
    LEARNERS,
    Consolidator,
    DriftAware,
    Learner,
    LearnerProtocol,
    MemoryUpdater,
    SleepStats,
)
from lifelong.learn.methods import builtin_learners, make_learner
from lifelong.learn.nets import mlp
from lifelong.learn.terms import TERMS, StepContext, Term, build_terms
from lifelong.serve.worker import has_drift_response, has_fast_path


def net(seed=0):
    return mlp((5,), 4, hidden=(6,), seed=seed)


def batch(seed, n=8, classes=4):
    g = torch.Generator().manual_seed(seed)
    return Batch(torch.randn(n, 5, generator=g), torch.randint(classes, (n,), generator=g))


def hand_sgd(model, loss, lr):
    """Parameters after one plain SGD step on ``loss`` (computed on ``model``)."""
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return [p.detach() - lr * g for p, g in zip(model.parameters(), grads, strict=True)]


# -- composition ----------------------------------------------------------------------------------
def test_er_plus_ewc_from_config_is_the_hand_computed_sum_of_its_terms():
    lam, lr = 3.0, 0.1
    learner = make_learner("er", net(), mem_size=20, lr=lr, seed=0, terms=[{"name": "ewc", "ewc_lambda": lam}])
    assert [t.name for t in learner.loss_terms] == ["ce", "replay_ce", "ewc"]
    for s in range(3):
        learner.observe(batch(s))
    learner.end_chunk()  # the EWC term consolidates a Fisher: its penalty is active from now on
    penalty = learner.term("ewc").penalty
    assert penalty and set(penalty.importance) == {k for k, _ in learner.model.named_parameters()}
    learner.observe(batch(4))  # away from the anchor, where the penalty's gradient is not zero

    b = batch(10)
    model = copy.deepcopy(learner.model)
    g = torch.Generator()
    g.set_state(learner.generator.get_state())
    mb = learner.memory.sample(len(b), g)  # the replay batch the learner will draw
    pen = sum((penalty.importance[k] * (p - penalty.anchor[k]) ** 2).sum() for k, p in model.named_parameters())
    loss = F.cross_entropy(model(b.x), b.y) + F.cross_entropy(model(mb.x), mb.y) + 0.5 * lam * pen
    assert float(pen.detach()) > 0
    expected = hand_sgd(model, loss, lr)
    learner.observe(b)
    for p, e in zip(learner.model.parameters(), expected, strict=True):
        assert torch.allclose(p.detach(), e, atol=1e-6)
    # and the EWC part mattered: without it the step differs
    no_pen = hand_sgd(model, F.cross_entropy(model(b.x), b.y) + F.cross_entropy(model(mb.x), mb.y), lr)
    assert not all(torch.allclose(p.detach(), e, atol=1e-6) for p, e in zip(learner.model.parameters(), no_pen))


def test_an_added_term_gives_the_same_step_as_the_method_that_has_it_built_in():
    """naive + l2 term == the l2 method, bit for bit (same terms, same order)."""
    composed = make_learner("naive", net(), seed=0, terms=[{"name": "l2", "l2_lambda": 0.5}])
    method = make_learner("l2", net(), seed=0, l2_lambda=0.5)
    for chunk in range(2):
        for s in range(3):
            assert composed.observe(batch(10 * chunk + s)) == method.observe(batch(10 * chunk + s))
        composed.end_chunk(), method.end_chunk()
    for p, q in zip(composed.model.parameters(), method.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_derpp_with_an_si_penalty_is_a_configuration():
    learner = make_learner("derpp", net(), mem_size=20, seed=0, terms=[{"name": "si", "c": 0.1}])
    assert [t.name for t in learner.loss_terms] == ["ce", "logit_replay", "si"]
    assert learner.needs_boundaries and not type(learner).needs_boundaries
    for s in range(3):
        learner.observe(batch(s))
    si = learner.term("si")
    assert any(bool(w.abs().sum() > 0) for w in si.omega.values())  # ω integrated the replayed steps
    before = copy.deepcopy(learner.state_dict()["terms"])
    learner.end_chunk()
    assert si.penalty and not torch.equal(before["2:si"]["omega"]["head.weight"], si.omega["head.weight"])


def test_term_state_survives_a_weights_only_checkpoint(tmp_path):
    hp = {"mem_size": 20, "seed": 0, "terms": [{"name": "ewc", "ewc_lambda": 1.0}, {"name": "lwf"}]}
    learner = make_learner("er", net(), **hp)
    for s in range(3):
        learner.observe(batch(s))
    learner.end_chunk()
    learner.observe(batch(5))
    torch.save(learner.state_dict(), tmp_path / "s.pt")
    clone = make_learner("er", net(seed=7), **{**hp, "seed": 9})
    clone.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert learner.observe(batch(6)) == clone.observe(batch(6))
    x = batch(7).x
    assert torch.equal(learner.predict(x), clone.predict(x))
    with pytest.raises(CheckpointError, match="loss terms"):
        make_learner("er", net(), mem_size=20).load_state_dict(learner.state_dict())


# -- validation -----------------------------------------------------------------------------------
def test_an_unknown_term_is_a_config_error_that_lists_the_terms_and_their_options():
    with pytest.raises(ConfigError, match="unknown loss term 'ewc2'") as err:
        make_learner("er", net(), terms=[{"name": "ewc2"}])
    assert "ewc (ewc_lambda, online, gamma, fisher, fisher_samples)" in str(err.value)
    assert "replay_ce (weight, replay_batch)" in str(err.value)


@pytest.mark.parametrize(("terms", "message"), [
    ([{"name": "ewc", "lam": 1.0}], "term 'ewc' has no option 'lam'; it accepts: ewc_lambda, fisher"),
    ([{"name": "ewc", "fisher_samples": 2.5}], "fisher_samples must be an integer, got 2.5"),
    ([{"name": "ewc", "fisher": "fake"}], "fisher must be 'true' or 'empirical'"),
    ([{"ewc_lambda": 1.0}], r"terms\[0\] must be a table with a string `name`"),
    ({"name": "ewc"}, "terms must be a list of tables"),
])
def test_bad_term_entries_say_what_to_fix(terms, message):
    with pytest.raises(ConfigError, match=message):
        make_learner("er", net(), terms=terms)


def test_term_options_are_typed_and_stored_as_given():
    learner = make_learner("er", net(), terms=[{"name": "ewc", "ewc_lambda": 2}])
    assert learner.terms == [{"name": "ewc", "ewc_lambda": 2}]  # the hyper-parameter, as given
    assert learner.term("ewc").ewc_lambda == 2.0 and isinstance(learner.term("ewc").ewc_lambda, float)


def test_methods_with_their_own_update_refuse_extra_terms():
    for name in ("agem", "cls_er", "gdumb", "icarl", "drift_experts", "error_memory"):
        with pytest.raises(ConfigError, match="takes no extra loss terms"):
            make_learner(name, net(), terms=[{"name": "l2"}])
    # error_memory's inner learner takes them
    wrapped = make_learner("error_memory", net(), inner="er", inner_hp={"terms": [{"name": "l2"}]})
    assert wrapped.needs_boundaries and [t.name for t in wrapped.inner.loss_terms] == ["ce", "replay_ce", "l2"]


def test_replay_without_a_memory_is_a_config_error():
    learner = make_learner("naive", net(), terms=[{"name": "replay_ce"}])
    with pytest.raises(ConfigError, match="replay_ce term replays from the learner's memory"):
        learner.observe(batch(0))


def test_a_term_registered_from_outside_composes():
    class Shrink(Term):
        """``w·Σ θ²`` (weight decay as a term)."""

        name = "test_shrink"

        def __init__(self, *, w: float = 0.01) -> None:
            self.w = w

        def __call__(self, ctx: StepContext) -> torch.Tensor:
            return self.w * sum((p**2).sum() for p in ctx.learner.model.parameters())

    TERMS.register("test_shrink", Shrink)
    try:
        (term,) = build_terms([{"name": "test_shrink", "w": 1}], owner="naive")
        assert isinstance(term, Shrink) and term.w == 1.0
        learner = make_learner("naive", net(), lr=0.1, terms=[{"name": "test_shrink", "w": 0.5}])
        model = copy.deepcopy(learner.model)
        b = batch(0)
        expected = hand_sgd(model, F.cross_entropy(model(b.x), b.y) + 0.5 * sum((p**2).sum() for p in model.parameters()), 0.1)
        learner.observe(b)
        for p, e in zip(learner.model.parameters(), expected, strict=True):
            assert torch.allclose(p.detach(), e, atol=1e-6)
    finally:
        del TERMS["test_shrink"]


# -- the contract ---------------------------------------------------------------------------------
def test_capabilities_are_discovered_by_isinstance():
    built = {name: make_learner(name, net()) for name in LEARNERS}
    assert all(isinstance(L, LearnerProtocol) and isinstance(L, Consolidator) for L in built.values())
    assert {n for n, L in built.items() if isinstance(L, MemoryUpdater)} == {"error_memory"}
    assert {n for n, L in built.items() if isinstance(L, DriftAware)} == {"homeostatic", "drift_experts", "error_memory"}
    assert has_fast_path(built["error_memory"]) and not has_fast_path(built["er"])
    assert has_drift_response(built["homeostatic"]) and not has_drift_response(built["ewc"])

    class Duck:  # a learner from outside needs no base class to declare a capability
        def on_drift(self) -> None: ...

    assert isinstance(Duck(), DriftAware) and not isinstance(Duck(), MemoryUpdater)


def test_needs_boundaries_is_declared_by_the_methods_whose_end_chunk_works():
    declared = {n for n, cls in LEARNERS.items() if cls.needs_boundaries}
    # gem fills its per-chunk memories, slda and ranpac freeze the backbone at the first boundary
    # (and ranpac chooses its ridge at each); ncm's default freezes the network at once; lucir, bic
    # and wa update their exemplars (and bic its bias layer, wa its head norms) at each boundary;
    # xder writes its memory and updates its stored logits
    assert declared == {"ewc", "si", "mas", "l2", "lwf", "icarl", "powerlaw", "agem", "gem", "slda", "ranpac",
                        "lucir", "bic", "wa", "xder"}
    assert make_learner("er", net(), terms=[{"name": "mas"}]).needs_boundaries
    assert not make_learner("er", net()).needs_boundaries


def test_stats_is_pure_and_observe_records_what_it_saw():
    learner = make_learner("naive", net())
    b = batch(0, classes=2)
    logits = learner.predict(b.x)
    loss = F.cross_entropy(logits, b.y)
    assert learner.stats(logits, b, loss) == learner.stats(logits, b, loss)
    assert learner.n_observed == 0 and not learner.seen_classes.any()
    learner.observe(b)
    assert learner.n_observed == len(b) and learner.seen_classes.tolist() == [True, True, False, False]


def test_every_method_module_is_registered_without_a_list():
    import lifelong.learn.methods as methods

    assert LEARNERS is base.LEARNERS and methods.LEARNERS is LEARNERS
    shipped = builtin_learners()  # plugins registered in this process live elsewhere
    for cls in shipped.values():
        assert issubclass(cls, Learner) and LEARNERS[cls.name] is cls
    # every module of the package contributes the learners it defines, with no list to edit
    modules = {m.name for m in pkgutil.iter_modules(methods.__path__)}
    assert {cls.__module__.rsplit(".", 1)[1] for cls in shipped.values()} == modules


# -- sleep ----------------------------------------------------------------------------------------
def test_consolidate_replays_from_memory_with_the_given_generator():
    learner = make_learner("er", net(), mem_size=30, seed=0)
    empty = learner.consolidate(batch(0), torch.Generator().manual_seed(0))
    assert isinstance(empty, SleepStats) and empty.source == "rehearsal" and empty.n == 8
    learner.observe(batch(1, n=20))
    own = learner.generator.get_state()
    n_seen = learner.memory.n_seen
    s = learner.consolidate(batch(2, n=5), torch.Generator().manual_seed(0))
    assert s.source == "memory" and s.n == 5
    assert torch.equal(learner.generator.get_state(), own)  # the learner's stream is untouched
    assert learner.memory.n_seen == n_seen  # the memory is not written


def test_consolidate_counts_the_replayed_batch_before_its_update():
    learner = make_learner("er", net(), mem_size=30, seed=0, lr=0.5)
    learner.observe(batch(1, n=20))
    g, g_copy = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    mb = learner.memory.sample(6, g_copy)
    logits = learner.predict(mb.x)
    s = learner.consolidate(batch(2, n=6), g)
    assert s.n_correct == int((logits.argmax(1) == mb.y).sum())
    assert s.loss_sum == pytest.approx(float(F.cross_entropy(logits, mb.y)) * 6, rel=1e-5)
    assert not torch.equal(learner.predict(mb.x), logits)  # then it trained on it


def test_quadratic_penalty_add_grad_equals_the_autograd_gradient_of_its_value():
    from lifelong.learn.terms import QuadraticPenalty

    net = mlp((5,), 3, hidden=(4,), seed=0)
    gen = torch.Generator().manual_seed(1)
    pen = QuadraticPenalty()
    pen.consolidate(net, {k: torch.rand(p.shape, generator=gen) for k, p in net.named_parameters()})
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen))
    pen.consolidate(net, {k: torch.rand(p.shape, generator=gen) for k, p in net.named_parameters()})  # sum of two
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen))
    expected = torch.autograd.grad(3.0 * pen(net), list(net.parameters()))
    for p in net.parameters():
        p.grad = torch.ones_like(p)  # add_grad adds to what is there
    pen.add_grad(net, 3.0)
    for p, e in zip(net.parameters(), expected, strict=True):
        assert torch.allclose(p.grad, e + 1.0, atol=1e-5)
    pen.cap(3.0, lr=0.5)  # a capped importance must not reuse the factors of the uncapped one
    capped = torch.autograd.grad(3.0 * pen(net), list(net.parameters()))
    net.zero_grad(set_to_none=True)
    pen.add_grad(net, 3.0)
    assert any(not torch.allclose(c, e) for c, e in zip(capped, expected, strict=True))
    for p, c in zip(net.parameters(), capped, strict=True):
        assert torch.allclose(p.grad, c, atol=1e-5)
