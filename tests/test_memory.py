"""Oracle and statistical tests of the memories."""

from __future__ import annotations

import torch
from scipy import stats

from lifelong.data import Batch
from lifelong.learn.memory import ClassBalancedMemory, ReservoirMemory


def test_reservoir_inclusion_is_uniform():
    # After n samples each is kept with probability capacity/n. Count inclusions over many
    # independent reservoirs and test uniformity with a chi-square test.
    n, capacity, trials = 50, 10, 4000
    counts = torch.zeros(n)
    for t in range(trials):
        mem = ReservoirMemory(capacity, seed=t)
        for start in range(0, n, 7):  # odd batch size straddles the filling boundary
            idx = torch.arange(start, min(start + 7, n))
            mem.add(Batch(idx.float().unsqueeze(1), idx))
        counts[mem.all().y] += 1
    expected = trials * capacity / n
    assert abs(float(counts.mean()) - expected) < 1e-9  # exactly capacity kept per trial
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    p = 1 - stats.chi2.cdf(chi2, df=n - 1)
    assert p > 0.001, f"inclusion counts not uniform: chi2={chi2:.1f}, p={p:.2g}"
    # the first samples must not be over-represented (the classic off-by-one bug)
    assert abs(float(counts[:10].mean()) - expected) < 0.15 * expected


def test_reservoir_later_duplicate_slot_wins():
    mem = ReservoirMemory(1, seed=0)
    mem.add(Batch(torch.tensor([[0.0]]), torch.tensor([0])))
    kept = []
    for s in range(200):
        m = ReservoirMemory(1, seed=s)
        m.add(Batch(torch.tensor([[0.0], [1.0], [2.0]]), torch.tensor([0, 1, 2])))
        kept.append(int(m.all().y[0]))
    # each of the three is kept with probability 1/3
    freq = torch.bincount(torch.tensor(kept), minlength=3).float() / 200
    assert torch.all((freq > 0.22) & (freq < 0.45)), freq


def test_class_balanced_memory_balances_greedily():
    mem = ClassBalancedMemory(12, seed=0)
    y = torch.tensor([0] * 20)
    mem.add(Batch(torch.zeros(20, 2), y))
    assert len(mem) == 12 and mem.class_count == {0: 12}
    mem.add(Batch(torch.ones(10, 2), torch.tensor([1] * 10)))
    assert mem.class_count == {0: 6, 1: 6}
    mem.add(Batch(torch.full((10, 2), 2.0), torch.tensor([2] * 10)))
    assert mem.class_count == {0: 4, 1: 4, 2: 4}
    assert torch.equal(torch.bincount(mem.all().y), torch.tensor([4, 4, 4]))
    # stored inputs still match their labels
    assert torch.equal(mem.all().x[:, 0].long(), mem.all().y)
