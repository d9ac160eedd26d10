"""Name → object registries for the parts a run is built from: learners, datasets, scenarios,
models (and loss terms). Plugins add to them with :meth:`Registry.register`.

Examples
--------
>>> things = Registry("thing")
>>> @things.register("one")
... def make_one():
...     return 1
>>> things.lookup("one")()
1
>>> things.lookup("two")
Traceback (most recent call last):
...
lifelong.errors.ConfigError: unknown thing 'two'; choose one of: one
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from lifelong.errors import ConfigError

T = TypeVar("T")


class Registry(dict[str, Any]):
    """A ``dict`` of name → object with registration and lookups whose errors list the choices."""

    def __init__(self, kind: str, items: dict[str, Any] | None = None) -> None:
        super().__init__(items or {})
        self.kind = kind

    def register(self, name: str, obj: Any = None, *, replace: bool = False) -> Any:
        """Register ``obj`` under ``name``; used bare it is a decorator. A name already taken by a
        different object raises :class:`ConfigError` unless ``replace=True``."""
        if obj is None:
            def decorator(o: T) -> T:
                self.register(name, o, replace=replace)
                return o
            return decorator
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} needs a non-empty string name, got {name!r}")
        if name in self and self[name] is not obj and not replace:
            raise ConfigError(f"{self.kind} {name!r} is already registered (by {_origin(self[name])}); "
                              f"choose another name or pass replace=True")
        self[name] = obj
        return obj

    def lookup(self, name: str) -> Any:
        """The object registered as ``name``; an unknown name raises :class:`ConfigError`."""
        if name not in self:
            raise ConfigError(f"unknown {self.kind} {name!r}; choose one of: {', '.join(sorted(self))}")
        return self[name]


def _origin(obj: Any) -> str:
    return getattr(obj, "__module__", None) or type(obj).__module__


Factory = Callable[..., Any]
