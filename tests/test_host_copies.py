"""No hidden per-step copies or host syncs in the training step (issue 12): torch.profiler on a few
ER and DER++ steps on the CPU counts the copy operators and the scalar reads of each step.

The copy operators (``aten::copy_``, ``aten::_to_copy``, ``aten::to``) are counted with their
input shapes. Their number per step must be the same whether 4 or 8 steps are profiled (nothing
grows with the run) and whether the memory holds 40 or 400 samples, and the largest tensor any of
them moves must be batch-sized whatever the memory's size (nothing copies the buffer). The host syncs (``aten::item``, whose kernel is
``aten::_local_scalar_dense``) are a fixed handful per step: the two ends of the label range check,
the loss check, and the record's correct count and loss sum. On the CPU a host-device copy cannot
happen, so this bounds the copy sites: on an accelerator the same operators are the transfers.
"""

from __future__ import annotations

import collections
import math

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from lifelong.data import Batch
from lifelong.learn.methods import make_learner
from lifelong.learn.nets import build_model

COPIES = ("aten::copy_", "aten::_to_copy", "aten::to")
SYNCS = ("aten::item", "aten::_local_scalar_dense")
#: per step: label check (min, max), loss check, correct count, loss sum
SCALAR_READS_PER_STEP = 5
BATCH = 10


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(20 * BATCH, 3, 8, 8, generator=g), torch.randint(0, 4, (20 * BATCH,), generator=g)


def _profile(name: str, mem_size: int, *n_steps: int) -> list[tuple[collections.Counter, collections.Counter]]:
    """For each of ``n_steps``, one profile of that many consecutive steps (after 4 warm-up steps,
    which fill a 40-sample memory, so the replay batches are full-size): the calls, and the
    elements of the largest input, by operator."""
    x, y = _data()
    net = build_model("resnet18", (3, 8, 8), 4, seed=0, nf=2)  # BatchNorm: one forward call per batch
    learner = make_learner(name, net, seed=0, mem_size=mem_size, augment="crop_flip")
    step = 0

    def steps(k: int) -> None:
        nonlocal step
        for i in range(step, step + k):
            learner.observe(Batch(x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]))
        step += k

    steps(4)
    out = []
    for k in n_steps:
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            steps(k)
        calls, largest = collections.Counter(), collections.Counter()
        for event in prof.events():
            if event.name in COPIES or event.name in SYNCS:
                calls[event.name] += 1
                shapes = event.input_shapes or [[]]
                largest[event.name] = max(largest[event.name], math.prod(shapes[0]) if shapes[0] else 0)
        out.append((calls, largest))
    return out


@pytest.mark.parametrize("name", ["er", "derpp"])
def test_copies_and_host_syncs_per_step_are_constant(name):
    (calls2, largest2), (calls4, _) = _profile(name, 40, 2, 4)
    for op in (*COPIES, *SYNCS):
        assert calls4[op] == 2 * calls2[op], (op, calls2[op], calls4[op])  # a fixed number per step
    for op in SYNCS:
        assert calls2[op] == SCALAR_READS_PER_STEP * 2, (op, calls2[op])
    # the copies move batch-sized tensors, never the memory: with a ten times larger buffer (400
    # samples of 192 values, 76,800) the largest copy is still at most a padded batch
    [(calls_big, largest_big)] = _profile(name, 400, 2)
    padded_batch = 2 * BATCH * 3 * 16 * 16  # an incoming and a replay batch, padded by 4 for the crop
    for op in COPIES:
        assert calls_big[op] == calls2[op], (op, calls2[op], calls_big[op])
        assert max(largest2[op], largest_big[op]) <= padded_batch, (op, largest2[op], largest_big[op])
