"""A run directory as the reports see it: ``metrics.json``, ``config.toml`` and the log.

The log is read by :func:`lifelong.log.read_log`, the package's one log reader, without its
``train`` records (the bulk of a log; no report reads them).

The seed statistics every report shares live here too: a mean with its 95% t-interval
(:func:`mean_interval`), the paired difference of two runs over their common seeds
(:func:`paired_interval`), and :func:`significant_best`, the one run (if any) whose lead survives
the seeds (REFERENCE.md, "Comparisons across seeds"). The t quantiles come from a table
(:func:`t_quantile`): scipy is not a dependency.
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lifelong.errors import DataError
from lifelong.log import Record, read_log
from lifelong.evaluate.health import NEAR_CHANCE, learns_late, never_learned  # noqa: F401 (part of the view API)
from lifelong.report.format import LOWER_IS_BETTER, num

#: The 0.975 quantile of Student's t with ``df`` degrees of freedom, for ``df = 1..30``.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
#: Beyond the table: (largest df, quantile at the band's lower end), rounded up so intervals err wide.
_T975_TAIL = ((40, 2.042), (60, 2.021), (120, 2.000))


@dataclass
class RunView:
    """What a report reads from a run directory."""

    run_dir: Path
    metrics: dict[str, Any]
    records: list[Record]  # every record except ``train`` ones
    config_text: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.run_dir.resolve().name

    @property
    def learner(self) -> str:
        return str(self.meta.get("learner", "?"))

    @property
    def n_seeds(self) -> int:
        return len(self.metrics.get("per_seed", {})) or 1

    @property
    def config(self) -> dict[str, Any]:
        """``config.toml`` parsed; empty when the run has none or it does not parse."""
        try:
            return tomllib.loads(self.config_text)
        except tomllib.TOMLDecodeError:
            return {}

    def seed_values(self, section: str, key: str) -> dict[str, float]:
        """``{seed: value}`` of one metric, from ``per_seed`` (``section`` ``"classic"`` or ``"l2m"``)."""
        src = self.metrics if section == "classic" else self.metrics.get("l2m", {})
        return {str(s): num(m.get(key)) for s, m in (src.get("per_seed") or {}).items()}


def t_quantile(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (two-sided 95%).

    Exact to three decimals for ``df <= 30``; above, the value at the lower end of the band
    (30-40, 40-60, 60-120), so an interval is never narrower than the exact one; 1.980 beyond 120.

    Examples
    --------
    >>> t_quantile(1), t_quantile(2), t_quantile(1000)
    (12.706, 4.303, 1.98)
    """
    if df < 1:
        raise ValueError(f"t_quantile needs df >= 1, got {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    for top, q in _T975_TAIL:
        if df <= top:
            return q
    return 1.980


def mean_interval(values: Sequence[float]) -> tuple[float, float, int]:
    """``(mean, half-width of the 95% t-interval, n)`` over the finite values.

    The half-width is ``t(n-1) * std(ddof=1) / sqrt(n)``; NaN with fewer than two values.

    Examples
    --------
    >>> m, h, n = mean_interval([0.5, 0.7, float("nan")])
    >>> round(m, 4), round(h, 4), n  # 12.706 * 0.1414 / sqrt(2)
    (0.6, 1.2706, 2)
    """
    v = [float(x) for x in values if not math.isnan(num(x))]
    n = len(v)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(v) / n
    if n == 1:
        return mean, math.nan, 1
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    return mean, t_quantile(n - 1) * sd / math.sqrt(n), n


def paired_interval(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[float, float, int]:
    """The per-seed paired difference ``a - b``: ``(mean, 95% half-width, n common seeds)``.

    Only seeds where both values are finite count. ``n < 2`` gives a NaN half-width.

    Examples
    --------
    >>> m, h, n = paired_interval({"0": 0.9, "1": 0.8, "2": 0.7}, {"0": 0.5, "1": 0.4, "2": 0.3})
    >>> round(m, 4), round(h, 4), n  # the same 0.4 gap on every seed: zero width
    (0.4, 0.0, 3)
    """
    common = [s for s in a if s in b and not math.isnan(num(a[s])) and not math.isnan(num(b[s]))]
    return mean_interval([float(a[s]) - float(b[s]) for s in common])


def beats(a: Mapping[str, float], b: Mapping[str, float], key: str) -> bool | None:
    """Whether run ``a`` is significantly better than run ``b`` on metric ``key`` (lower is better for
    :data:`~lifelong.report.format.LOWER_IS_BETTER`).

    True when both ran the same seeds (those with a finite value), at least two of them, and the 95%
    interval of the paired difference lies wholly on ``a``'s side of 0. None when the two cannot be
    told apart this way (unmatched or too few seeds); False otherwise (a tie or ``b`` ahead).
    """
    sa = {s for s, v in a.items() if not math.isnan(num(v))}
    sb = {s for s, v in b.items() if not math.isnan(num(v))}
    if sa != sb or len(sa) < 2:
        return None
    mean, half, _ = paired_interval(a, b)
    if key in LOWER_IS_BETTER:
        mean = -mean
    if abs(mean) <= 1e-12:  # identical values are a tie, whatever the rounding of the half-width
        return False
    return mean - half > 0


def significant_best(per_run: Sequence[Mapping[str, float]], key: str) -> set[int]:
    """The run whose lead on ``key`` survives the seeds: ``{i}`` if run ``i`` :func:`beats` every other
    run with a value, else the empty set (a tie: no star). Runs with no finite value are left out.

    Examples
    --------
    >>> a, b = {"0": 0.9, "1": 0.8, "2": 0.85}, {"0": 0.5, "1": 0.45, "2": 0.5}
    >>> significant_best([a, b], "acc"), significant_best([a, b], "forgetting"), significant_best([a, a], "acc")
    ({0}, {1}, set())
    """
    have = [i for i, r in enumerate(per_run) if any(not math.isnan(num(v)) for v in r.values())]
    if len(have) < 2:
        return set()
    for i in have:
        if all(beats(per_run[i], per_run[k], key) is True for k in have if k != i):
            return {i}
    return set()


def fmt_interval(mean: float, half: float) -> str:
    """``"0.8123 ± 0.0100"`` (mean ± 95% half-width), ``"0.8123"`` when the width is undefined, ``"n/a"``."""
    if math.isnan(num(mean)):
        return "n/a"
    if math.isnan(num(half)):
        return f"{mean:.4f}"
    return f"{mean:.4f} ± {half:.4f}"


def load_run(run_dir: str | Path) -> RunView:
    """Read ``metrics.json``, ``config.toml`` and the non-training records of a run directory.

    Raises
    ------
    DataError
        If the directory has no ``log.jsonl`` or ``metrics.json``.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "log.jsonl").is_file():
        raise DataError(f"{run_dir} has no log.jsonl; pass a directory written by `lifelong run`")
    if not (run_dir / "metrics.json").is_file():
        raise DataError(f"{run_dir} has no metrics.json; rebuild it with `lifelong report {run_dir}`")
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{run_dir}/metrics.json is not valid JSON ({e}); rebuild it with `lifelong report {run_dir}`") from None
    records = read_log(run_dir / "log.jsonl", exclude=("train",))
    config = run_dir / "config.toml"
    config_text = config.read_text(encoding="utf-8") if config.is_file() else "(no config.toml)"
    meta = next((r.extra for r in records if r.kind == "meta"), {})
    return RunView(run_dir, metrics, records, config_text, meta)



def chance_level(meta: Mapping[str, Any]) -> float:
    """Accuracy of guessing, from the log's meta record: ``1/n_classes`` of the stream, or, where the
    task id restricts the prediction (``task_incremental``), the mean of ``1/len(classes)`` over the
    chunks. NaN when the meta record does not say."""
    if meta.get("scenario") == "task_incremental" or meta.get("setting") == "task-IL":
        sizes = [len(c) for c in meta.get("chunk_classes") or [] if c]
        if sizes:
            return sum(1 / k for k in sizes) / len(sizes)
    n = num(meta.get("n_classes"))
    return 1 / n if n and not math.isnan(n) and n > 0 else math.nan


def learned(view: RunView) -> str | None:
    """Why a run's forgetting cannot be judged, or None when it can (or a number is unknown):
    ``"never learned (learning accuracy X near chance Y)"`` when its learning and final accuracies are
    near chance (:func:`never_learned`); ``"learns late (...)"`` when only its learning accuracy is
    (:func:`learns_late`): it ends above chance, but its forgetting measures nothing."""
    summary = view.metrics.get("summary", {})
    la = num((summary.get("learning_accuracy") or [math.nan])[0])
    final = num((summary.get("acc") or [math.nan])[0])
    chance = chance_level(view.meta)
    if learns_late(la, final, chance):
        return (f"learns late (learning accuracy {la:.3f} near chance {chance:.3f}, final accuracy {final:.3f}: "
                "its forgetting measures nothing)")
    if never_learned(la, chance, final):
        return f"never learned (learning accuracy {la:.3f} near chance {chance:.3f})"
    return None
