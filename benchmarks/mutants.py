"""Deliberate bugs that `make test` must catch: each is applied to a copy of the repository and the
tests that guard it are run there; the bug is caught when they fail.

The six mutants of issue 10: DER++ without its logit term, EWC that never consolidates, LwF that
never distils, the boundary evaluation moved before ``end_chunk``, the BWT sign flipped, and a
biased reservoir (a full memory that always overwrites slot 0..b-1 instead of a uniform slot).
Each runs only the test files that should catch it (a subset of `make test`: a failure there is
a failure of `make test`), so the whole script takes a few minutes.

Run: ``.venv/bin/python benchmarks/mutants.py [--only NAME] [--ledger]``. Prints one line per mutant and exits
1 if any mutant survives. Never part of `make test` itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: name -> (file, text to replace, replacement, test paths that must fail)
MUTANTS: dict[str, tuple[str, str, str, list[str]]] = {
    "derpp-no-logit-term": (
        "lifelong/learn/methods/der.py",
        'logit = self.alpha * F.mse_loss(z1, first.extras["logits"])',
        'logit = 0.0 * F.mse_loss(z1, first.extras["logits"])',
        ["tests/learners/test_mechanisms.py"],
    ),
    "ewc-never-consolidates": (
        "lifelong/learn/methods/ewc.py",
        "        fisher = self.fisher_diagonal(learner, self.chunk_sample.all())\n"
        "        self.penalty.consolidate(",
        "        fisher = self.fisher_diagonal(learner, self.chunk_sample.all())\n"
        "        return\n        self.penalty.consolidate(",
        ["tests/learners/test_mechanisms.py"],
    ),
    "lwf-never-distils": (
        "lifelong/learn/methods/lwf.py",
        "return self.alpha * distillation(ctx.logits[:, self.old_classes], old, self.temperature)",
        "return 0.0 * distillation(ctx.logits[:, self.old_classes], old, self.temperature)",
        ["tests/learners/test_mechanisms.py"],
    ),
    "boundary-eval-before-end-chunk": (
        "lifelong/learn/loop.py",
        "        if not stream.task_free and chunk.index not in sleeping:\n"
        "            learner.end_chunk()\n"
        "        yield from _evaluate_all(learner, stream, cfg, seed=seed, chunk=chunk.index, step=step, boundary=True)\n",
        "        yield from _evaluate_all(learner, stream, cfg, seed=seed, chunk=chunk.index, step=step, boundary=True)\n"
        "        if not stream.task_free and chunk.index not in sleeping:\n"
        "            learner.end_chunk()\n",
        ["tests/test_loop.py", "tests/contract"],
    ),
    "bwt-sign-flipped": (
        "lifelong/evaluate/classic.py",
        "return float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)]))",
        "return float(np.mean([R[j, j] - R[T - 1, j] for j in range(T - 1)]))",
        ["tests/test_metrics_classic.py", "lifelong/evaluate/classic.py"],
    ),
    "biased-reservoir": (
        "lifelong/learn/memory.py",
        "            slot = t if t < self.capacity else min(int(ui * (t + 1)), t)\n",
        "            slot = t if t < self.capacity else min(i, t)\n",
        ["tests/test_memory.py", "tests/contract/test_memories.py"],
    ),
}


#: The method mutants are also checked against the fast ledger's orderings (``--ledger``): the
#: ``-k`` words select the orderings that involve the method.
LEDGER_GUARDS: dict[str, str] = {
    "derpp-no-logit-term": "ordering and derpp",
    "ewc-never-consolidates": "ordering and ewc",
    "lwf-never-distils": "ordering and lwf",
}


def run_mutant(name: str, ledger: bool = False) -> tuple[bool, str]:
    """Apply mutant ``name`` to a copy of the repository and run its tests (with ``ledger``, the
    fast ledger orderings that involve the method instead); (caught, summary line)."""
    path, old, new, tests = MUTANTS[name]
    select: list[str] = []
    if ledger:
        tests, select = ["tests/test_ledger.py"], ["-k", LEDGER_GUARDS[name]]
    with tempfile.TemporaryDirectory(prefix=f"mutant-{name}-") as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "runs", "__pycache__",
                                                                  ".pytest_cache", "results"))
        target = copy / path
        text = target.read_text(encoding="utf-8")
        if text.count(old) != 1:
            return False, f"{name}: the mutation no longer applies to {path} (update benchmarks/mutants.py)"
        target.write_text(text.replace(old, new), encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(copy), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--doctest-modules", *select, *tests]
        cmd += [] if ledger else ["-x"]
        proc = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=1800)
        tail = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
        caught = proc.returncode != 0
        first = tail[0] if tail else proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        fails = "; ".join(line.split(" - ")[0].split("::")[-1] for line in tail) if ledger else first
        return caught, f"{name}: {'caught' if caught else 'MISSED'} by {' '.join(tests + select)} -- {fails}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated mutant names")
    ap.add_argument("--ledger", action="store_true",
                    help="check the method mutants against the fast ledger's orderings instead of their tests")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(LEDGER_GUARDS if args.ledger else MUTANTS)
    missed = 0
    for name in names:
        caught, line = run_mutant(name, ledger=args.ledger)
        missed += not caught
        print(line, flush=True)
    print(f"{len(names) - missed}/{len(names)} mutants caught")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
