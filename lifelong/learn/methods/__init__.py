"""Learners: one file per method, registered in :data:`LEARNERS` by their short name."""

from __future__ import annotations

import inspect

from torch import nn

from lifelong.errors import ConfigError
from lifelong.registry import Registry
from lifelong.learn.methods.agem import AGEM
from lifelong.learn.base import Learner, LearnerProtocol, StepStats
from lifelong.seeding import derive_seed
from lifelong.learn.methods.cls_er import CLSER
from lifelong.learn.methods.cumulative import Cumulative
from lifelong.learn.methods.der import DER, DERPP
from lifelong.learn.methods.drift_experts import DriftExperts
from lifelong.learn.methods.er import ER
from lifelong.learn.methods.er_ace import ERACE
from lifelong.learn.methods.error_memory import ErrorMemory
from lifelong.learn.methods.ewc import EWC
from lifelong.learn.methods.gdumb import GDumb
from lifelong.learn.methods.homeostatic import Homeostatic
from lifelong.learn.methods.icarl import ICaRL
from lifelong.learn.methods.joint import Joint
from lifelong.learn.methods.l2 import L2
from lifelong.learn.methods.lwf import LwF
from lifelong.learn.methods.mas import MAS
from lifelong.learn.methods.naive import Naive
from lifelong.learn.methods.powerlaw import PowerLaw
from lifelong.learn.methods.refresh import Refresh
from lifelong.learn.methods.si import SI

LEARNERS: Registry = Registry("learner", {
    cls.name: cls for cls in (Naive, Joint, Cumulative, ER, EWC, LwF, AGEM, DER, DERPP, ERACE, GDumb, ICaRL,
                              SI, MAS, L2, CLSER, ErrorMemory, Homeostatic, DriftExperts, Refresh, PowerLaw)
})


def hyperparameters(cls: type[Learner]) -> dict[str, object]:
    """Keyword hyper-parameters a learner accepts, with their defaults (its own and the base's)."""
    out: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if "__init__" in vars(klass) and issubclass(klass, Learner):
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.kind is p.KEYWORD_ONLY:
                    out[p.name] = p.default
    return out


def check_learner(name: str, hparams: dict) -> type[Learner]:
    """The registered class for ``name``; unknown names or hyper-parameters raise :class:`ConfigError`."""
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
    return cls


def make_learner(name: str, model: nn.Module, **hparams: object) -> Learner:
    """Build a registered learner; unknown names or hyper-parameters raise :class:`ConfigError`."""
    return check_learner(name, hparams)(model, **hparams)


__all__ = ["LEARNERS", "Learner", "LearnerProtocol", "StepStats", "derive_seed", "check_learner", "hyperparameters", "make_learner"]
