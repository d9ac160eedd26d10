"""Learners: one file per method, registered in :data:`LEARNERS` by their short name."""

from __future__ import annotations

import inspect

from torch import nn

from lifelong.errors import ConfigError
from lifelong.learners.base import Learner, LearnerProtocol, StepStats, derive_seed
from lifelong.learners.cumulative import Cumulative
from lifelong.learners.er import ER
from lifelong.learners.ewc import EWC
from lifelong.learners.joint import Joint
from lifelong.learners.lwf import LwF
from lifelong.learners.naive import Naive

LEARNERS: dict[str, type[Learner]] = {
    cls.name: cls for cls in (Naive, Joint, Cumulative, ER, EWC, LwF)
}


def hyperparameters(cls: type[Learner]) -> dict[str, object]:
    """Keyword hyper-parameters a learner accepts, with their defaults (its own and the base's)."""
    out: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass) and issubclass(klass, Learner):
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind is p.KEYWORD_ONLY:
                    out[p.name] = p.default
    return out


def make_learner(name: str, model: nn.Module, **hparams: object) -> Learner:
    """Build a registered learner; unknown names or hyper-parameters raise :class:`ConfigError`."""
    if name not in LEARNERS:
        raise ConfigError(f"unknown learner {name!r}; choose one of: {', '.join(sorted(LEARNERS))}")
    cls = LEARNERS[name]
    known = hyperparameters(cls)
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise ConfigError(
            f"learner {name!r} has no hyper-parameter {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(sorted(k for k in known if k not in ('seed', 'task_classes')))}"
        )
    return cls(model, **hparams)


__all__ = ["LEARNERS", "Learner", "LearnerProtocol", "StepStats", "derive_seed", "hyperparameters", "make_learner"]
