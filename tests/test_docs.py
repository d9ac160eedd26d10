"""The documentation matches the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lifelong.learn.methods import LEARNERS

ROOT = Path(__file__).resolve().parents[1]


def test_learners_page_is_generated_from_the_current_code():
    spec = importlib.util.spec_from_file_location("build_learners", ROOT / "docs" / "build_learners.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert (ROOT / "docs" / "learners.md").read_text() == mod.render(), "run: .venv/bin/python docs/build_learners.py"


def test_every_method_file_cites_a_paper_and_lists_deviations():
    import sys

    for name, cls in LEARNERS.items():
        doc = sys.modules[cls.__module__].__doc__ or ""
        assert cls.paper and cls.description, name
        if cls.paper != "baseline":
            assert "Deviation" in doc or "deviation" in doc, f"{name}: the module docstring must list deviations"


def test_readme_first_screen_has_the_two_commands():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:20])
    assert "make demo" in first_screen and "make test" in first_screen
