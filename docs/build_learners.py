"""Write docs/learners.md from the learners' own docstrings (run: .venv/bin/python docs/build_learners.py).

tests/test_docs.py checks that the page is up to date, so it cannot drift from the code.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from lifelong.learn.methods import LEARNERS, hyperparameters

PAGE = Path(__file__).with_name("learners.md")


def render() -> str:
    out = [
        "# Learners",
        "",
        "Generated from each method file's docstring by `docs/build_learners.py`. Each entry names the",
        "paper, the settings the method supports and every deviation from the paper.",
        "",
        "| name | what it does | paper |",
        "|---|---|---|",
    ]
    for name, cls in LEARNERS.items():
        out.append(f"| [`{name}`](#{name}) | {cls.description} | {cls.paper} |")
    for name, cls in LEARNERS.items():
        module = sys.modules[cls.__module__]
        hp = {k: v for k, v in hyperparameters(cls).items() if k not in ("seed", "task_classes")}
        out += [
            "",
            f"## {name}",
            "",
            f"`{cls.__module__}.{cls.__name__}`",
            "",
            inspect.cleandoc(module.__doc__ or "").strip(),
            "",
            "Hyper-parameters (defaults): " + ", ".join(f"`{k}={v!r}`" for k, v in hp.items()),
        ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    PAGE.write_text(render(), encoding="utf-8")
    print(f"wrote {PAGE}")
