"""The plan of a sweep: a sweep file expanded into one :class:`RunSpec` per (cell, seed).

Examples
--------
>>> plan = parse_sweep({"name": "s", "seeds": [0, 1], "learner": {"name": "er"},
...                     "axes": {"learner.name": ["naive", "er"], "learner.mem_size": [50, 100]}})
>>> [r.name for r in plan.runs]
['learner=naive,seed=0', 'learner=naive,seed=1', 'learner=er,mem_size=50,seed=0', 'learner=er,mem_size=50,seed=1', 'learner=er,mem_size=100,seed=0', 'learner=er,mem_size=100,seed=1']
>>> plan.runs[0].dropped
('learner.mem_size',)
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelong.errors import ConfigError
from lifelong.experiments.config import SECTIONS, RunConfig, from_dict, read_toml
from lifelong.learn.methods import LEARNERS, hyperparameters

#: Sections whose keys an axis or a search range may set, as "section.key".
AXIS_SECTIONS = tuple(s for s in SECTIONS if s != "reference")
#: Top-level run-config keys an axis may set (name and seeds are the sweep's own).
AXIS_TOP_LEVEL = ("threads", "checkpoint")
BACKENDS = ("ray", "local")
STRATEGIES = {"default": "DEFAULT", "spread": "SPREAD"}
SWEEP_OPTIONS = {"backend": str, "cpus_per_run": int, "strategy": str}


def check_key(key: str, *, where: str) -> tuple[str, ...]:
    """Split a dotted config key ("learner.mem_size") into its path, or raise ConfigError."""
    parts = tuple(key.split("."))
    if len(parts) == 1 and parts[0] in AXIS_TOP_LEVEL:
        return parts
    if len(parts) != 2 or parts[0] not in AXIS_SECTIONS or not parts[1]:
        raise ConfigError(
            f"{where}: {key!r} is not a config key; write 'section.key' with a section from "
            f"{list(AXIS_SECTIONS)} (e.g. 'learner.mem_size', 'train.lr'), or one of {list(AXIS_TOP_LEVEL)}"
        )
    return parts


def apply_values(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the config dict ``base`` with each dotted key of ``values`` set.

    Setting ``learner.name`` (or ``dataset.name``, ``scenario.name``) keeps the section's other
    keys; :func:`expand` decides which ``learner.*`` keys still apply.

    Examples
    --------
    >>> apply_values({"train": {"lr": 0.1}}, {"train.lr": 0.01, "learner.name": "er"})
    {'train': {'lr': 0.01}, 'learner': {'name': 'er'}}
    """
    out = copy.deepcopy(base)
    for key, value in values.items():
        parts = check_key(key, where="config value")
        if len(parts) == 1:
            out[parts[0]] = copy.deepcopy(value)
        else:
            section = out.setdefault(parts[0], {})
            if not isinstance(section, dict):
                raise ConfigError(f"[{parts[0]}] must be a table, got {type(section).__name__}")
            section[parts[1]] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: a cell of the grid and one seed."""

    name: str  # directory name under the sweep directory; unique and deterministic
    cell: str  # the name shared by the seeds of one cell (the run name without its seed)
    values: dict[str, Any]  # axis key -> value, in axis order (dropped keys removed)
    seed: int
    config: RunConfig
    dropped: tuple[str, ...] = ()  # axis or base keys that did not apply to this cell's learner


@dataclass(frozen=True)
class SweepPlan:
    """A parsed sweep file: the base config, the axes, the seeds and the expanded runs."""

    name: str
    base: dict[str, Any]
    axes: dict[str, list[Any]]
    seeds: tuple[int, ...]
    runs: list[RunSpec]
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "axes": self.axes, "seeds": list(self.seeds), "options": self.options,
            "runs": [{"name": r.name, "cell": r.cell, "values": r.values, "seed": r.seed,
                      "dropped": list(r.dropped), "config": r.config.to_dict()} for r in self.runs],
        }


def _fmt_value(value: Any) -> str:
    """A short filesystem-safe spelling of an axis value: 0.05, er, 32x32, true."""
    if isinstance(value, bool):
        s = str(value).lower()
    elif isinstance(value, float):
        s = repr(value)
    elif isinstance(value, (list, tuple)):
        s = "x".join(_fmt_value(v) for v in value)
    elif isinstance(value, dict):
        s = "-".join(f"{k}{_fmt_value(v)}" for k, v in value.items())
    else:
        s = str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "_", s) or "_"


def axis_labels(keys: Sequence[str]) -> dict[str, str]:
    """Short column labels: "learner" for learner.name, the last part otherwise, the whole key if
    two axes would share a label."""
    short = {k: (k.split(".")[0] if k.endswith(".name") else k.split(".")[-1]) for k in keys}
    counts: dict[str, int] = {}
    for s in short.values():
        counts[s] = counts.get(s, 0) + 1
    return {k: (s if counts[s] == 1 else k) for k, s in short.items()}


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _accepted_learner_keys(name: str) -> set[str] | None:
    return set(hyperparameters(LEARNERS[name])) if name in LEARNERS else None


def _all_learner_keys() -> set[str]:
    return {k for cls in LEARNERS.values() for k in hyperparameters(cls)}


def parse_sweep(data: dict[str, Any], *, source: str = "sweep file") -> SweepPlan:
    """Validate a parsed sweep file and expand it into runs.

    Parameters
    ----------
    data : dict
        The TOML document: run-config keys, ``[axes]`` and optionally ``[sweep]``.
    source : str
        Named in error messages.

    Returns
    -------
    SweepPlan
        Runs in grid order (axes in the file's order, the last axis fastest, seeds innermost).

    Raises
    ------
    ConfigError
        For a malformed axis, an unknown option, or a cell whose config does not validate.
    """
    data = copy.deepcopy(data)
    axes_raw = data.pop("axes", {})
    options = data.pop("sweep", {})
    if not isinstance(axes_raw, dict):
        raise ConfigError(f"{source}: [axes] must be a table of 'section.key' = [values]")
    if not isinstance(options, dict):
        raise ConfigError(f"{source}: [sweep] must be a table")
    for key, value in options.items():
        if key not in SWEEP_OPTIONS:
            raise ConfigError(f"{source}: unknown [sweep] option {key!r}; known: {sorted(SWEEP_OPTIONS)}")
        if not isinstance(value, SWEEP_OPTIONS[key]) or isinstance(value, bool):
            raise ConfigError(f"{source}: [sweep] {key} must be a {SWEEP_OPTIONS[key].__name__}, got {value!r}")
    axes: dict[str, list[Any]] = {}
    seeds_axis = None
    for key, values in axes_raw.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: axis {key!r} must be a non-empty list of values, got {values!r}")
        if len({json.dumps(v, sort_keys=True) for v in values}) != len(values):
            raise ConfigError(f"{source}: axis {key!r} repeats a value: {values}")
        if key == "seeds":
            seeds_axis = values
            continue
        check_key(key, where=f"{source} [axes]")
        axes[key] = values
    if seeds_axis is not None and "seeds" in data:
        raise ConfigError(f"{source}: give the seeds either as top-level `seeds` or as [axes] seeds, not both")
    if seeds_axis is not None:
        data["seeds"] = seeds_axis
    base_cfg = from_dict(data)  # validates the base config and its seeds
    name = base_cfg.name if "name" in data else "sweep"
    base = base_cfg.to_dict()
    base.pop("seeds")
    base["name"] = name

    learner_varies = "learner.name" in axes
    known_somewhere = _all_learner_keys()
    labels = axis_labels(list(axes))
    runs: list[RunSpec] = []
    seen_cells: dict[str, dict[str, Any]] = {}
    for combo in itertools.product(*axes.values()):
        values = dict(zip(axes, combo))
        cfg_dict = apply_values(base, values)
        dropped: list[str] = []
        if learner_varies:
            accepted = _accepted_learner_keys(cfg_dict["learner"]["name"])
            for k in list(cfg_dict["learner"]):
                if accepted is not None and k != "name" and k not in accepted and k in known_somewhere:
                    del cfg_dict["learner"][k]
                    dropped.append(f"learner.{k}")
        kept = {k: v for k, v in values.items() if k not in dropped}
        cell = ",".join(f"{labels[k]}={_fmt_value(v)}" for k, v in kept.items()) or "base"
        signature = json.dumps(cfg_dict, sort_keys=True, default=str)
        if cell in seen_cells:
            if seen_cells[cell]["signature"] == signature:
                continue  # the same cell again, after dropping keys that did not apply
            cell = f"{cell},{_hash(signature)}"  # two values spelt alike on disk
        seen_cells[cell] = {"signature": signature}
        if len(cell) > 150:
            cell = f"{cell[:140]},{_hash(signature)}"
        for seed in base_cfg.seeds:
            run_dict = {**cfg_dict, "seeds": [seed], "name": f"{cell},seed={seed}" if kept else f"seed={seed}"}
            try:
                cfg = from_dict(run_dict)
            except ConfigError as e:
                raise ConfigError(f"{source}: cell {cell}: {e}") from None
            runs.append(RunSpec(cfg.name, cell, kept, seed, cfg, tuple(dropped)))
    return SweepPlan(name=name, base=base, axes=axes, seeds=base_cfg.seeds, runs=runs, options=dict(options))


def load_sweep(path: str | Path) -> tuple[SweepPlan, str]:
    """Read and expand a sweep file; returns the plan and the file's text."""
    doc, text = read_toml(path, "sweep file")
    return parse_sweep(doc, source=str(path)), text


def open_sweep(sweep_file: Path | None, *, resume: Path | None = None, out: Path = Path("sweeps")) -> tuple[SweepPlan, str, Path]:
    """The plan, the file's text and the sweep directory for a new sweep file or a ``--resume`` directory.

    Raises
    ------
    ConfigError
        If both or neither are given, or ``resume`` is not a sweep directory.
    """
    if resume is not None:
        if sweep_file is not None:
            raise ConfigError("give either a sweep file or --resume SWEEP_DIR, not both")
        if not (resume / "sweep.toml").is_file():
            raise ConfigError(f"{resume} is not a sweep directory (no sweep.toml); pass the directory `lifelong sweep` wrote")
        plan, text = load_sweep(resume / "sweep.toml")
        return plan, text, resume
    if sweep_file is None:
        raise ConfigError("pass a sweep file (lifelong sweep SWEEP.toml) or --resume SWEEP_DIR")
    plan, text = load_sweep(sweep_file)
    return plan, text, out / plan.name
