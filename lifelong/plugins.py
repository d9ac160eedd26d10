"""Plugins: learners, datasets, scenarios and models from outside the package.

A plugin is an importable module that registers its parts when imported, e.g.
``LEARNERS.register("my_learner", MyLearner)``. Two ways in, used by ``lifelong run``, every Ray
worker and ``lifelong serve`` alike (they all read their config through
:func:`lifelong.experiments.config.from_dict`, which calls :func:`load_plugins`):

- the entry-point group ``lifelong.plugins`` of any installed distribution;
- the config key ``plugins = ["my_pkg.module"]``.

(Stub: the entry-point discovery and its error messages are completed in the plugins work.)
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from lifelong.errors import ConfigError

ENTRY_POINT_GROUP = "lifelong.plugins"


def load_plugins(modules: Iterable[str] = ()) -> list[str]:
    """Import the named plugin modules; returns their names. A module that cannot be imported is a
    :class:`ConfigError` that names it."""
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(f"plugin module {name!r} cannot be imported ({e}); install it or fix `plugins`") from None
        loaded.append(name)
    return loaded
