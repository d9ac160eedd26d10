"""Learners: one file per method. Every module of this package is imported, and every
:class:`~lifelong.learn.base.Learner` subclass it defines with a non-empty ``name`` is registered in
:data:`LEARNERS` under that name: a new method is its own file (and its ledger rows), nothing else.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from torch import nn

from lifelong.errors import ConfigError
from lifelong.learn import plasticity as _plasticity  # noqa: F401  (registers redo, shrink_perturb, continual_backprop)
from lifelong.learn.base import LEARNERS, Learner, LearnerProtocol, StepStats
from lifelong.options import check_options, parameters
from lifelong.registry import Registry
from lifelong.seeding import derive_seed


def _register_methods() -> None:
    """Import every module of this package (in name order) and register the learners it defines."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, Learner) and obj.__module__ == module.__name__
                    and obj.name):
                LEARNERS.register(obj.name, obj)


_register_methods()


def builtin_learners() -> dict[str, type[Learner]]:
    """The learners shipped in this package, without those that plugins registered in this process."""
    return {name: cls for name, cls in LEARNERS.items() if cls.__module__.startswith(__name__ + ".")}


def _inits(cls: type[Learner]) -> list[type]:
    """The classes of ``cls``'s MRO that define their own ``__init__``, the base first."""
    return [k for k in reversed(cls.__mro__) if "__init__" in vars(k) and issubclass(k, Learner)]


def hyperparameters(cls: type[Learner]) -> dict[str, object]:
    """Keyword hyper-parameters a learner accepts, with their defaults (its own and the base's)."""
    return {k: default for k, (_, default) in hyperparameter_types(cls).items()}


def hyperparameter_types(cls: type[Learner]) -> dict[str, tuple[object, object]]:
    """Keyword hyper-parameters a learner accepts: ``{name: (annotation, default)}``, the base's
    first; a subclass's annotation of a name wins."""
    out: dict[str, tuple[object, object]] = {}
    for klass in _inits(cls):
        out.update(parameters(klass.__init__, keyword_only=True))
    return out


def check_hyperparameters(name: str, hparams: dict, *, where: str | None = None) -> dict:
    """``hparams`` checked against learner ``name``'s hyper-parameters: every key is one of them
    and every value has its annotated type (:mod:`lifelong.options`; an int given for a float
    becomes a float). Returns the converted hyper-parameters; raises :class:`ConfigError`.

    Examples
    --------
    >>> check_hyperparameters("er", {"mem_size": 200, "lr": 1})
    {'mem_size': 200, 'lr': 1.0}
    >>> check_hyperparameters("er", {"mem_size": 2.5})
    Traceback (most recent call last):
    ...
    lifelong.errors.ConfigError: learner 'er': mem_size must be an integer, got 2.5
    """
    cls = LEARNERS.lookup(name)
    known = hyperparameter_types(cls)
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        raise ConfigError(
            f"{where + ' ' if where else ''}learner {name!r} has no hyper-parameter {', '.join(map(repr, unknown))}; "
            f"it accepts: {', '.join(sorted(k for k in known if k not in ('seed', 'task_classes')))}"
        )
    return check_options(known, hparams, where=where or f"learner {name!r}:")


def make_learner(name: str, model: nn.Module, **hparams: object) -> Learner:
    """Build a registered learner; unknown names or hyper-parameters, and values of the wrong type,
    raise :class:`ConfigError` (ints given for float hyper-parameters are converted)."""
    hparams = check_hyperparameters(name, hparams)
    return LEARNERS[name](model, **hparams)


__all__ = ["LEARNERS", "Learner", "LearnerProtocol", "StepStats", "builtin_learners", "derive_seed", "check_hyperparameters", "hyperparameter_types",
           "hyperparameters", "make_learner"]
