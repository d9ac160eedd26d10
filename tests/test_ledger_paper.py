"""The paper tier: the DER paper's Seq-CIFAR-10 recipes (not run in CI), skipped where their data or
an accelerator is missing, and their CPU smoke version on generated CIFAR-format files."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from lifelong.experiments.ledger import find_suites, run_entry, smoke_suite

from conftest import cli, cli_env
from test_datasets import write_cifar_dir

LEDGER = Path(__file__).resolve().parents[1] / "ledger"
PAPER = {s.name: s for s in find_suites(LEDGER, "paper")}
#: Buzzega et al. 2020, Table 2 (Seq-CIFAR-10, buffers 200 / 500)
DER_TABLE_2 = {
    "class": {"er": (44.79, 57.74), "der": (61.93, 70.51), "derpp": (64.88, 72.70)},
    "task": {"er": (91.19, 93.61), "der": (91.40, 93.40), "derpp": (91.92, 93.88)},
}


@pytest.mark.parametrize("setting", ["class", "task"])
def test_the_paper_suites_encode_the_der_protocol_and_numbers(setting):
    suite = PAPER[f"paper-seq-cifar10-{setting}-il"]
    assert suite.tier == "paper" and set(suite.requires) == {"dataset", "accelerator"}
    base = suite.base
    assert base["dataset"] == {"name": "cifar10", "normalize": True}
    assert base["scenario"]["name"] == "split_cifar10" and base["scenario"].get("task_il", False) == (setting == "task")
    assert base["model"] == {"kind": "resnet18", "nf": 64}
    assert base["train"] == {"epochs": 50, "batch_size": 32, "lr": 0.03, "augment": "crop_flip", "device": "auto"}
    got = {(e.learner["name"], e.learner["mem_size"]): e.acc for e in suite.entries}
    want = {(name, mem): v / 100 for name, pair in DER_TABLE_2[setting].items() for mem, v in zip((200, 500), pair)}
    assert got.keys() == want.keys() and all(math.isclose(got[k], want[k], abs_tol=1e-9) for k in want)


def test_the_paper_tier_is_skipped_without_its_data(tmp_path, monkeypatch):
    monkeypatch.delenv("LIFELONG_DATA", raising=False)
    for suite in PAPER.values():
        assert any("cifar10 files" in u for u in suite.unmet())  # no CIFAR-10 here
    proc = subprocess.run(cli("ledger", "check", str(LEDGER / "paper_seq_cifar10_cil.toml"), "--tier", "paper"),
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "skipped paper-seq-cifar10-class-il: needs the cifar10 files" in " ".join(proc.stdout.split())


@pytest.mark.parametrize("setting", ["class", "task"])
def test_the_cpu_smoke_of_each_recipe_runs_on_generated_cifar_files(tmp_path, setting):
    write_cifar_dir(tmp_path / "cifar-10-batches-py", per_batch=40)  # 200 training images, 40 test images
    suite = smoke_suite(PAPER[f"paper-seq-cifar10-{setting}-il"], tmp_path, train_per_chunk=16, test_per_chunk=4)
    assert suite.unmet() == [] and suite.seeds == (0,)
    cache: dict = {}
    for entry in suite.entries:
        cfg = entry.config()
        assert cfg.train["epochs"] == 1 and cfg.train["augment"] == "crop_flip" and cfg.model["nf"] == 4
        outcome = run_entry(entry, cache)
        assert 0.0 <= outcome.acc <= 1.0 and not math.isnan(outcome.forgetting), entry.label
