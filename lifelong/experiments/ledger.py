"""The executable ledger: expected results that are re-run and checked.

A ledger file (``ledger/*.toml``) is a suite: one base run config, a list of entries and a list of
orderings. An entry is a learner with the mean final ACC (over the suite's seeds) we expect and its
band, optionally the mean forgetting and its band, plus what was observed when the bands were
recorded. An ordering says that one entry beats another on every seed of the suite, paired by seed
(the same seed gives both learners the same stream and the same initial network)::

    suite = "split-fmnist-class-il"
    tier = "full"                       # "fast" suites run in CI on every submission
    seeds = [0, 1, 2]
    description = "Split Fashion-MNIST, 5 chunks of 2 classes, MLP 784-256-256-10, ..."

    [base]                              # any run config (see lifelong.experiments.config)
    dataset = { name = "fashion_mnist" }
    scenario = { name = "class_incremental", n_chunks = 5 }

    [[entry]]
    learner = { name = "er", mem_size = 500 }
    acc = 0.774                         # expected mean final ACC; the band is acc ± tol
    tol = 0.021
    forgetting = 0.219                  # optional: expected mean forgetting, band forgetting ± forgetting_tol
    forgetting_tol = 0.03
    observed = { acc = 0.774, acc_std = 0.012, acc_seeds = [...], forgetting = 0.219, ... }

    [[order]]
    better = "derpp"                    # an entry's learner name, or its label when a name repeats
    worse = "er"
    metric = "acc"                      # "acc", "online_acc", "late_learning_acc" (higher is better), or "forgetting" (lower)
    margin = 0.0                        # on every seed, better must beat worse by more than this
    why = "Buzzega et al. 2020, Table 2"

Bands come from the spread of the mean over seeds, not from one seed's spread: ``--record`` sets
``tol = max(TOL_FLOOR, BAND_SEMS · s/√n)`` where ``s`` is the standard deviation of the per-seed
values and ``n`` the number of seeds (:func:`band`). Runs are deterministic, so an unchanged method
reproduces its mean exactly; the band only has to absorb a change that reshuffles the random streams,
which moves an n-seed mean by about √2·s/√n.

``lifelong ledger check`` reruns entries and fails (exit 1) when a mean leaves its band or an
ordering fails on a seed; ``--record`` rewrites each entry's ``observed`` table and its bands from the
rerun (orderings are never rewritten: a failed ordering is a finding, not a band to widen).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from lifelong.data.datasets import dataset_available
from lifelong.device import resolve_device
from lifelong.errors import ConfigError
from lifelong.evaluate import accuracy_matrix, classic_metrics, online_accuracy
from lifelong.evaluate.classic import late_learning_accuracy
from lifelong.experiments.config import from_dict, read_toml
from lifelong.experiments.runner import build_run, iter_seed, load_data
from lifelong.options import check_value

TIERS = ("fast", "full", "paper")
SUITE_KEYS = ("suite", "tier", "seeds", "description", "base", "entry", "order", "requires")
#: What a suite may declare it needs (``requires = ["dataset", "accelerator"]``): its dataset's files
#: present locally, and a CUDA or MPS device. A check skips, and says so, a suite whose needs are
#: not met (the paper tier's recipes, not run in CI).
REQUIREMENTS = ("dataset", "accelerator")
ENTRY_KEYS = ("learner", "acc", "tol", "forgetting", "forgetting_tol", "observed")
ORDER_KEYS = ("better", "worse", "metric", "margin", "why")
#: What an ordering compares: final ACC and mean online (prequential) accuracy, higher is better;
#: forgetting, lower is better. Online accuracy is where plasticity methods act (a faster recovery
#: after each shift), so it is what separates them from fine-tuning. ``late_learning_acc`` is the
#: accuracy on each new task right after it is learned, averaged over the last tenth of the tasks
#: (:func:`lifelong.evaluate.classic.late_learning_accuracy`): what a loss of plasticity lowers on a
#: long stream of equally hard tasks.
METRICS = ("acc", "forgetting", "online_acc", "late_learning_acc")
#: The narrowest band ``--record`` writes, for a learner whose seeds agree to the last digit.
TOL_FLOOR = 0.01
#: ``--record``'s band in standard errors of the mean over seeds (about two standard deviations of the
#: difference between two independent n-seed means).
BAND_SEMS = 3.0


def band(values: list[float]) -> float:
    """The band ``--record`` writes for per-seed ``values``: ``max(TOL_FLOOR, BAND_SEMS · s/√n)``,
    rounded up to 0.005.

    Examples
    --------
    >>> band([0.80, 0.80, 0.80]), band([0.70, 0.75, 0.80])
    (0.01, 0.09)
    """
    vals = [v for v in values if not math.isnan(v)]
    if len(vals) < 2:
        return 0.05  # one seed says nothing about the spread: a wide band, and a reason to add seeds
    sem = float(np.std(vals, ddof=1)) / math.sqrt(len(vals))
    return max(TOL_FLOOR, round(math.ceil(round(BAND_SEMS * sem / 0.005, 6)) * 0.005, 3))


@dataclass
class Entry:
    suite: str
    learner: dict[str, Any]
    acc: float
    tol: float
    observed: dict[str, Any] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    forgetting: float | None = None
    forgetting_tol: float | None = None

    @property
    def label(self) -> str:
        return f"{self.suite}/{self.key}"

    @property
    def key(self) -> str:
        """The label within its suite: the learner's name and its options."""
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.learner.items()) if k != "name")
        return self.learner["name"] + (f"[{extra}]" if extra else "")

    def selected_by(self, words: list[str]) -> bool:
        """Whether one of ``words`` names this entry: its learner (every entry of that learner), its
        key or its label. Whole names only: ``cls`` does not select ``cls_er``."""
        return any(w.strip() in (self.learner["name"], self.key, self.label) for w in words if w.strip())

    def config(self):
        doc = {**self.base, "seeds": list(self.seeds), "learner": dict(self.learner), "name": self.learner["name"]}
        return from_dict(doc)


