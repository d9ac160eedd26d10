"""The executable ledger: expected results that are re-run and checked.

A ledger file (``ledger/*.toml``) is a suite: one base run config and a list of entries, each a
learner with the final ACC we expect (mean over the suite's seeds) and a tolerance band, plus the
forgetting and wall time that were observed when the band was recorded::

    suite = "split-fmnist-class-il"
    tier = "full"                       # "fast" entries run in CI on every submission
    seeds = [0, 1, 2]
    description = "Split Fashion-MNIST, 5 chunks of 2 classes, MLP 784-256-256-10, ..."

    [base]                              # any run config (see lifelong.experiments.config)
    dataset = { name = "fashion_mnist" }
    scenario = { name = "class_incremental", n_chunks = 5 }

    [[entry]]
    learner = { name = "er", mem_size = 500 }
    acc = 0.774                         # expected mean final ACC
    tol = 0.03                          # the band is acc ± tol
    observed = { acc = 0.774, acc_std = 0.012, forgetting = 0.24, wall_time_s = 7.1 }

``lifelong ledger check`` reruns entries and fails (exit 1) when a mean leaves its band;
``--record`` rewrites each entry's ``observed`` table from the rerun.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from lifelong.errors import ConfigError
from lifelong.evaluate import classic_metrics
from lifelong.experiments.config import from_dict, read_toml
from lifelong.experiments.runner import build_run, iter_seed, load_data
from lifelong.options import check_value

TIERS = ("fast", "full")
SUITE_KEYS = ("suite", "tier", "seeds", "description", "base", "entry")
ENTRY_KEYS = ("learner", "acc", "tol", "observed")


@dataclass
class Entry:
    suite: str
    learner: dict[str, Any]
    acc: float
    tol: float
    observed: dict[str, float] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)

    @property
    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.learner.items()) if k != "name")
        return f"{self.suite}/{self.learner['name']}" + (f"[{extra}]" if extra else "")

    def config(self):
        doc = {**self.base, "seeds": list(self.seeds), "learner": dict(self.learner), "name": self.learner["name"]}
        return from_dict(doc)


@dataclass
class Suite:
    path: Path
    name: str
    tier: str
    seeds: tuple[int, ...]
    description: str
    base: dict[str, Any]
    entries: list[Entry]
    raw: dict[str, Any]


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    raw, _ = read_toml(path, "ledger file")
    for key in ("suite", "tier", "base", "entry"):
        if key not in raw:
            raise ConfigError(f"ledger file {path} lacks `{key}`")
    unknown = sorted(set(raw) - set(SUITE_KEYS))
    if unknown:
        raise ConfigError(f"ledger file {path}: unknown key(s) {', '.join(map(repr, unknown))}; known: {list(SUITE_KEYS)}")
    if not isinstance(raw["base"], dict) or not isinstance(raw["entry"], list):
        raise ConfigError(f"ledger file {path}: `base` must be a table and `entry` a list of [[entry]] tables")
    if raw["tier"] not in TIERS:
        raise ConfigError(f"ledger file {path}: tier must be one of {TIERS}, got {raw['tier']!r}")
    seeds = tuple(raw.get("seeds", [0]))
    entries = []
    for i, e in enumerate(raw["entry"]):
        missing = {"learner", "acc", "tol"} - set(e)
        if missing:
            raise ConfigError(f"ledger file {path}: entry {i} lacks {sorted(missing)}")
        unknown = sorted(set(e) - set(ENTRY_KEYS))
        if unknown:
            raise ConfigError(f"ledger file {path}: entry {i} has unknown key(s) {', '.join(map(repr, unknown))}; "
                              f"known: {list(ENTRY_KEYS)}")
        for key in ("acc", "tol"):
            check_value(e[key], float, where=f"ledger file {path}: entry {i} {key}")
        if not isinstance(e["learner"], dict):
            raise ConfigError(f"ledger file {path}: entry {i} learner must be a table, e.g. {{ name = \"er\" }}")
        entries.append(Entry(raw["suite"], e["learner"], float(e["acc"]), float(e["tol"]),
                             dict(e.get("observed", {})), raw["base"], seeds))
    suite = Suite(path, raw["suite"], raw["tier"], seeds, raw.get("description", ""), raw["base"], entries, raw)
    for i, entry in enumerate(entries):  # validate now (names and types of every section), not an hour into a check
        try:
            entry.config()
        except ConfigError as e:
            raise ConfigError(f"ledger file {path}: entry {i} ({entry.label}): {e}") from None
    return suite


def find_suites(root: str | Path, tier: str | None = None) -> list[Suite]:
    root = Path(root)
    files = [root] if root.is_file() else sorted(root.glob("*.toml"))
    if not files:
        raise ConfigError(f"no ledger files (*.toml) under {root}")
    suites = [load_suite(f) for f in files]
    return [s for s in suites if tier is None or s.tier == tier]


@dataclass
class Outcome:
    entry: Entry
    acc: float
    acc_std: float
    forgetting: float
    wall_time_s: float

    @property
    def passed(self) -> bool:
        return not math.isnan(self.acc) and abs(self.acc - self.entry.acc) <= self.entry.tol


def run_entry(entry: Entry, cache: dict | None = None) -> Outcome:
    """Run every seed of an entry in memory (no run directory) and measure it."""
    cfg = entry.config()
    key = repr(sorted(cfg.dataset.items()))
    cache = {} if cache is None else cache
    if key not in cache:
        cache[key] = load_data(cfg)
    ds = cache[key]
    accs, forgets = [], []
    t0 = time.perf_counter()
    for seed in cfg.seeds:
        records = list(iter_seed(build_run(cfg, seed, ds)))
        m = classic_metrics(records, seed)
        accs.append(m["acc"])
        forgets.append(m["forgetting"])
    wall = (time.perf_counter() - t0) / len(cfg.seeds)
    std = float(np.std(accs, ddof=1)) if len(accs) > 1 else 0.0
    return Outcome(entry, float(np.mean(accs)), std, float(np.nanmean(forgets)) if not all(map(math.isnan, forgets)) else math.nan, wall)


def record(suite: Suite, outcomes: list[Outcome]) -> None:
    """Rewrite the suite file with the observed values of ``outcomes``."""
    by_label = {o.entry.label: o for o in outcomes}
    for raw_entry, entry in zip(suite.raw["entry"], suite.entries, strict=True):
        o = by_label.get(entry.label)
        if o is not None:
            raw_entry["observed"] = {
                "acc": round(o.acc, 4), "acc_std": round(o.acc_std, 4),
                "forgetting": round(o.forgetting, 4) if not math.isnan(o.forgetting) else "nan",
                "wall_time_s": round(o.wall_time_s, 2),
            }
    suite.path.write_text(tomli_w.dumps(suite.raw), encoding="utf-8")


def markdown_table(suite: Suite) -> str:
    """The suite's expected and last observed values as a Markdown table (for BENCHMARKS.md)."""
    lines = [f"**{suite.name}** ({suite.tier} tier, seeds {list(suite.seeds)}): {suite.description}", "",
             "| learner | expected ACC | observed ACC (mean ± std) | forgetting | s/seed |", "|---|---|---|---|---|"]
    for e in suite.entries:
        o = e.observed
        obs = f"{o['acc']:.3f} ± {o['acc_std']:.3f}" if "acc" in o else "not run"
        forget = o.get("forgetting", "")
        forget = f"{forget:.3f}" if isinstance(forget, float) else str(forget)
        lines.append(f"| {e.label.split('/', 1)[1]} | {e.acc:.3f} ± {e.tol:.3f} | {obs} | {forget} | {o.get('wall_time_s', '')} |")
    return "\n".join(lines)
