"""Methods that fail loudly: boundary learners refuse task-free streams; A-GEM vs A-GEM-R;
power-law rehearsal's schedule; GDumb's sampler admits new domains; ER-ACE with one class per chunk."""

from __future__ import annotations

import pytest
import torch

from lifelong.data import Dataset
from lifelong.data.scenarios import blurry, class_incremental, domain_incremental, online
from lifelong.errors import ConfigError
from lifelong.learn.loop import LoopConfig, iter_run
from lifelong.learn.methods import builtin_learners, make_learner
from lifelong.learn.nets import mlp

from tests.conftest import tiny_dataset

BOUNDARY = sorted(n for n, c in builtin_learners().items() if c.needs_boundaries)


def build(name, stream, seed=0, **hp):
    model = mlp(stream.input_shape, stream.n_classes, hidden=(16,), seed=seed)
    return make_learner(name, model, seed=seed, task_classes=stream.task_classes, **hp)


# -- 1. boundary learners on task-free streams ----------------------------------------------------
def test_the_boundary_learners_are_the_penalty_and_distillation_methods():
    assert {"ewc", "si", "lwf", "mas", "icarl", "l2", "agem", "powerlaw", "lucir", "bic", "wa"} <= set(BOUNDARY)
    assert not {"er", "der", "derpp", "er_ace", "cls_er", "agem_r", "gdumb", "naive"} & set(BOUNDARY)


@pytest.mark.parametrize("name", BOUNDARY)
def test_a_boundary_learner_refuses_an_online_stream(tiny, name):
    stream = online(tiny, n_chunks=3)
    learner = build(name, stream)
    with pytest.raises(ConfigError) as e:
        next(iter_run(stream, learner, LoopConfig(batch_size=10), seed=0))
    msg = str(e.value)
    assert repr(name) in msg and "'online'" in msg and "task-free" in msg
    assert "class_incremental" in msg and "er, der, derpp" in msg  # the fixes


def test_the_refusal_on_blurry_names_its_task_free_switch(tiny):
    stream = blurry(tiny, n_chunks=2)
    with pytest.raises(ConfigError, match=r"set task_free = false in \[scenario\] \(the 'blurry' scenario"):
        list(iter_run(stream, build("ewc", stream), LoopConfig(batch_size=10), seed=0))
    announced = blurry(tiny, n_chunks=2, task_free=False)
    records = list(iter_run(announced, build("ewc", announced), LoopConfig(batch_size=10), seed=0))
    assert records[-1].kind == "chunk_end"


@pytest.mark.parametrize("name", ["er", "der", "derpp", "er_ace", "cls_er", "agem_r"])
def test_a_task_free_learner_runs_on_an_online_stream(tiny, name):
    stream = online(tiny, n_chunks=3)
    hp = {"segment": 5} if name == "powerlaw" else {}
    learner = build(name, stream, **hp)
    records = list(iter_run(stream, learner, LoopConfig(batch_size=10), seed=0))
    assert sum(r.kind == "chunk_end" for r in records) == 3
    final = [r for r in records if r.kind == "eval" and r.chunk == 2]
    assert sum(r.n_correct for r in final) > 0


# -- 2. A-GEM (past chunks only) and A-GEM-R -----------------------------------------------------
def flat_params(learner):
    return torch.cat([p.detach().reshape(-1) for p in learner.model.parameters()])


def run_chunk(learner, stream, index, seed=0):
    g = torch.Generator().manual_seed(seed)
    for b in stream.chunks[index].batches(10, g):
        learner.observe(b)


