"""The contract every memory must pass: :mod:`lifelong.testing`'s memory checks, one test per
(memory, check)."""

from __future__ import annotations

import pytest

from lifelong.learn.memory import MEMORIES
from lifelong.testing import MEMORY_CHECKS, memory_checks


@pytest.mark.parametrize("name", sorted(MEMORIES))
@pytest.mark.parametrize("check", [name for name, _ in MEMORY_CHECKS])
def test_memory_contract(name, check):
    dict(memory_checks(MEMORIES[name]))[check]()
