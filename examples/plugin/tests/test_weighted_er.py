"""The plugin's own tests: lifelong's contract checks, all at once and one pytest test per check."""

import pytest

from lifelong.testing import check_learner, learner_checks
from lifelong_example_plugin import WeightedER

CHECKS = learner_checks(WeightedER, mem_size=30)


def test_weighted_er_follows_the_learner_contract():
    check_learner(WeightedER, mem_size=30, replay_weight=0.5)


@pytest.mark.parametrize("check", [c for _, c in CHECKS], ids=[name for name, _ in CHECKS])
def test_each_check(check):
    check()