def noise_stream(n_chunks=1):
    """Random inputs, balanced labels: hard enough that gradients of different batches conflict."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(240, 12, generator=g), torch.arange(6).repeat(40)
    return class_incremental(Dataset("noise", x, y, x[:60], y[:60]), n_chunks=n_chunks)


def test_agem_is_plain_sgd_in_the_first_chunk_and_agem_r_projects():
    stream = noise_stream()
    agem, naive, agem_r = (build(n, stream, lr=0.5) for n in ("agem", "naive", "agem_r"))
    for learner in (agem, naive, agem_r):
        run_chunk(learner, stream, 0)
    # chunk 0 is kept apart: no reference gradient, no projection, the same weights as naive
    assert len(agem.memory) == 0 and len(agem.pending) > 0
    assert agem.n_reference == agem.n_projected == 0
    assert torch.allclose(flat_params(agem), flat_params(naive), atol=1e-6)
    # A-GEM-R's reference memory takes the chunk as it streams: it projects within chunk 0
    assert agem_r.n_reference > 0 and agem_r.n_projected > 0
    assert not torch.allclose(flat_params(agem_r), flat_params(naive), atol=1e-4)


def test_agem_memory_never_holds_the_current_chunk(tiny):
    stream = class_incremental(tiny, n_chunks=3)
    learner = build("agem", stream, lr=0.1, mem_size=30)
    for i in range(3):
        run_chunk(learner, stream, i)
        stored = set(learner.memory.y[: len(learner.memory)].tolist())
        assert not stored & set(stream.chunks[i].classes), f"chunk {i}'s classes are in the reference memory"
        assert stored == set(c for k in range(i) for c in stream.chunks[k].classes)
        learner.end_chunk()
    stored = set(learner.memory.y[: len(learner.memory)].tolist())
    assert stored == set(range(6))  # after the last boundary every chunk has joined


def test_agem_projects_after_the_first_boundary(tiny):
    stream = class_incremental(tiny, n_chunks=3)
    agem, naive = build("agem", stream, lr=0.5), build("naive", stream, lr=0.5)
    for learner in (agem, naive):
        run_chunk(learner, stream, 0)
        learner.end_chunk()
        run_chunk(learner, stream, 1)
    assert not torch.allclose(flat_params(agem), flat_params(naive), atol=1e-4)


# -- 3. power-law rehearsal ----------------------------------------------------------------------
def powerlaw_run(tiny, exponent, seed=0):
    stream = class_incremental(tiny, n_chunks=3)
    learner = build("powerlaw", stream, seed=seed, exponent=exponent, mem_size=60, lr=0.1)
    records = list(iter_run(stream, learner, LoopConfig(epochs=2, batch_size=10), seed=seed))
    last = [r for r in records if r.kind == "eval" and r.chunk == 2 and r.boundary]
    return learner, sum(r.n_correct for r in last) / sum(r.n for r in last)


def test_powerlaw_probabilities_follow_the_law_of_the_ages(tiny):
    stream = class_incremental(tiny, n_chunks=3)
    learner = build("powerlaw", stream, exponent=2.0)
    run_chunk(learner, stream, 0)
    learner.end_chunk()
    run_chunk(learner, stream, 1)
    learner.end_chunk()
    learner.last_met = torch.tensor([learner.t - 9, learner.t - 1, learner.t])  # ages 9, 1 (group 2 is current)
    groups, p = learner.replay_probabilities()
    assert groups.tolist() == [0, 1]
    w = torch.tensor([10.0 ** -2, 2.0 ** -2], dtype=torch.float64)
    assert torch.allclose(p, w / w.sum())


def test_powerlaw_resets_only_the_drawn_groups_clock(tiny):
    stream = class_incremental(tiny, n_chunks=3)
    learner = build("powerlaw", stream, exponent=1.0)
    for i in range(2):
        run_chunk(learner, stream, i)
        learner.end_chunk()
    before, counts = learner.last_met.clone(), learner.replay_counts.clone()
    learner.t += 5
    mb = learner.draw_replay(10)
    changed = (learner.last_met != before).nonzero().flatten().tolist()
    assert len(changed) == 1 and learner.last_met[changed[0]] == learner.t
    assert (learner.replay_counts - counts).tolist() == [int(g == changed[0]) for g in range(3)]
    # the replay batch is that group's samples only
    assert set(mb.y.tolist()) <= set(stream.chunks[changed[0]].classes)


def test_the_exponent_shapes_what_is_replayed_in_a_run(tiny):
    flat, flat_acc = powerlaw_run(tiny, 0.0)
    steep, steep_acc = powerlaw_run(tiny, 3.0)
    # chunk 1 can replay only group 0; in chunk 2 the law picks between groups 0 and 1. At alpha=3
    # the group met last (1) is drawn far more often; at alpha=0 the draws are uniform.
    n = int(flat.replay_counts.sum())
    assert n == int(steep.replay_counts.sum()) > 0
    assert not torch.equal(flat.replay_counts, steep.replay_counts)
    assert steep.replay_counts[1] > flat.replay_counts[1]
    chunk1_steps = n // 2  # both chunks with replay have the same number of steps
    in_chunk2_flat = (flat.replay_counts[0] - chunk1_steps, flat.replay_counts[1])
    assert abs(int(in_chunk2_flat[0]) - int(in_chunk2_flat[1])) <= chunk1_steps // 2  # roughly uniform
    assert steep.replay_counts[1] >= 0.8 * chunk1_steps  # almost only the last group
    assert flat_acc != steep_acc


def test_powerlaw_with_segments_needs_no_boundaries(tiny):
    stream = online(tiny, n_chunks=3)
    learner = build("powerlaw", stream, segment=5)
    assert learner.needs_boundaries is False and build("powerlaw", stream).needs_boundaries is True
    list(iter_run(stream, learner, LoopConfig(batch_size=10), seed=0))
    assert learner.group == learner.t // 5 and int(learner.replay_counts.sum()) > 0


# -- 4. GDumb keeps admitting new domains --------------------------------------------------------
def domains_held(memory, stream):
    """For each stored sample, the chunk (domain) whose training inputs contain it."""
    held = []
    for x in memory.x[: len(memory)]:
        held.append(next(i for i, c in enumerate(stream.chunks) if (c.x == x).all(1).any()))
    return held


def test_gdumb_memory_takes_in_the_last_domain(tiny):
    stream = domain_incremental(tiny, n_chunks=4)
    mem = 30
    assert all(len(c.y) > mem for c in stream.chunks)  # the memory is smaller than one domain
    learner = build("gdumb", stream, mem_size=mem, epochs=1)
    for i in range(4):
        run_chunk(learner, stream, i)
    held = domains_held(learner.memory, stream)
    assert len(held) == mem
    assert held.count(3) > 0, "no sample of the last domain entered the memory"
    assert len(set(held)) >= 3  # and the earlier domains are not all flushed out
    counts = list(learner.memory.class_count.values())
    assert max(counts) - min(counts) <= 1  # still class-balanced
    assert sorted(learner.memory.y[:mem].tolist()) == sorted(
        c for c, n in learner.memory.class_count.items() for _ in range(n))


def test_gdumb_memory_still_balances_new_classes(tiny):
    stream = class_incremental(tiny, n_chunks=3)
    learner = build("gdumb", stream, mem_size=12, epochs=1)
    for i in range(3):
        run_chunk(learner, stream, i)
        seen = [c for k in range(i + 1) for c in stream.chunks[k].classes]
        assert learner.memory.class_count == {c: 12 // len(seen) for c in seen}


# -- 5. ER-ACE with one class per chunk -----------------------------------------------------------
def test_er_ace_incoming_loss_is_degenerate_with_one_class_and_seen_mask_keeps_unmet_classes(tiny):
    from lifelong.learn.methods.er_ace import ERACE

    stream = class_incremental(tiny, n_chunks=6)  # one class per chunk
    b = next(stream.chunks[0].batches(10, torch.Generator().manual_seed(0)))
    for mask, expect_zero in (("batch", True), ("seen", False)):
        learner = build("er_ace", stream, incoming_mask=mask)
        assert isinstance(learner, ERACE)
        ctx = learner.context(b)
        loss = learner.term("asymmetric_ce")(ctx)
        assert (float(loss.detach()) == 0.0) == expect_zero
    # "seen": once every class has been met, the one-class incoming loss is degenerate too
    learner = build("er_ace", stream, incoming_mask="seen")
    learner.seen_classes[:] = True
    assert float(learner.term("asymmetric_ce")(learner.context(b)).detach()) == 0.0


@pytest.mark.parametrize("mask", ["batch", "seen"])
def test_er_ace_still_learns_with_one_class_per_chunk(tiny, mask):
    stream = class_incremental(tiny, n_chunks=6)
    learner = build("er_ace", stream, incoming_mask=mask, mem_size=60, lr=0.1)
    records = list(iter_run(stream, learner, LoopConfig(epochs=2, batch_size=10), seed=0))
    final = [r for r in records if r.kind == "eval" and r.chunk == 5 and r.boundary]
    acc = sum(r.n_correct for r in final) / sum(r.n for r in final)
    assert acc > 0.5  # chance is 1/6; naive fine-tuning ends near it


def test_er_ace_rejects_an_unknown_mask(tiny):
    with pytest.raises(ConfigError, match="incoming_mask"):
        build("er_ace", class_incremental(tiny, n_chunks=3), incoming_mask="task")


@pytest.mark.parametrize("name", ["er", "agem", "gem", "naive"])
def test_a_guarded_learner_skips_a_step_whose_gradient_is_not_finite(name):
    """``guard_gradients`` (on in ``lifelong serve``): a finite loss whose gradient is NaN or inf
    raises TrainingDiverged and leaves the weights as they were; unguarded, the weights go NaN."""
    from lifelong.data import Batch
    from lifelong.learn.base import TrainingDiverged
    from lifelong.learn.methods import make_learner
    from lifelong.learn.nets import mlp

    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(8, 5, generator=g), torch.arange(8) % 2)
    for guarded in (True, False):
        kw = {"mem_size": 20} if name != "naive" else {}
        learner = make_learner(name, mlp((5,), 2, seed=0), seed=0, **kw)
        learner.guard_gradients = guarded
        learner.observe(batch)
        before = [p.detach().clone() for p in learner.model.parameters()]
        first = next(learner.model.parameters())
        hook = first.register_hook(lambda grad: grad * float("inf"))
        if guarded:
            with pytest.raises(TrainingDiverged, match="gradient became NaN or infinite"):
                learner.observe(batch)
            assert all(torch.equal(a, b) for a, b in zip(before, learner.model.parameters(), strict=True))
        else:
            learner.observe(batch)
            assert not bool(torch.isfinite(first).all())
        hook.remove()