@dataclass(frozen=True)
class Order:
    """``better`` beats ``worse`` on ``metric`` by more than ``margin`` on every seed of the suite."""

    suite: str
    better: str
    worse: str
    metric: str = "acc"
    margin: float = 0.0
    why: str = ""

    @property
    def label(self) -> str:
        word = {"forgetting": "forgets less than", "online_acc": "> (online accuracy)",
                "late_learning_acc": "> (late-task learning accuracy)"}.get(self.metric, ">")
        return f"{self.suite}: {self.better} {word} {self.worse}" + (f" by {self.margin}" if self.margin else "")


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
    orders: list[Order] = field(default_factory=list)
    requires: tuple[str, ...] = ()

    def unmet(self) -> list[str]:
        """The suite's declared needs (:data:`REQUIREMENTS`) that this machine does not meet, in words."""
        out = []
        if "dataset" in self.requires:
            ds = self.base.get("dataset", {})
            if not dataset_available(ds.get("name", ""), ds.get("data_dir")):
                out.append(f"the {ds.get('name')} files (pass data_dir in [base.dataset] or set $LIFELONG_DATA)")
        if "accelerator" in self.requires and resolve_device("auto").type == "cpu":
            out.append("an accelerator (CUDA or MPS)")
        return out

    def entry(self, ref: str) -> Entry:
        """The entry ``ref`` names: its key (``er[mem_size=200]``), or its learner name when only one entry has it."""
        by_key = [e for e in self.entries if e.key == ref]
        by_name = [e for e in self.entries if e.learner["name"] == ref]
        found = by_key or by_name
        if len(found) != 1:
            keys = [e.key for e in self.entries]
            raise ConfigError(f"ledger file {self.path}: ordering names {ref!r}, which "
                              f"{'matches several entries' if found else 'is no entry'}; entries: {keys}")
        return found[0]


def _number(value: Any, where: str) -> float:
    check_value(value, float, where=where)
    return float(value)


