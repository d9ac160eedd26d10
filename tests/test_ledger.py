"""The ledger's fast tier runs on every submission: each entry must stay inside its band."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifelong.errors import ConfigError
from lifelong.experiments.ledger import find_suites, load_suite, run_entry

LEDGER = Path(__file__).resolve().parents[1] / "ledger"
FAST = [e for s in find_suites(LEDGER, "fast") for e in s.entries]


@pytest.mark.slow
@pytest.mark.parametrize("entry", FAST, ids=[e.label for e in FAST])
def test_fast_tier_entry_stays_in_its_band(entry):
    outcome = run_entry(entry)
    assert outcome.passed, f"{entry.label}: ACC {outcome.acc:.4f} outside {entry.acc} ± {entry.tol}"


def test_every_learner_has_a_ledger_entry_in_each_tier():
    from lifelong.learn.methods import builtin_learners

    shipped = set(builtin_learners())  # a plugin registered in this process needs no rows here
    for tier in ("fast", "full"):
        covered = {e.learner["name"] for s in find_suites(LEDGER, tier) for e in s.entries}
        assert covered >= shipped, f"{tier} tier lacks {sorted(shipped - covered)}"


def test_full_tier_covers_the_required_settings():
    suites = {s.name: s for s in find_suites(LEDGER, "full")}
    assert suites["split-fmnist-class-il"].seeds == (0, 1, 2)
    assert suites["permuted-fmnist-domain-il"].base["scenario"]["n_chunks"] == 5
    online = {e.learner["name"] for e in suites["online-split-fmnist"].entries}
    assert {"er", "derpp", "cls_er", "er_ace"} <= online
    assert suites["online-split-fmnist"].base["train"]["batch_size"] == 10


def test_a_broken_ledger_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('suite = "x"\ntier = "nightly"\n[base]\n[[entry]]\nlearner = {name = "er"}\nacc = 1\ntol = 0')
    with pytest.raises(ConfigError, match="tier must be one of"):
        load_suite(bad)
    bad.write_text('suite = "x"\ntier = "fast"\n[base]\n[[entry]]\nlearner = {name = "nope"}\nacc = 1\ntol = 0')
    with pytest.raises(ConfigError, match="unknown learner 'nope'"):
        load_suite(bad)


@pytest.mark.parametrize(("text", "words"), [
    # the run config's own validator checks each entry: typed learner options, lr in [train] only
    ('[[entry]]\nlearner = {name = "er", mem_size = 2.5}\nacc = 1\ntol = 0', r"entry 0 \(x/er\[mem_size=2.5\]\): \[learner\] mem_size must be an integer"),
    ('[[entry]]\nlearner = {name = "er", lr = 0.1}\nacc = 1\ntol = 0', r"\[learner\] lr: .*\[train\] lr"),
    ('[base.scenario]\nname = "class_incremental"\nn_chunks = "5"\n[[entry]]\nlearner = {name = "er"}\nacc = 1\ntol = 0',
     "n_chunks must be an integer, got '5'"),
    ('[base.reference]\nrun = "x"\n[[entry]]\nlearner = {name = "er"}\nacc = 1\ntol = 0', r"no \[reference\] section"),
    ('[[entry]]\nlearner = {name = "er"}\nacc = "high"\ntol = 0', "entry 0 acc must be a number"),
    ('[[entry]]\nlearner = {name = "er"}\nacc = 1\ntol = 0\nnote = "x"', "entry 0 has unknown key"),
    ('owner = "me"\n[[entry]]\nlearner = {name = "er"}\nacc = 1\ntol = 0', "unknown key"),
])
def test_ledger_entries_go_through_the_run_config_validator(tmp_path, text, words):
    bad = tmp_path / "bad.toml"
    head, _, rest = text.partition("[[entry]]")
    bad.write_text('suite = "x"\ntier = "fast"\n' + (head if not head.startswith("[base") else "")
                   + ("[base]\n" if not head.startswith("[base") else head) + "[[entry]]" + rest)
    with pytest.raises(ConfigError, match=words):
        load_suite(bad)


def test_an_entry_out_of_band_fails(tmp_path):
    path = tmp_path / "tight.toml"
    path.write_text(
        'suite = "tight"\ntier = "fast"\nseeds = [0]\n[base]\ndataset = {name = "blobs"}\n'
        'scenario = {name = "class_incremental", n_chunks = 5}\nmodel = {hidden = [16]}\n'
        '[[entry]]\nlearner = {name = "naive"}\nacc = 0.99\ntol = 0.001\n'
    )
    outcome = run_entry(load_suite(path).entries[0])
    assert not outcome.passed and outcome.acc < 0.5
