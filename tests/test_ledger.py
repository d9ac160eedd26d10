"""The ledger's fast tier runs on every submission: each entry must stay inside its band."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lifelong.errors import ConfigError
from lifelong.experiments.ledger import Entry, Order, Outcome, band, check_order, find_suites, load_suite, record, run_entry

LEDGER = Path(__file__).resolve().parents[1] / "ledger"
FAST_SUITES = find_suites(LEDGER, "fast")
FAST = [e for s in FAST_SUITES for e in s.entries]
ORDERS = [(s, o) for s in FAST_SUITES for o in s.orders]
_DATA: dict = {}
_OUTCOMES: dict = {}


def outcome_of(entry):
    """Each fast entry runs once per session: the band test and the orderings share its outcome."""
    if entry.label not in _OUTCOMES:
        _OUTCOMES[entry.label] = run_entry(entry, _DATA)
    return _OUTCOMES[entry.label]


@pytest.mark.slow
@pytest.mark.parametrize("entry", FAST, ids=[e.label for e in FAST])
def test_fast_tier_entry_stays_in_its_band(entry):
    outcome = outcome_of(entry)
    assert outcome.passed, f"{entry.label}: " + "; ".join(outcome.problems())


@pytest.mark.slow
@pytest.mark.parametrize(("suite", "order"), ORDERS, ids=[o.label for _, o in ORDERS])
def test_fast_tier_ordering_holds_on_every_seed(suite, order):
    outcomes = {suite.entry(ref).label: outcome_of(suite.entry(ref)) for ref in (order.better, order.worse)}
    result = check_order(suite, order, outcomes)
    assert result.passed, result.describe()


def test_every_learner_has_a_ledger_entry_in_each_tier():
    from lifelong.learn.methods import builtin_learners

    shipped = set(builtin_learners())  # a plugin registered in this process needs no rows here
    for tier in ("fast", "full"):
        covered = {e.learner["name"] for s in find_suites(LEDGER, tier) for e in s.entries}
        assert covered >= shipped, f"{tier} tier lacks {sorted(shipped - covered)}"


def test_the_fast_tier_separates_every_learner_from_naive_somewhere():
    """A learner silently reduced to naive fine-tuning must fail CI: each one has a fast ordering over naive."""
    from lifelong.learn.methods import builtin_learners

    beats_naive = {s.entry(o.better).learner["name"] for s, o in ORDERS
                   if o.metric in ("acc", "online_acc") and s.entry(o.worse).learner["name"] == "naive"}
    missing = sorted(set(builtin_learners()) - {"naive"} - beats_naive)
    assert not missing, f"no fast-tier [[order]] puts these above naive: {missing}"


def test_fast_entries_check_forgetting_as_well_as_acc():
    lacking = [e.label for e in FAST if e.forgetting is None and e.learner["name"] != "joint"]
    assert not lacking, f"fast entries without a forgetting band: {lacking}"


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


def _tiny_suite(tmp_path, entries: str, orders: str = "", seeds: str = "[0, 1]"):
    path = tmp_path / "tiny.toml"
    path.write_text(
        f'suite = "tiny"\ntier = "fast"\nseeds = {seeds}\n[base]\ndataset = {{name = "blobs"}}\n'
        'scenario = {name = "class_incremental", n_chunks = 5}\nmodel = {hidden = [16]}\n'
        'train = {epochs = 2, batch_size = 16, lr = 0.05}\n' + entries + orders)
    return path


def test_orderings_name_entries_and_are_validated(tmp_path):
    entries = '[[entry]]\nlearner = {name = "naive"}\nacc = 0.3\ntol = 0.1\n[[entry]]\nlearner = {name = "er", mem_size = 50}\nacc = 0.3\ntol = 0.1\n'
    suite = load_suite(_tiny_suite(tmp_path, entries, '[[order]]\nbetter = "er"\nworse = "naive"\nwhy = "replay"\n'))
    assert suite.orders == [Order("tiny", "er", "naive", "acc", 0.0, "replay")]
    assert suite.entry("er[mem_size=50]") is suite.entry("er")
    for order, words in (('better = "gem"\nworse = "naive"', "names 'gem', which is no entry"),
                         ('better = "er"\nworse = "er"', "with itself"),
                         ('better = "er"\nworse = "naive"\nmetric = "bwt"', "metric must be one of"),
                         ('better = "er"', "lacks"),
                         ('better = "er"\nworse = "naive"\nby = 1', "unknown key")):
        with pytest.raises(ConfigError, match=words):
            load_suite(_tiny_suite(tmp_path, entries, "[[order]]\n" + order + "\n"))
    with pytest.raises(ConfigError, match="forgetting and forgetting_tol together"):
        load_suite(_tiny_suite(tmp_path, entries.replace("tol = 0.1\n", "tol = 0.1\nforgetting = 0.5\n", 1)))
    with pytest.raises(ConfigError, match="repeat"):
        load_suite(_tiny_suite(tmp_path, entries + entries))


def _outcome(name: str, accs, forgets, online=(0.5, 0.5, 0.5)):
    return Outcome(Entry("s", {"name": name}, 0.0, 1.0), list(accs), list(forgets), 0.0, list(online))


def test_an_ordering_must_hold_on_every_seed_not_only_on_the_mean():
    entries = [Entry("s", {"name": n}, 0.0, 1.0, seeds=(0, 1, 2)) for n in ("a", "b")]
    from lifelong.experiments.ledger import Suite
    suite = Suite(Path("s.toml"), "s", "fast", (0, 1, 2), "", {}, entries, {})
    outcomes = {"s/a": _outcome("a", [0.9, 0.9, 0.5], [0.1, 0.1, 0.1]),
                "s/b": _outcome("b", [0.6, 0.6, 0.6], [0.3, 0.3, 0.05])}
    acc = check_order(suite, Order("s", "a", "b"), outcomes)
    assert not acc.passed and acc.margins == pytest.approx([0.3, 0.3, -0.1])  # the mean favours a; seed 2 does not
    assert "FAILS" in acc.describe() and "seed 2: -0.1000" in acc.describe()
    assert check_order(suite, Order("s", "a", "b", margin=-0.2), outcomes).passed
    forget = check_order(suite, Order("s", "a", "b", metric="forgetting"), outcomes)  # lower forgetting is better
    assert forget.margins == pytest.approx([0.2, 0.2, -0.05]) and not forget.passed
    assert not check_order(suite, Order("s", "b", "a"), outcomes).passed
    outcomes["s/b"] = _outcome("b", [0.6] * 3, [0.3] * 3, online=[0.4, 0.45, 0.49])
    online = check_order(suite, Order("s", "a", "b", metric="online_acc"), outcomes)
    assert online.passed and online.margins == pytest.approx([0.1, 0.05, 0.01])


def test_late_learning_acc_orders_on_the_new_task_accuracy_of_the_last_tasks():
    from lifelong.evaluate.classic import late_learning_accuracy
    from lifelong.experiments.ledger import Suite

    R = [[0.9, 0.0, 0.0], [0.5, 0.8, 0.0], [0.4, 0.3, 0.2]]
    assert late_learning_accuracy(R) == pytest.approx(0.2)  # k = ceil(0.3) = 1: the last diagonal entry
    assert late_learning_accuracy(R, fraction=0.5) == pytest.approx(0.5)  # k = 2: (0.8 + 0.2) / 2
    assert math.isnan(late_learning_accuracy([[0.5, 0.5]]))  # not square
    entries = [Entry("s", {"name": n}, 0.0, 1.0, seeds=(0, 1)) for n in ("a", "b")]
    suite = Suite(Path("s.toml"), "s", "fast", (0, 1), "", {}, entries, {})
    outcomes = {"s/a": Outcome(entries[0], [0.1, 0.1], [0.9, 0.9], 0.0, [0.5, 0.5], late_seeds=[0.8, 0.7]),
                "s/b": Outcome(entries[1], [0.2, 0.2], [0.9, 0.9], 0.0, [0.5, 0.5], late_seeds=[0.3, 0.75])}
    late = check_order(suite, Order("s", "a", "b", metric="late_learning_acc"), outcomes)
    assert late.margins == pytest.approx([0.5, -0.05]) and not late.passed  # seed 1 fails although the final ACC says nothing
    assert "late-task" in late.order.label


def test_bands_come_from_the_spread_of_the_mean_over_seeds():
    assert band([0.5, 0.5]) == 0.01  # identical seeds: the floor
    wide = [0.70, 0.75, 0.80]  # s = 0.05, s/sqrt(3) = 0.0289: 3 SEMs = 0.087, rounded up to 0.09
    assert band(wide) == 0.09
    assert band(wide * 3) < band(wide)  # more seeds, a narrower band for the mean
    assert band([0.7]) == 0.05


def test_record_writes_bands_and_forgetting_from_the_rerun(tmp_path):
    path = _tiny_suite(tmp_path, '[[entry]]\nlearner = {name = "er", mem_size = 50}\nacc = 0.0\ntol = 0.0\n')
    suite = load_suite(path)
    outcome = run_entry(suite.entries[0])
    assert len(outcome.acc_seeds) == 2 and not outcome.passed
    record(suite, [outcome])
    entry = load_suite(path).entries[0]
    assert entry.acc == pytest.approx(outcome.acc, abs=1e-4) and entry.tol == band(outcome.acc_seeds)
    assert entry.forgetting == pytest.approx(outcome.forgetting, abs=1e-4)
    assert entry.forgetting_tol == band(outcome.forgetting_seeds)
    assert entry.observed["acc_seeds"] == [round(a, 4) for a in outcome.acc_seeds]
    assert run_entry(entry).passed  # deterministic: the rerun reproduces what was recorded


def test_forgetting_out_of_its_band_fails(tmp_path):
    suite = load_suite(_tiny_suite(tmp_path, '[[entry]]\nlearner = {name = "naive"}\nacc = 0.3\ntol = 1.0\n'
                                             'forgetting = 0.0\nforgetting_tol = 0.01\n', seeds="[0]"))
    outcome = run_entry(suite.entries[0])
    assert outcome.acc_ok and not outcome.forgetting_ok and not outcome.passed  # naive forgets nearly everything
    assert "forgetting" in outcome.problems()[0]


def test_only_selects_whole_learner_names_and_keys():
    """``ledger check --only cls`` must not re-run (or, with --record, rewrite) ``cls_er``'s entries."""
    from lifelong.experiments.ledger import load_suite

    suite = load_suite(Path(__file__).parent.parent / "ledger" / "fast_digits.toml")
    picked = lambda words: sorted(e.key for e in suite.entries if e.selected_by(words))  # noqa: E731
    assert picked(["cls"]) and all(k.split("[")[0] == "cls" for k in picked(["cls"]))
    assert "cls_er" not in " ".join(k.split("[")[0] for k in picked(["cls"]))
    assert picked(["cls_er"]) and all(k.startswith("cls_er") for k in picked(["cls_er"]))
    er_keys = [e.key for e in suite.entries if e.learner["name"] == "er"]
    assert picked([er_keys[-1]]) == [er_keys[-1]]  # a key names one entry
    assert picked(["", " "]) == []
