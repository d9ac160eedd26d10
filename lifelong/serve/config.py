"""``serve.toml``: the service configuration, parsed to a frozen :class:`ServeConfig`.

A config looks like::

    seed = 0

    [learner]                     # optional; this is the default
    name = "error_memory"         # any registered learner (`lifelong list`)
    inner = "er"                  # and any hyper-parameter it accepts
    inner_hp = {mem_size = 500}

    [model]
    kind = "mlp"
    hidden = [256, 256]
    input_shape = [784]           # shape of one input row
    n_classes = 10

    [train]                       # optional: the learner's learning rate and momentum
    lr = 0.05

    [serve]
    host = "127.0.0.1"
    port = 8080
    data_dir = "serve-data"       # event log + snapshots; relative to this file
    # token = "..."               # or the LIFELONG_SERVE_TOKEN environment variable (preferred)
    protect_predict = false       # true: /predict needs the token too
    batch_size = 32               # events per gradient step
    snapshot_every = 1000         # events between snapshots

``plugins = ["my_pkg.module"]`` at the top imports plugin modules first, as in a run config. The
``[learner]``, ``[model]`` and ``[train]`` tables are checked by the run config's own validators
(:mod:`lifelong.experiments.config`: names and types against the learner's and the model's
signatures; ``lr`` and ``momentum`` are set in ``[train]`` only), and the learner is built by the
one runner's :func:`~lifelong.experiments.runner.build_learner`. Unknown sections or keys raise
:class:`~lifelong.errors.ConfigError`, as does a value of the wrong type. The token is never part of
``repr`` or of any log line.

Examples
--------
>>> cfg = config_from_dict({"model": {"input_shape": [4], "n_classes": 3}})
>>> cfg.learner["name"], cfg.input_shape, cfg.n_classes, cfg.host
('error_memory', (4,), 3, '127.0.0.1')
>>> config_from_dict({"serve": {"batch_size": 0}, "model": {"input_shape": [4], "n_classes": 3}})
Traceback (most recent call last):
...
lifelong.errors.ConfigError: [serve] batch_size must be an integer >= 1, got 0
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelong.errors import ConfigError
from lifelong.experiments.config import (
    TRAIN_TO_LEARNER, check_learner_section, check_model_options, check_train, read_plugins, read_toml,
)
from lifelong.experiments.runner import build_learner as build_run_learner
from lifelong.learn.base import Learner
from lifelong.options import check_value
from lifelong.serve.tokens import MIN_TOKEN_LEN, Tokens, check_token

TOKEN_ENV = "LIFELONG_SERVE_TOKEN"

#: [serve] keys: (type, default, lower bound for numbers).
SERVE_KEYS: dict[str, tuple[type, Any, float | None]] = {
    "host": (str, "127.0.0.1", None),
    "port": (int, 8080, 0),
    "data_dir": (str, "serve-data", None),
    "token": (str, None, None),
    "token_file": (str, None, None),  # scoped tokens, one `<scopes> <token>` a line; re-read on change
    "protect_predict": (bool, False, None),
    "batch_size": (int, 32, 1),
    "snapshot_every": (int, 1000, 1),
    "keep_snapshots": (int, 5, 1),
    "max_rows": (int, 512, 1),  # rows per /predict or /feedback request
    "max_body_bytes": (int, 8_000_000, 1024),
    "threads": (int, 1, 0),  # torch intra-op threads; 0 keeps torch's default
    "linger_ms": (float, 20.0, 0),  # how long the worker waits for a batch to fill (fewer, larger steps)
    "accuracy_window": (int, 500, 1),  # feedback events in the rolling online accuracy
    "drift_delta": (float, 0.002, 0),  # ADWIN's confidence parameter; 0 turns the detector off
    "prediction_cache": (int, 10_000, 0),  # earlier predictions kept for `prediction_id`
    "access_log": (bool, False, None),
    "stop_timeout": (float, 30.0, 1),
    "max_connections": (int, 256, 1),  # open client connections; more are answered 503 and closed
    "header_timeout": (float, 10.0, 0.1),  # seconds to deliver a request head (also the keep-alive idle limit)
    "body_timeout": (float, 30.0, 0.1),  # longest pause while a request body is received
    "max_pending": (int, 20_000, 1),  # logged events not yet learned; past it /feedback answers 429
    "max_inflight_bytes": (int, 64_000_000, 1024),  # request body bytes held at once; past it 503
    "flip_sample": (int, 128, 0),  # recent feedback rows scoring each publish's negative flip rate; 0: off
    "holdout_every": (int, 0, 0),  # every k-th event (seq % k == 0) is held back for the flip sample; 0: off
    "max_flip_rate": (float, None, 0),  # a publish past this negative flip rate is refused; unset: no guard
    "shadow": (bool, False, None),  # start a new log in shadow mode (then POST /shadow switches it)
}
TOP_LEVEL = ("seed", "plugins", "learner", "model", "train", "serve")
#: without a [learner] table: the complementary learner, a slow network with reservoir replay plus
#: an error memory that corrects predictions from feedback at once
DEFAULT_LEARNER: dict[str, Any] = {"name": "error_memory", "inner": "er", "inner_hp": {"mem_size": 500}}


@dataclass(frozen=True)
class ServeConfig:
    """Everything the service needs; build it with :func:`load_serve_config` or :func:`config_from_dict`."""

    learner: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_LEARNER))
    model: dict[str, Any] = field(default_factory=lambda: {"kind": "mlp", "hidden": [256, 256]})
    train: dict[str, Any] = field(default_factory=dict)  # lr and momentum, when given
    plugins: tuple[str, ...] = ()
    input_shape: tuple[int, ...] = (784,)
    n_classes: int = 10
    seed: int = 0
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("serve-data")
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    protect_predict: bool = False
    batch_size: int = 32
    snapshot_every: int = 1000
    keep_snapshots: int = 5
    max_rows: int = 512
    max_body_bytes: int = 8_000_000
    threads: int = 1
    linger_ms: float = 20.0
    accuracy_window: int = 500
    drift_delta: float = 0.002
    prediction_cache: int = 10_000
    access_log: bool = False
    stop_timeout: float = 30.0
    max_connections: int = 256
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_pending: int = 20_000
    max_inflight_bytes: int = 64_000_000
    flip_sample: int = 128
    holdout_every: int = 0
    max_flip_rate: float | None = None
    shadow: bool = False

    @property
    def input_dim(self) -> int:
        return math.prod(self.input_shape)

    def fingerprint(self) -> str:
        """SHA-256 of what determines the learner's state given the log: learner, model, shapes,
        seed and torch's thread count (a different intra-op thread count can change the floating
        point sums). The batch size is not part of it (the worker journals every batch's
        boundaries), nor is any setting that only changes timing, limits or access.

        ``threads = 1`` (the default) adds nothing, so data directories written before threads
        counted keep their fingerprint; any other value is part of it."""
        # lr and momentum count as the learner's (they are its hyper-parameters, set in [train])
        what = {"learner": {**self.learner, **self.train}, "model": self.model, "input_shape": list(self.input_shape),
                "n_classes": self.n_classes, "seed": self.seed}
        if self.threads != 1:
            what["threads"] = self.threads
        if self.holdout_every:  # which events a batch learns, and when a held-back one is learned
            what["holdout"] = [self.holdout_every, self.flip_sample]
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()

    def require_token(self) -> Tokens:
        """The tokens in force, or :class:`ConfigError` if none (or a bad one) is configured."""
        if not self.token and self.token_file is None:
            raise ConfigError(
                f"no API token configured; set the {TOKEN_ENV} environment variable (or `token` or `token_file` "
                f"in [serve]) to a secret of at least {MIN_TOKEN_LEN} characters"
            )
        return Tokens(self.token, self.token_file)


def _typed(section: str, key: str, value: Any, kind: type, low: float | None) -> Any:
    value = check_value(value, kind, where=f"[{section}] {key}")
    if kind is str and not value:
        raise ConfigError(f"[{section}] {key} must be a non-empty string, got {value!r}")
    if kind in (int, float) and (not math.isfinite(value) or (low is not None and value < low)):
        what = f"an integer >= {int(low or 0)}" if kind is int else f"a number >= {low}"
        raise ConfigError(f"[{section}] {key} must be {what}, got {value!r}")
    return value


def config_from_dict(data: dict[str, Any], *, base_dir: Path | None = None, env: dict[str, str] | None = None) -> ServeConfig:
    """Validate a parsed ``serve.toml``; relative ``data_dir`` is resolved against ``base_dir``.

    ``env`` (default ``os.environ``) may supply the token as ``LIFELONG_SERVE_TOKEN``; it wins over
    the file, so a checked-in config need not hold the secret.
    """
    env = os.environ if env is None else env
    unknown = sorted(set(data) - set(TOP_LEVEL))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(map(repr, unknown))} in serve config; known: {list(TOP_LEVEL)}")
    plugins = read_plugins(data)  # before any name is looked up
    for s in ("learner", "model", "train", "serve"):
        if not isinstance(data.get(s, {}), dict):
            raise ConfigError(f"[{s}] must be a table")
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")

    learner = copy.deepcopy(data["learner"]) if "learner" in data else copy.deepcopy(DEFAULT_LEARNER)
    check_learner_section(learner)  # kept as given (ints stay ints): the fingerprint of existing data dirs holds
    train = check_train(copy.deepcopy(data.get("train", {})), keys=TRAIN_TO_LEARNER, where="[train] (serve config)")

    model = {"kind": "mlp", **copy.deepcopy(data.get("model", {}))}
    if "input_shape" not in model or "n_classes" not in model:
        raise ConfigError("[model] needs input_shape (e.g. [784] or [1, 28, 28]) and n_classes (e.g. 10)")
    shape = model.pop("input_shape")
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = [shape]
    if not isinstance(shape, list) or not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ConfigError(f"[model] input_shape must be a list of positive integers, got {shape!r}")
    n_classes = _typed("model", "n_classes", model.pop("n_classes"), int, 2)
    check_model_options(model["kind"], {k: v for k, v in model.items() if k != "kind"})

    serve = dict(data.get("serve", {}))
    bad = sorted(set(serve) - set(SERVE_KEYS))
    if bad:
        raise ConfigError(f"unknown key(s) {', '.join(map(repr, bad))} in [serve]; known: {sorted(SERVE_KEYS)}")
    values = {k: _typed("serve", k, serve[k], kind, low) if k in serve else default
              for k, (kind, default, low) in SERVE_KEYS.items()}
    if values["max_flip_rate"] is not None and values["max_flip_rate"] > 1:
        raise ConfigError(f"[serve] max_flip_rate must be in 0..1, got {values['max_flip_rate']!r}")
    if values["port"] > 65535:
        raise ConfigError(f"[serve] port must be in 0..65535, got {values['port']}")
    if env.get(TOKEN_ENV):
        values["token"] = env[TOKEN_ENV]
    if values["token"] is not None:
        check_token(values["token"], where="the API token")
    data_dir = Path(values.pop("data_dir"))
    if base_dir is not None and not data_dir.is_absolute():
        data_dir = base_dir / data_dir
    if values["token_file"] is not None:
        token_file = Path(values["token_file"])
        values["token_file"] = base_dir / token_file if base_dir is not None and not token_file.is_absolute() else token_file
    return ServeConfig(learner=learner, model=model, train=train, plugins=plugins, input_shape=tuple(shape),
                       n_classes=n_classes, seed=seed, data_dir=data_dir, **values)


def load_serve_config(path: str | Path, *, env: dict[str, str] | None = None) -> ServeConfig:
    """Read and validate ``serve.toml``; every problem is a :class:`ConfigError` saying what to fix."""
    path = Path(path)
    data, _ = read_toml(path, "serve config", hint="; see docs/serve.md for an example")
    return config_from_dict(data, base_dir=path.resolve().parent, env=env)


def build_learner(cfg: ServeConfig) -> Learner:
    """A fresh learner as ``cfg`` describes it, from the one runner's builder; the same call always
    gives the same initial state."""
    learner = build_run_learner(cfg.learner, cfg.model, input_shape=cfg.input_shape, n_classes=cfg.n_classes,
                                seed=cfg.seed, train=cfg.train)
    learner.guard_gradients = True  # a step with a non-finite gradient is skipped, never published
    return learner
