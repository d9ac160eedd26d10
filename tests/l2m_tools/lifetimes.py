"""Deterministic synthetic lifetimes (L2M rows) for the L2M metric tests.

A toy learner holds one skill in [0, 1] per task. Training on a task moves its skill towards the
task's ceiling and lets the other tasks' skills decay towards chance, with a little positive
transfer between tasks; sleep training consolidates (every skill moves a little towards its
ceiling). A training experience reports ``skill + noise``, an evaluation ``skill + smaller noise``,
so the curves look like noisy learning curves with forgetting. Everything is drawn from
``numpy.random.default_rng(seed)``, so a lifetime is the same on every run.

Every builder returns ``(rows, ste)``: the lifetime's rows (for ``write_l2logger``) and a dict
task -> list of STE runs, each a list of rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lifelong.log import Record

Rows = list[dict[str, Any]]


class ToyLearner:
    """Builds an L2M lifetime block by block."""

    def __init__(self, tasks: list[str], seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.tasks = tasks
        self.chance = {t: 0.1 + 0.05 * i for i, t in enumerate(tasks)}
        self.ceiling = {t: 0.95 - 0.08 * i for i, t in enumerate(tasks)}
        self.rate = {t: 0.02 + 0.015 * i for i, t in enumerate(tasks)}
        self.skill = dict(self.chance)
        self.rows: Rows = []
        self.block = 0

    def _row(self, block_type: str, subtype: str, task: str, perf: float, **extra: Any) -> dict[str, Any]:
        row = {
            "block_num": self.block,
            "exp_num": len(self.rows) if not self.rows else self.rows[-1]["exp_num"] + 1,
            "block_type": block_type,
            "block_subtype": subtype,
            "task_name": task,
            "task_params": {"block": self.block},
            "exp_status": "complete",
            "performance": perf,
        }
        row.update(extra)
        self.rows.append(row)
        return row

    def train(self, task: str, n: int, *, subtype: str = "wake", new_block: bool = True) -> None:
        for _ in range(n):
            if subtype == "wake":
                self.skill[task] += self.rate[task] * (self.ceiling[task] - self.skill[task])
                for other in self.tasks:
                    if other != task:
                        self.skill[other] -= 0.004 * (self.skill[other] - self.chance[other])
                        self.skill[other] += 0.0015 * (self.ceiling[other] - self.skill[other])
            else:  # sleep: slow consolidation of every task
                for t in self.tasks:
                    self.skill[t] += 0.01 * (self.ceiling[t] - self.skill[t])
            perf = float(np.clip(self.skill[task] + self.rng.normal(0, 0.06), 0, 1))
            self._row("train", subtype, task, perf)
        if new_block:
            self.block += 1

    def test(self, tasks: list[str] | None = None, *, subtype: str = "wake", reps: int = 1) -> None:
        for task in tasks or self.tasks:
            for _ in range(reps):
                perf = float(np.clip(self.skill[task] + self.rng.normal(0, 0.02), 0, 1))
                self._row("test", subtype, task, perf)
        self.block += 1


def ste_run(task: str, tasks: list[str], lengths: list[int], seed: int) -> Rows:
    """An STE log: the task trained alone, in ``lengths`` learning blocks with evaluations between."""
    learner = ToyLearner(tasks, seed)
    learner.test([task])
    for n in lengths:
        learner.train(task, n)
        learner.test([task])
    return learner.rows


# --------------------------------------------------------------------------------------------
# lifetimes


def condensed() -> tuple[Rows, dict[str, list[Rows]]]:
    """Each task learned once, with an evaluation of every task before and after each block."""
    tasks = ["alpha_0", "beta_0", "gamma_1"]
    lt = ToyLearner(tasks, seed=11)
    lt.test()
    for task, n in zip(tasks, (120, 90, 150)):
        lt.train(task, n)
        lt.test()
    ste = {
        "alpha_0": [ste_run("alpha_0", tasks, [120], 101), ste_run("alpha_0", tasks, [100], 102)],
        "beta_0": [ste_run("beta_0", tasks, [60, 40], 103)],
        "gamma_1": [ste_run("gamma_1", tasks, [150], 104)],
    }
    return lt.rows, ste


def dispersed() -> tuple[Rows, dict[str, list[Rows]]]:
    """Tasks come back three to four times, with short (unsmoothed) and very long (window-capped)
    blocks, repeated evaluation rows sharing an exp_num, NaN performances and incomplete rows."""
    tasks = ["alpha_0", "Beta_0", "gamma_1"]
    lt = ToyLearner(tasks, seed=12)
    lt.test(reps=2)
    schedule = [("alpha_0", 40), ("Beta_0", 30), ("gamma_1", 12), ("alpha_0", 25), ("Beta_0", 520),
                ("gamma_1", 45), ("alpha_0", 14), ("Beta_0", 33), ("gamma_1", 60), ("alpha_0", 70)]
    for i, (task, n) in enumerate(schedule):
        lt.train(task, n)
        if i == 5:  # two training rows that share an exp_num
            lt.rows[-10]["exp_num"] = lt.rows[-11]["exp_num"]
        lt.test(reps=3 if i == 3 else 2)
        if i == 3:  # evaluation rows that share an exp_num: averaged per experience first for P(e)
            lt.rows[-1]["exp_num"] = lt.rows[-2]["exp_num"]
            lt.rows[-4]["exp_num"] = lt.rows[-5]["exp_num"]
    # missing values: a NaN performance and incomplete experiences are ignored by the metrics
    lt.rows[45]["performance"] = math.nan
    lt.rows[200]["exp_status"] = "incomplete"
    lt.rows[201]["exp_status"] = "incomplete"
    lt.rows[201]["performance"] = 0.0
    ste = {
        "alpha_0": [ste_run("alpha_0", tasks, [80, 40], 201)],
        "gamma_1": [ste_run("gamma_1", tasks, [30], 202), ste_run("gamma_1", tasks, [200], 203)],
    }
    return lt.rows, ste


def sleep_eval() -> tuple[Rows, dict[str, list[Rows]]]:
    """Wake learning blocks each followed by a sleep learning block and a sleep evaluation block.

    With sleep evaluation blocks present, both ``l2metrics`` and we use only those for maintenance,
    transfer and mean evaluation performance; the wake evaluation blocks are dropped.
    """
    tasks = ["alpha_0", "beta_0"]
    lt = ToyLearner(tasks, seed=13)
    lt.test(subtype="sleep")
    for task, n in [("alpha_0", 50), ("beta_0", 40), ("alpha_0", 30), ("beta_0", 35), ("alpha_0", 25)]:
        lt.train(task, n)
        lt.test()  # a wake evaluation: ignored by both because sleep evaluations exist
        lt.train(task, 16, subtype="sleep")
        lt.test(subtype="sleep")
    ste = {"alpha_0": [ste_run("alpha_0", tasks, [60], 301)], "beta_0": [ste_run("beta_0", tasks, [45], 302)]}
    return lt.rows, ste


def sleep_records() -> list[Record]:
    """A run log (our Record format) whose chunks end with sleep training records.

    Chunk tasks come from ``meta.extra["chunk_tasks"]``; evaluation set ``j`` defaults to
    ``task{j}_0``. Chunk 3 revisits task 0 and chunk 4 task 1, so recovery is defined for task 0.
    """
    rng = np.random.default_rng(14)
    chunk_tasks = ["task0_0", "task1_0", "task0_0", "task1_0", "task0_0"]
    skill = [0.1, 0.12]
    recs = [Record("meta", seed=3, extra={"chunk_tasks": chunk_tasks, "n_chunks": len(chunk_tasks)})]
    step = 0

    def evals(chunk: int) -> None:
        for j in range(2):
            n = 200
            recs.append(Record("eval", seed=3, chunk=chunk, task=j, step=step, n=n,
                               n_correct=int(round(n * min(1.0, max(0.0, skill[j] + rng.normal(0, 0.02))))),
                               loss_sum=float(n * (1 - skill[j])), boundary=True))

    evals(-1)
    for c, task in enumerate(chunk_tasks):
        t = int(task[4])
        for k in range(30 + 5 * c):
            step += 1
            skill[t] += 0.05 * (0.9 - skill[t])
            skill[1 - t] -= 0.01 * (skill[1 - t] - 0.1)
            n = 32
            recs.append(Record("train", seed=3, chunk=c, epoch=0, step=step, n=n,
                               n_correct=int(np.clip(round(n * (skill[t] + rng.normal(0, 0.08))), 0, n)),
                               loss_sum=float(n * (1 - skill[t]))))
            if k == 10:
                recs.append(Record("eval", seed=3, chunk=c, task=t, step=step, n=50, n_correct=25, boundary=False))
        for _ in range(16):  # sleep phase: consolidation
            step += 1
            skill[0] += 0.01 * (0.9 - skill[0])
            skill[1] += 0.01 * (0.9 - skill[1])
            n = 32
            recs.append(Record("train", seed=3, chunk=c, epoch=0, step=step, n=n,
                               n_correct=int(np.clip(round(n * (skill[t] + rng.normal(0, 0.08))), 0, n)),
                               loss_sum=float(n * (1 - skill[t])), extra={"subtype": "sleep"}))
        evals(c)
        recs.append(Record("chunk_end", seed=3, chunk=c, step=step))
    return recs


def relabel_sleep_as_wake_block(rows: Rows) -> Rows:
    """Turn each sleep learning regime into a wake learning block of its own.

    Block ``b`` becomes ``2b`` (its sleep rows ``2b + 1``), so every regime keeps its rows, its
    values and its place in the order, but nothing is labelled sleep. Maintenance, transfer and mean
    evaluation performance do not look at the sleep label, so their values on the relabelled log are
    what they should be on the original one. Needs the sleep rows of a block to come last.
    """
    out = []
    for r in rows:
        r = dict(r)
        sleep = r.get("block_subtype") == "sleep" and r["block_type"] == "train"
        r["block_num"] = 2 * r["block_num"] + (1 if sleep else 0)
        r["block_subtype"] = "wake"
        out.append(r)
    return out


def shared_interval() -> tuple[Rows, dict[str, list[Rows]]]:
    """Two learning blocks (of ``a`` then ``b``) between the same two evaluations of ``c``.

    ``l2metrics`` keeps only ``b -> c`` forward transfer (``a -> c`` is overwritten); we keep both.
    """
    tasks = ["a_0", "b_0", "c_0"]
    lt = ToyLearner(tasks, seed=15)
    lt.test()
    lt.train("a_0", 40)
    lt.train("b_0", 40)
    lt.test()
    lt.train("c_0", 40)
    lt.test()
    lt.train("a_0", 30)
    lt.test()
    return lt.rows, {}
