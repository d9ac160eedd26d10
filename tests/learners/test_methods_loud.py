"""Methods that fail loudly: boundary learners refuse task-free streams; A-GEM vs A-GEM-R;
power-law rehearsal's schedule; GDumb's sampler admits new domains; ER-ACE with one class per chunk."""

from __future__ import annotations

import pytest
import torch

from lifelong.data.scenarios import blurry, class_incremental, online
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
    assert {"ewc", "si", "lwf", "mas", "icarl", "l2", "powerlaw"} <= set(BOUNDARY)
    assert not {"er", "der", "derpp", "er_ace", "cls_er", "gdumb", "naive"} & set(BOUNDARY)


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


@pytest.mark.parametrize("name", ["er", "der", "derpp", "er_ace", "cls_er"])
def test_a_task_free_learner_runs_on_an_online_stream(tiny, name):
    stream = online(tiny, n_chunks=3)
    hp = {"segment": 5} if name == "powerlaw" else {}
    learner = build(name, stream, **hp)
    records = list(iter_run(stream, learner, LoopConfig(batch_size=10), seed=0))
    assert sum(r.kind == "chunk_end" for r in records) == 3
    final = [r for r in records if r.kind == "eval" and r.chunk == 2]
    assert sum(r.n_correct for r in final) > 0