def _load_order(path: Path, suite: str, i: int, o: Any) -> Order:
    where = f"ledger file {path}: order {i}"
    if not isinstance(o, dict):
        raise ConfigError(f"{where} must be a table: [[order]] with better = \"...\" and worse = \"...\"")
    missing = {"better", "worse"} - set(o)
    if missing:
        raise ConfigError(f"{where} lacks {sorted(missing)}")
    unknown = sorted(set(o) - set(ORDER_KEYS))
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; known: {list(ORDER_KEYS)}")
    metric = o.get("metric", "acc")
    if metric not in METRICS:
        raise ConfigError(f"{where}: metric must be one of {METRICS}, got {metric!r}")
    if o["better"] == o["worse"]:
        raise ConfigError(f"{where} compares {o['better']!r} with itself")
    return Order(suite, str(o["better"]), str(o["worse"]), metric,
                 _number(o.get("margin", 0.0), f"{where} margin"), str(o.get("why", "")))


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
    if not isinstance(raw.get("order", []), list):
        raise ConfigError(f"ledger file {path}: `order` must be a list of [[order]] tables")
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
        if ("forgetting" in e) != ("forgetting_tol" in e):
            raise ConfigError(f"ledger file {path}: entry {i} needs forgetting and forgetting_tol together")
        where = f"ledger file {path}: entry {i}"
        nums = {k: _number(e[k], f"{where} {k}") for k in ("acc", "tol", "forgetting", "forgetting_tol") if k in e}
        if not isinstance(e["learner"], dict):
            raise ConfigError(f"{where} learner must be a table, e.g. {{ name = \"er\" }}")
        entries.append(Entry(raw["suite"], e["learner"], nums["acc"], nums["tol"], dict(e.get("observed", {})),
                             raw["base"], seeds, nums.get("forgetting"), nums.get("forgetting_tol")))
    orders = [_load_order(path, raw["suite"], i, o) for i, o in enumerate(raw.get("order", []))]
    requires = raw.get("requires", [])
    if not isinstance(requires, list) or not set(requires) <= set(REQUIREMENTS):
        raise ConfigError(f"ledger file {path}: requires must be a list drawn from {list(REQUIREMENTS)}, got {requires!r}")
    suite = Suite(path, raw["suite"], raw["tier"], seeds, raw.get("description", ""), raw["base"], entries, raw, orders,
                  tuple(requires))
    keys = [e.key for e in entries]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"ledger file {path}: entries repeat {sorted({k for k in keys if keys.count(k) > 1})}")
    for i, entry in enumerate(entries):  # validate now (names and types of every section), not an hour into a check
        try:
            entry.config()
        except ConfigError as e:
            raise ConfigError(f"ledger file {path}: entry {i} ({entry.label}): {e}") from None
    for o in orders:
        suite.entry(o.better), suite.entry(o.worse)
    return suite


def smoke_suite(suite: Suite, data_dir: str | Path, *, train_per_chunk: int = 40, test_per_chunk: int = 20,
                epochs: int = 1, nf: int = 4) -> Suite:
    """A CPU-sized version of a paper-tier ``suite``: the same scenario, learners, hyper-parameters and
    protocol, on the files in ``data_dir``, with ``train_per_chunk``/``test_per_chunk`` samples per
    chunk, ``epochs`` epochs, a ResNet of width ``nf``, one seed, on the CPU. It checks that the
    recipe runs end to end, not the paper's numbers.
    """
    base = {k: (dict(v) if isinstance(v, dict) else v) for k, v in suite.base.items()}
    base["dataset"] = {**base.get("dataset", {}), "data_dir": str(data_dir)}
    base["scenario"] = {**base.get("scenario", {}), "train_per_chunk": train_per_chunk, "test_per_chunk": test_per_chunk}
    base["train"] = {**base.get("train", {}), "epochs": epochs, "device": "cpu"}
    if str(base.get("model", {}).get("kind", "")).startswith("resnet"):
        base["model"] = {**base["model"], "nf": nf}
    entries = [Entry(f"{suite.name}-smoke", e.learner, e.acc, e.tol, {}, base, (suite.seeds[0],)) for e in suite.entries]
    return Suite(suite.path, f"{suite.name}-smoke", "fast", (suite.seeds[0],), f"CPU smoke of {suite.name}", base,
                 entries, suite.raw, [])


