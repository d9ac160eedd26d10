"""One forward pass per step: incoming and replay batches share one call of the network when it
has no batch statistics, with the same losses and the same update as one call per batch."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lifelong.data import Batch
from lifelong.learn.methods.der import DER, DERPP
from lifelong.learn.methods.er import ER
from lifelong.learn.methods.er_ace import ERACE
from lifelong.learn.nets import mlp


class BNNet(nn.Module):
    """A small network with batch statistics and the linear ``head`` the learners need."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.body = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.head = nn.Linear(8, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)

    def forward(self, x):
        return self.head(self.body(x))


def batches(n: int, seed: int = 1) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    return [Batch(torch.randn(6, 4, generator=g), torch.randint(3, (6,), generator=g)) for _ in range(n)]


def count_calls(model: nn.Module) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("cls", [ER, ERACE, DER, DERPP])
def test_one_call_per_step_with_the_same_update_as_one_call_per_batch(cls):
    fused = cls(mlp((4,), 3, hidden=(8,), seed=0), mem_size=12, seed=0)
    apart = copy.deepcopy(fused)
    apart.fused_forward = False
    calls = count_calls(fused.model)
    calls_apart = count_calls(apart.model)
    stream = batches(6)
    for b in stream:
        s1, s2 = fused.observe(b), apart.observe(b)
        assert s1.n_correct == s2.n_correct and s1.loss_sum == pytest.approx(s2.loss_sum, abs=1e-5)
    assert fused.fused_forward and calls[0] == len(stream)  # the first step has an empty memory
    draws_per_step = 2 if cls is DERPP else 1
    assert calls_apart[0] == len(stream) + (len(stream) - 1) * draws_per_step
    for p, q in zip(fused.model.parameters(), apart.model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-5)


def test_batch_statistics_keep_one_call_per_batch():
    learner = ER(BNNet(), mem_size=12, seed=0)
    assert not learner.fused_forward
    calls = count_calls(learner.model)
    for b in batches(3):
        learner.observe(b)
    assert calls[0] == 3 + 2  # incoming each step, replay once the memory holds samples
