"""The contract every registered learner must pass: :mod:`lifelong.testing`'s checks, one test per
(learner, check). A new learner file in ``lifelong/learn/methods/`` is covered automatically."""

from __future__ import annotations

import pytest

from lifelong.learn.methods import LEARNERS
from lifelong.testing import LEARNER_CHECKS, keyword_hyper_parameters, learner_checks

NAMES = sorted(LEARNERS)
CHECKS = [name for name, _ in LEARNER_CHECKS]
# Gentler settings where a method's default strength is tuned for real data, not this tiny stream;
# a small memory so that replay buffers fill and evict within the checks' few hundred samples.
CONTRACT_HP = {"ewc": {"ewc_lambda": 1.0}}
# Known violations, each to be fixed in the learner (strict: the test fails once it passes).
KNOWN = {
    ("drift_experts", "hyper_parameters_stored_as_given"): "self.detector holds the river detector, not the name given",
    ("error_memory", "hyper_parameters_stored_as_given"): "self.inner holds the inner learner, not the name given",
    ("icarl", "hyper_parameters_stored_as_given"): "self.chunk_buffer holds the buffer, not the size given",
}


def contract_hp(name: str) -> dict:
    hp = {"mem_size": 30} if "mem_size" in keyword_hyper_parameters(LEARNERS[name]) else {}
    return {**hp, **CONTRACT_HP.get(name, {})}


def cases():
    for name in NAMES:
        for check in CHECKS:
            marks = [pytest.mark.xfail(reason=KNOWN[name, check], strict=True)] if (name, check) in KNOWN else []
            yield pytest.param(name, check, id=f"{name}-{check}", marks=marks)


@pytest.mark.parametrize("name,check", list(cases()))
def test_learner_contract(name, check):
    dict(learner_checks(LEARNERS[name], **contract_hp(name)))[check]()
