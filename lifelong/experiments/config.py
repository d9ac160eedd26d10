"""Run configurations: TOML files to frozen dataclasses, with validation and flag overrides.

A run config looks like::

    name = "split-fmnist-er"
    seeds = [0, 1, 2]

    [dataset]
    name = "fashion_mnist"        # see `lifelong list`
    # data_dir = "/path/to/idx"   # optional; download = true fetches and verifies

    [scenario]
    name = "class_incremental"
    n_chunks = 5

    [model]
    kind = "mlp"
    hidden = [256, 256]

    [train]
    epochs = 1
    batch_size = 32
    lr = 0.05
    eval_every = 0

    [learner]
    name = "er"
    mem_size = 500                # any hyper-parameter the learner accepts

Unknown sections or keys are refused with :class:`~lifelong.errors.ConfigError`.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from lifelong.errors import ConfigError
from lifelong.plugins import load_plugins

SECTIONS = ("dataset", "scenario", "model", "train", "learner", "reference")
TOP_LEVEL = ("name", "seeds", "threads", "checkpoint", "plugins")
TRAIN_KEYS = {"epochs": int, "batch_size": int, "lr": float, "momentum": float, "eval_every": int, "eval_batch_size": int,
              "near_future": int}


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"
    seeds: tuple[int, ...] = (0,)
    threads: int = 0  # torch threads per run; 0 leaves torch's default
    checkpoint: bool = True
    plugins: tuple[str, ...] = ()  # plugin modules imported before anything is looked up
    dataset: dict[str, Any] = field(default_factory=lambda: {"name": "fashion_mnist"})
    scenario: dict[str, Any] = field(default_factory=lambda: {"name": "class_incremental", "n_chunks": 5})
    model: dict[str, Any] = field(default_factory=lambda: {"kind": "mlp", "hidden": [256, 256]})
    train: dict[str, Any] = field(default_factory=lambda: {"epochs": 1, "batch_size": 32, "lr": 0.05})
    learner: dict[str, Any] = field(default_factory=lambda: {"name": "naive"})

    @property
    def learner_name(self) -> str:
        return str(self.learner["name"])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        d["plugins"] = list(self.plugins)
        return d

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


def _check_positive(section: str, key: str, value: Any, kind: type) -> Any:
    lowest = 0 if key in ("eval_every", "near_future") else 1
    if kind is int and (not isinstance(value, int) or isinstance(value, bool) or value < lowest):
        raise ConfigError(f"[{section}] {key} must be a positive integer, got {value!r}")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (key == "lr" and value == 0):
            raise ConfigError(f"[{section}] {key} must be a positive number, got {value!r}")
        value = float(value)
    return value


def from_dict(data: dict[str, Any]) -> RunConfig:
    """Validate a parsed TOML document and fill defaults."""
    unknown = sorted(set(data) - set(SECTIONS) - set(TOP_LEVEL))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(map(repr, unknown))}; top-level keys are {list(TOP_LEVEL)} "
            f"and sections are {list(SECTIONS)}"
        )
    plugins = data.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) and p for p in plugins):
        raise ConfigError(f"plugins must be a list of module names, got {plugins!r}")
    load_plugins(plugins)
    base = RunConfig()
    sections: dict[str, dict[str, Any]] = {}
    for s in ("dataset", "scenario", "model", "train", "learner"):
        value = data.get(s, {})
        if not isinstance(value, dict):
            raise ConfigError(f"[{s}] must be a table, got {type(value).__name__}")
        merged = {**getattr(base, s), **copy.deepcopy(value)}
        if s in ("dataset", "scenario", "learner") and not isinstance(merged.get("name"), str):
            raise ConfigError(f"[{s}] needs a string `name`")
        sections[s] = merged
    for k, v in sections["train"].items():
        if k not in TRAIN_KEYS:
            raise ConfigError(f"unknown key {k!r} in [train]; known keys: {sorted(TRAIN_KEYS)}")
        sections["train"][k] = _check_positive("train", k, v, TRAIN_KEYS[k])
    seeds = data.get("seeds", list(base.seeds))
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct, got {seeds}")
    name = data.get("name", base.name)
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise ConfigError(f"name must be a plain directory name, got {name!r}")
    threads = data.get("threads", 0)
    if not isinstance(threads, int) or threads < 0:
        raise ConfigError(f"threads must be a non-negative integer, got {threads!r}")
    checkpoint = data.get("checkpoint", True)
    if not isinstance(checkpoint, bool):
        raise ConfigError(f"checkpoint must be true or false, got {checkpoint!r}")
    return RunConfig(name=name, seeds=tuple(seeds), threads=threads, checkpoint=checkpoint, plugins=tuple(plugins),
                     **sections)


def parse_toml(text: str, *, source: str = "config") -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source} is not valid TOML: {e}") from None


def read_toml(path: str | Path, what: str = "config file", *, hint: str = "") -> tuple[dict[str, Any], str]:
    """Parse a TOML file into ``(document, text)``; a missing, unreadable or malformed file is a
    :class:`ConfigError` that names ``what`` it is (``hint`` is appended to "does not exist")."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist{hint}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {what} {path}: {e}") from None
    return parse_toml(text, source=f"{what} {path}"), text


def load_config(path: str | Path) -> RunConfig:
    return from_dict(read_toml(path)[0])


def override(cfg: RunConfig, **flags: Any) -> RunConfig:
    """Apply CLI flags; ``None`` means "not given". Keys: learner, scenario, dataset, data_dir,
    download, seeds, epochs, batch_size, lr, mem_size, n_chunks, name, eval_every."""
    d = cfg.to_dict()
    mapping = {
        "learner": ("learner", "name"), "scenario": ("scenario", "name"), "dataset": ("dataset", "name"),
        "data_dir": ("dataset", "data_dir"), "download": ("dataset", "download"),
        "epochs": ("train", "epochs"), "batch_size": ("train", "batch_size"), "lr": ("train", "lr"),
        "eval_every": ("train", "eval_every"), "mem_size": ("learner", "mem_size"), "n_chunks": ("scenario", "n_chunks"),
    }
    for key, value in flags.items():
        if value is None:
            continue
        if key in ("seeds", "name", "threads"):
            d[key] = list(value) if key == "seeds" else value
        elif key in mapping:
            section, k = mapping[key]
            if key in ("learner", "scenario", "dataset") and d[section].get("name") != value:
                # a different learner/scenario/dataset: its options from the config no longer apply
                d[section] = {"name": value}
            else:
                d[section][k] = value
        else:
            raise ConfigError(f"unknown override {key!r}")
    return from_dict(d)
