"""The contract every memory must pass."""

from __future__ import annotations

import pytest
import torch

from lifelong.data import Batch
from lifelong.learn.memory import MEMORIES


def batch(n, start=0, dim=3):
    y = torch.arange(start, start + n) % 5
    return Batch(torch.arange(start, start + n, dtype=torch.float32).unsqueeze(1).repeat(1, dim), y)


@pytest.mark.parametrize("name", sorted(MEMORIES))
def test_capacity_is_never_exceeded_and_storage_preallocated(name):
    mem = MEMORIES[name](20, seed=0)
    mem.add(batch(7))
    buf = mem.x
    assert buf.shape == (20, 3)
    for i in range(10):
        mem.add(batch(7, start=7 * (i + 1)))
        assert len(mem) <= 20
    assert mem.x is buf  # preallocated once, written in place
    assert mem.n_seen == 77 and len(mem) == 20


@pytest.mark.parametrize("name", sorted(MEMORIES))
def test_samples_are_stored_pairs_and_sampling_uses_the_given_generator(name):
    mem = MEMORIES[name](10, seed=0)
    for i in range(5):
        mem.add(batch(6, start=6 * i), logits=torch.arange(6 * i, 6 * i + 6, dtype=torch.float32).unsqueeze(1))
    a = mem.sample(4, torch.Generator().manual_seed(7))
    b = mem.sample(4, torch.Generator().manual_seed(7))
    assert torch.equal(a.x, b.x)
    # x, y and extra fields stay aligned
    assert torch.equal(a.x[:, 0].long() % 5, a.y)
    assert torch.equal(a.extras["logits"][:, 0], a.x[:, 0])
    assert len(set(a.x[:, 0].tolist())) == 4  # without replacement


@pytest.mark.parametrize("name", sorted(MEMORIES))
def test_state_dict_round_trip(name, tmp_path):
    mem = MEMORIES[name](10, seed=0)
    for i in range(4):
        mem.add(batch(6, start=6 * i))
    torch.save(mem.state_dict(), tmp_path / "m.pt")
    clone = MEMORIES[name](10, seed=99)
    clone.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    for m in (mem, clone):
        m.add(batch(6, start=100))
    assert torch.equal(mem.all().x, clone.all().x)


@pytest.mark.parametrize("name", sorted(MEMORIES))
def test_does_not_mutate_or_alias_its_input(name):
    mem = MEMORIES[name](10, seed=0)
    b = batch(6)
    mem.add(b)
    b.x.add_(1000)
    assert float(mem.all().x.max()) < 1000