def find_suites(root: str | Path, tier: str | None = None) -> list[Suite]:
    root = Path(root)
    files = [root] if root.is_file() else sorted(root.glob("*.toml"))
    if not files:
        raise ConfigError(f"no ledger files (*.toml) under {root}")
    suites = [load_suite(f) for f in files]
    return [s for s in suites if tier is None or s.tier == tier]


def _mean(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


@dataclass
class Outcome:
    entry: Entry
    acc_seeds: list[float]
    forgetting_seeds: list[float]
    wall_time_s: float
    online_seeds: list[float] = field(default_factory=list)
    #: the 1-minute load average when the entry finished: a wall time is comparable only on a quiet machine
    load_1m: float = math.nan
    late_seeds: list[float] = field(default_factory=list)

    @property
    def acc(self) -> float:
        return _mean(self.acc_seeds)

    @property
    def acc_std(self) -> float:
        return float(np.std(self.acc_seeds, ddof=1)) if len(self.acc_seeds) > 1 else 0.0

    @property
    def forgetting(self) -> float:
        return _mean(self.forgetting_seeds)

    def per_seed(self, metric: str) -> list[float]:
        """The per-seed values of ``metric`` (one of :data:`METRICS`)."""
        return {"acc": self.acc_seeds, "forgetting": self.forgetting_seeds, "online_acc": self.online_seeds,
                "late_learning_acc": self.late_seeds}[metric]

    @property
    def acc_ok(self) -> bool:
        return not math.isnan(self.acc) and abs(self.acc - self.entry.acc) <= self.entry.tol

    @property
    def forgetting_ok(self) -> bool:
        e = self.entry
        if e.forgetting is None:
            return True
        return not math.isnan(self.forgetting) and abs(self.forgetting - e.forgetting) <= e.forgetting_tol

    @property
    def passed(self) -> bool:
        return self.acc_ok and self.forgetting_ok

    def problems(self) -> list[str]:
        """What left its band, in words."""
        e, out = self.entry, []
        if not self.acc_ok:
            out.append(f"ACC {self.acc:.4f} outside {e.acc} ± {e.tol}")
        if not self.forgetting_ok:
            out.append(f"forgetting {self.forgetting:.4f} outside {e.forgetting} ± {e.forgetting_tol}")
        return out


def run_entry(entry: Entry, cache: dict | None = None) -> Outcome:
    """Run every seed of an entry in memory (no run directory) and measure it."""
    cfg = entry.config()
    key = repr(sorted(cfg.dataset.items()))
    cache = {} if cache is None else cache
    if key not in cache:
        cache[key] = load_data(cfg)
    ds = cache[key]
    accs, forgets, online, late = [], [], [], []
    t0 = time.perf_counter()
    for seed in cfg.seeds:
        records = list(iter_seed(build_run(cfg, seed, ds)))
        m = classic_metrics(records, seed)
        accs.append(float(m["acc"]))
        forgets.append(float(m["forgetting"]))
        online.append(float(online_accuracy(records, seed)))
        late.append(float(late_learning_accuracy(accuracy_matrix(records, seed))))
    wall = (time.perf_counter() - t0) / len(cfg.seeds)
    return Outcome(entry, accs, forgets, wall, online, os.getloadavg()[0], late)


@dataclass
class OrderOutcome:
    order: Order
    margins: list[float]  # per seed, from paired_margins
    seeds: tuple[int, ...]

    @property
    def passed(self) -> bool:
        return bool(self.margins) and all(m > self.order.margin for m in self.margins)

    def describe(self) -> str:
        per_seed = ", ".join(f"seed {s}: {m:+.4f}" for s, m in zip(self.seeds, self.margins, strict=True))
        verdict = "holds" if self.passed else "FAILS"
        return f"{self.order.label} {verdict} ({per_seed})" + (f"; {self.order.why}" if self.order.why else "")


#: Per ordering metric: +1 when higher is better, -1 when lower is (forgetting).
_SIGN = {"acc": 1, "online_acc": 1, "late_learning_acc": 1, "forgetting": -1}


def paired_margins(metric: str, better: list[float], worse: list[float]) -> list[float]:
    """Per seed, how far ``better`` beats ``worse`` on ``metric`` (positive: it does); NaN counts as −inf."""
    margins = [_SIGN[metric] * (b - w) for b, w in zip(better, worse, strict=True)]
    return [m if not math.isnan(m) else -math.inf for m in margins]


def check_order(suite: Suite, order: Order, outcomes: dict[str, Outcome]) -> OrderOutcome:
    """Check ``order`` seed by seed on the outcomes of its two entries (keyed by entry label)."""
    better, worse = (outcomes[suite.entry(ref).label].per_seed(order.metric) for ref in (order.better, order.worse))
    return OrderOutcome(order, paired_margins(order.metric, better, worse), suite.seeds)


def _rounded(values: list[float]) -> list[Any]:
    return [round(v, 4) if not math.isnan(v) else "nan" for v in values]


def record(suite: Suite, outcomes: list[Outcome]) -> None:
    """Rewrite the suite file with the observed values of ``outcomes`` and the bands they give."""
    by_label = {o.entry.label: o for o in outcomes}
    for raw_entry, entry in zip(suite.raw["entry"], suite.entries, strict=True):
        o = by_label.get(entry.label)
        if o is None:
            continue
        raw_entry["acc"], raw_entry["tol"] = round(o.acc, 4), band(o.acc_seeds)
        if not math.isnan(o.forgetting):
            raw_entry["forgetting"], raw_entry["forgetting_tol"] = round(o.forgetting, 4), band(o.forgetting_seeds)
        else:
            raw_entry.pop("forgetting", None), raw_entry.pop("forgetting_tol", None)
        raw_entry["observed"] = {
            "acc": round(o.acc, 4), "acc_std": round(o.acc_std, 4), "acc_seeds": _rounded(o.acc_seeds),
            "forgetting": round(o.forgetting, 4) if not math.isnan(o.forgetting) else "nan",
            "forgetting_seeds": _rounded(o.forgetting_seeds), "online_acc_seeds": _rounded(o.online_seeds),
            "late_learning_acc_seeds": _rounded(o.late_seeds),
            "wall_time_s": round(o.wall_time_s, 2), "load_1m": round(o.load_1m, 2),
        }
    suite.path.write_text(tomli_w.dumps(suite.raw), encoding="utf-8")


_OBSERVED = {"acc": "acc_seeds", "forgetting": "forgetting_seeds", "online_acc": "online_acc_seeds",
             "late_learning_acc": "late_learning_acc_seeds"}


def _recorded_margins(suite: Suite, order: Order) -> str:
    """The ordering's per-seed margins from the two entries' recorded values ("not recorded" without them)."""
    key = _OBSERVED[order.metric]
    b, w = (suite.entry(ref).observed.get(key) for ref in (order.better, order.worse))
    if not b or not w or len(b) != len(w) or any(isinstance(v, str) for v in [*b, *w]):
        return "not recorded"
    return ", ".join(f"{m:+.3f}" for m in paired_margins(order.metric, b, w))


def markdown_table(suite: Suite) -> str:
    """The suite's expected and last observed values, and its orderings, as Markdown (for BENCHMARKS.md)."""
    lines = [f"**{suite.name}** ({suite.tier} tier, seeds {list(suite.seeds)}): {suite.description}", "",
             "| learner | expected ACC | observed ACC (mean ± std) | expected forgetting | s/seed (load) |",
             "|---|---|---|---|---|"]
    for e in suite.entries:
        o = e.observed
        obs = f"{o['acc']:.3f} ± {o['acc_std']:.3f}" if "acc" in o else "not run"
        forget = f"{e.forgetting:.3f} ± {e.forgetting_tol:.3f}" if e.forgetting is not None else "-"
        wall = f"{o.get('wall_time_s', '')}" + (f" ({o['load_1m']})" if "load_1m" in o else "")
        lines.append(f"| {e.key} | {e.acc:.3f} ± {e.tol:.3f} | {obs} | {forget} | {wall} |")
    if suite.orders:
        lines += ["", "| ordering (checked on every seed) | recorded margin per seed | why |", "|---|---|---|"]
        for o in suite.orders:
            lines.append(f"| {o.label.split(': ', 1)[1]} | {_recorded_margins(suite, o)} | {o.why} |")
    return "\n".join(lines)
