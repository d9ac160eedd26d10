"""The documentation matches the code."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from lifelong.testing import LEARNER_CHECKS

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "examples" / "plugin"


def build_script():
    spec = importlib.util.spec_from_file_location("build_learners", ROOT / "docs" / "build_learners.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def code_blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def test_learners_page_is_generated_from_the_current_code():
    mod = build_script()
    assert (ROOT / "docs" / "learners.md").read_text() == mod.render(), "run: .venv/bin/python docs/build_learners.py"


def test_the_learners_page_lists_only_the_built_in_methods():
    mod = build_script()
    builtins = mod.builtin_learners()
    assert builtins and all(c.__module__.startswith("lifelong.learn.methods.") for c in builtins.values())
    page = (ROOT / "docs" / "learners.md").read_text()
    assert set(re.findall(r"^## (\S+)$", page, flags=re.M)) == set(builtins)


def test_contributing_page_tables_are_generated_from_the_current_code():
    mod = build_script()
    text = (ROOT / "docs" / "contributing.md").read_text()
    assert mod.render_contributing(text) == text, "run: .venv/bin/python docs/build_learners.py"
    for name, _ in LEARNER_CHECKS:
        assert f"`{name}`" in text
    assert "tests/contract/test_learners.py::test_learner_contract" in text
    assert "tests/test_ledger.py::test_every_learner_has_a_ledger_entry_in_each_tier" in text
    for ledger in (ROOT / "ledger").glob("*.toml"):
        assert f"`ledger/{ledger.name}`" in text


def test_every_method_file_cites_a_paper_and_lists_deviations():
    for name, cls in build_script().builtin_learners().items():
        doc = sys.modules[cls.__module__].__doc__ or ""
        assert cls.paper and cls.description, name
        if cls.paper != "baseline":
            assert "Deviation" in doc or "deviation" in doc, f"{name}: the module docstring must list deviations"


def test_the_plugin_page_shows_the_tested_example_package():
    page = (ROOT / "docs" / "plugins.md").read_text()
    python, toml = code_blocks(page, "python"), code_blocks(page, "toml")
    learner = (FIXTURE / "src" / "lifelong_example_plugin" / "__init__.py").read_text()
    assert learner in python, "docs/plugins.md must show examples/plugin's learner verbatim"
    assert len(learner.splitlines()) <= 40
    assert (FIXTURE / "pyproject.toml").read_text() in toml
    assert (FIXTURE / "tests" / "test_weighted_er.py").read_text() in python
    for name, _ in LEARNER_CHECKS:
        assert f"`{name}`" in page, f"docs/plugins.md does not list the check {name}"


def test_readme_first_screen_has_the_two_commands():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:20])
    assert "make demo" in first_screen and "make test" in first_screen


def test_readme_links_every_guide_and_lays_out_every_subpackage():
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+\.md)\)", readme):
        assert (ROOT / target).is_file(), f"README links the missing {target}"
    for guide in (ROOT / "docs").glob("*.md"):
        assert f"(docs/{guide.name})" in readme, f"README's Documentation section does not link docs/{guide.name}"
    layout = readme.split("## Layout", 1)[1]
    package = ROOT / "lifelong"
    for sub in sorted(p.name for p in package.iterdir() if (p / "__init__.py").is_file()):
        assert f"`lifelong/{sub}/`" in layout, f"README's Layout section does not mention lifelong/{sub}/"
    for module in ("testing.py", "plugins.py"):
        assert f"`lifelong/{module}`" in layout
