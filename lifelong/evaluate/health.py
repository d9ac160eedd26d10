"""Warnings about a run's numbers, from its log: an under-trained reference, a learner that never learned.

A comparison is only as good as its references. A Joint or Cumulative run whose training loss is
still falling steeply when training stops is not an upper bound; a learner whose learning accuracy
(accuracy on each task right after learning it) stays near chance did not learn, whatever its
forgetting says. :func:`run_warnings` names both, in words a user can act on; ``lifelong run``
prints them and the report shows them.

Examples
--------
>>> from lifelong.log import Record
>>> recs = [Record("train", seed=0, chunk=0, epoch=0, step=i + 1, n=10, n_correct=3, loss_sum=40.0 - i)
...         for i in range(20)]
>>> still_falling(recs, 0)  # the last quarter of the batches against the quarter before
(2.8, 2.3)
>>> still_falling([r for r in recs[:8]] + [Record("train", chunk=0, epoch=0, step=9 + i, n=10, n_correct=3,
...               loss_sum=32.0) for i in range(12)], 0) is None  # levelled off
True
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from lifelong.log import Record

__all__ = ["FALLING", "REFERENCES", "run_warnings", "still_falling"]

#: Relative drop of the training loss over the last stretch of training that counts as "still falling".
FALLING = 0.15
#: Learners that are upper references.
REFERENCES = ("joint", "cumulative")


def still_falling(records: Iterable[Record], seed: int) -> tuple[float, float] | None:
    """``(loss before, loss at the end)`` of the last training chunk when its loss is still falling.

    The last chunk's training batches are compared: the last epoch against the one before, or,
    with a single epoch, the last quarter of the batches against the quarter before it. Returns
    None when the loss has levelled off (a relative drop under :data:`FALLING`) or there is too
    little to tell.
    """
    train = [r for r in records if r.kind == "train" and r.seed == seed]
    if not train:
        return None
    last_chunk = max(r.chunk for r in train)
    rows = [r for r in train if r.chunk == last_chunk]
    epochs = sorted({r.epoch for r in rows})
    if len(epochs) >= 2:
        a = [r for r in rows if r.epoch == epochs[-2]]
        b = [r for r in rows if r.epoch == epochs[-1]]
    else:
        q = len(rows) // 4
        if q < 2:
            return None
        a, b = rows[-2 * q:-q], rows[-q:]

    def mean_loss(rs: list[Record]) -> float:
        n = sum(r.n for r in rs)
        return sum(r.loss_sum for r in rs) / n if n else math.nan

    before, after = mean_loss(a), mean_loss(b)
    if not (before > 0) or math.isnan(after):
        return None
    return (round(before, 4), round(after, 4)) if (before - after) / before > FALLING else None


def _num(v: Any) -> float:
    """``v`` as a float; NaN for None or anything that is not a number."""
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


#: A learner whose learning accuracy stays below ``chance + NEAR_CHANCE * (1 - chance)`` never learned.
NEAR_CHANCE = 0.1


def _near_chance(value: float, chance: float) -> bool:
    value, chance = _num(value), _num(chance)
    return not (math.isnan(value) or math.isnan(chance)) and value < chance + NEAR_CHANCE * (1 - chance)


def never_learned(learning_accuracy: float, chance: float, final: float = math.nan) -> bool:
    """True when the learning accuracy is within :data:`NEAR_CHANCE` of the way from chance to 1, and
    so is the final accuracy when it is given.

    Examples
    --------
    >>> never_learned(0.15, 0.1), never_learned(0.5, 0.1), never_learned(float("nan"), 0.1)
    (True, False, False)
    >>> never_learned(0.1, 0.1, final=0.12), never_learned(0.1, 0.1, final=0.32)
    (True, False)
    """
    return _near_chance(learning_accuracy, chance) and (math.isnan(_num(final)) or _near_chance(final, chance))


def learns_late(learning_accuracy: float, final: float, chance: float) -> bool:
    """True when the learning accuracy stays near chance but the final accuracy does not: the model
    judged at each boundary lags the training (a slow weight average, a class learnt only from
    replay), so the run learned, only late, and its forgetting measures nothing.

    >>> learns_late(0.1, 0.32, 0.1), learns_late(0.1, 0.12, 0.1), learns_late(0.9, 0.5, 0.1)
    (True, False, False)
    """
    return _near_chance(learning_accuracy, chance) and not math.isnan(_num(final)) and not _near_chance(final, chance)


def run_warnings(records: list[Record], metrics: dict[str, Any], meta: dict[str, Any], chance: float) -> list[str]:
    """Warnings for a run: near-chance learning accuracy, or an upper reference still learning."""
    out = []
    learner = str(meta.get("learner", ""))
    la = (metrics.get("summary", {}).get("learning_accuracy") or [math.nan])[0]
    final = (metrics.get("summary", {}).get("acc") or [math.nan])[0]
    if learns_late(la, final, chance):
        out.append(f"{learner} learns late: its learning accuracy {la:.3f} stays near chance ({chance:.3f}) but it "
                   f"ends at {final:.3f}; the model judged at each boundary lags its training (a slow weight "
                   "average, or classes learnt only through replay), so its forgetting is no measure of stability")
    elif never_learned(la, chance, final):
        out.append(f"{learner} never learned: its learning accuracy {la:.3f} stays near chance ({chance:.3f}); "
                   "its forgetting and final accuracy say nothing about continual learning. Check the "
                   "learning rate and epochs ([train]) and the input scale (standardize = true for your own data)")
    seeds_ = sorted({r.seed for r in records if r.kind == "train"})
    falling = [s for s in seeds_ if still_falling(records, s) is not None]
    if learner in REFERENCES and falling:
        before, after = still_falling(records, falling[0])  # type: ignore[misc]
        out.append(f"{learner} is under-trained: its training loss was still falling when training stopped "
                   f"({before:.3f} -> {after:.3f}, seed {falling[0]}), so it is not yet an upper bound; "
                   "raise [train] epochs")
    return out
