"""Plugins: learners, datasets, scenarios and models from outside the package.

A plugin is an importable module that registers its parts when it is imported::

    from lifelong.plugins import register_learner

    register_learner(MyLearner)            # under MyLearner.name

(or ``LEARNERS.register("my_learner", MyLearner)`` and the same for :data:`DATASETS`,
:data:`SCENARIOS` and :data:`MODELS`). Two ways in, both handled by :func:`load_plugins`:

- the entry-point group ``lifelong.plugins`` of any installed distribution. **Rule:** an entry
  point's value names a module (``my_learner = "my_pkg.lifelong_plugin"`` in ``pyproject.toml``),
  and importing that module registers its parts. An ``object reference`` (``"my_pkg:setup"``) is
  refused: put the registration at the module's top level instead;
- the config key ``plugins = ["my_pkg.module"]`` of a run, sweep or serve file: modules imported in
  the order given (they need not be installed, only importable, e.g. on ``PYTHONPATH``).

``lifelong run``, every Ray worker (it re-reads its run config) and ``lifelong serve`` read their
configs through :func:`lifelong.experiments.config.from_dict`, which calls :func:`load_plugins`
before any name is looked up, so a plugin reaches every backend. Entry points are discovered once
per process; loading is idempotent (a module is imported once, a second call does nothing). Nothing
is discovered or imported when this module itself is imported.

Failures are :class:`~lifelong.errors.ConfigError`\\ s that name the plugin and the fix: a module
that cannot be imported, an import that raises, or a part registered under a name already taken.

Examples
--------
>>> "lifelong.learn.methods.naive" in load_plugins(["lifelong.learn.methods.naive"])  # any importable module
True
>>> load_plugins(["no_such_plugin_module"])
Traceback (most recent call last):
...
lifelong.errors.ConfigError: plugin module 'no_such_plugin_module' (from the `plugins` config key) cannot be imported: No module named 'no_such_plugin_module'; install it, put it on PYTHONPATH, or fix the name in `plugins`
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Iterable
from typing import Any

from lifelong.data.datasets import DATASETS, DatasetInfo
from lifelong.data.scenarios import SCENARIOS, ScenarioInfo
from lifelong.errors import ConfigError
from lifelong.learn.methods import LEARNERS
from lifelong.learn.nets import MODELS

__all__ = [
    "ENTRY_POINT_GROUP", "load_plugins", "entry_point_modules", "register_learner", "register_dataset",
    "register_scenario", "register_model",
]

ENTRY_POINT_GROUP = "lifelong.plugins"

#: modules imported by :func:`load_plugins`, in order (this process)
_loaded: list[str] = []
#: ``(module, where it was named)`` of the entry points, once discovered
_entry_points: list[tuple[str, str]] | None = None


def entry_point_modules() -> list[tuple[str, str]]:
    """``(module, origin)`` for every entry point in :data:`ENTRY_POINT_GROUP`; discovered once per
    process, sorted by distribution and entry-point name so the import order is reproducible."""
    global _entry_points
    if _entry_points is None:
        found = []
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
            origin = f"entry point {ep.name!r} of distribution {dist!r}"
            if ep.attr:
                raise ConfigError(
                    f"plugin {origin} names an object ({ep.value!r}); group {ENTRY_POINT_GROUP!r} entry points "
                    f"must name a module that registers its parts when imported: use {ep.module!r}"
                )
            found.append((dist, ep.name, ep.module, origin))
        _entry_points = [(module, origin) for _, _, module, origin in sorted(found)]
    return list(_entry_points)


def _import(module: str, origin: str) -> None:
    if module in _loaded:
        return
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and (module == e.name or module.startswith(e.name + ".")):  # the plugin itself, not one of its imports
            raise ConfigError(
                f"plugin module {module!r} ({origin}) cannot be imported: {e}; install it, put it on "
                f"PYTHONPATH, or fix the name in `plugins`"
            ) from None
        raise ConfigError(f"plugin module {module!r} ({origin}) failed to import: {e}; install what it needs") from None
    except ConfigError as e:  # e.g. a name clash raised by Registry.register
        raise ConfigError(f"plugin module {module!r} ({origin}): {e}") from None
    except Exception as e:
        raise ConfigError(
            f"plugin module {module!r} ({origin}) raised {type(e).__name__} on import: {e}; fix the plugin"
        ) from e
    _loaded.append(module)


def load_plugins(modules: Iterable[str] = ()) -> list[str]:
    """Import every ``lifelong.plugins`` entry point (the first time), then ``modules``.

    Parameters
    ----------
    modules
        Module names, e.g. the ``plugins`` key of a config; imported in order.

    Returns
    -------
    list of str
        Every plugin module loaded in this process so far, in import order.

    Raises
    ------
    ConfigError
        If a plugin cannot be imported, raises on import, or registers a name that is taken.
    """
    for module, origin in entry_point_modules():
        _import(module, origin)
    for module in modules:
        if not isinstance(module, str) or not module:
            raise ConfigError(f"plugins must be module names, got {module!r}")
        _import(module, "from the `plugins` config key")
    return list(_loaded)


# -- convenience registration -----------------------------------------------------------------------
def register_learner(cls: type, name: str | None = None, *, replace: bool = False) -> type:
    """Register a learner class under ``name`` (default: its ``name`` class attribute).

    Usable as a decorator: ``@register_learner`` or ``register_learner(MyLearner)``.
    """
    key = name or getattr(cls, "name", "")
    if not key:
        raise ConfigError(f"learner class {cls.__qualname__} needs a `name` class attribute (or pass name=...)")
    return LEARNERS.register(key, cls, replace=replace)


def register_dataset(name: str, loader: Callable[..., Any], description: str = "", *,
                     available: Callable[..., bool] | None = None, replace: bool = False) -> DatasetInfo:
    """Register a dataset loader ``loader(*, data_dir, download, seed, **options) -> Dataset``."""
    info = DatasetInfo(name, description or (loader.__doc__ or name).strip().splitlines()[0], loader,
                       *(() if available is None else (available,)))
    return _register_info(DATASETS, name, info, replace)


def register_scenario(name: str, build: Callable[..., Any], description: str = "", *,
                      replace: bool = False) -> ScenarioInfo:
    """Register a scenario builder ``build(dataset, *, seed, **options) -> Stream``."""
    info = ScenarioInfo(name, description or (build.__doc__ or name).strip().splitlines()[0], build)
    return _register_info(SCENARIOS, name, info, replace)


def register_model(name: str, builder: Callable[..., Any], *, replace: bool = False) -> Callable[..., Any]:
    """Register a network builder ``builder(input_shape, n_classes, *, seed, **options) -> Net``."""
    return MODELS.register(name, builder, replace=replace)


def _register_info(registry: Any, name: str, info: Any, replace: bool) -> Any:
    """Register a frozen info record; re-registering an equal record (a module imported twice) is a no-op."""
    if name in registry and registry[name] == info:
        return registry[name]
    return registry.register(name, info, replace=replace)
