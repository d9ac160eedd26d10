"""End-to-end runs of the real CLI (subprocesses), its outputs and its error handling."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import cli, cli_env

TINY = """
name = "tiny"
seeds = [0, 1]
threads = 1
[dataset]
name = "blobs"
[scenario]
name = "class_incremental"
n_chunks = 5
[model]
hidden = [32]
[train]
batch_size = 16
[learner]
name = "er"
mem_size = 50
"""


def run_cli(tmp_path, *args, check=False):
    proc = subprocess.run(cli(*args), cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_run_writes_the_run_directory_and_a_summary(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    proc = run_cli(tmp_path, "run", "tiny.toml", check=True)
    run = tmp_path / "runs" / "tiny"
    for f in ("config.toml", "log.jsonl", "metrics.json", "report.md", "checkpoints/seed0.pt", "checkpoints/seed1.pt"):
        assert (run / f).is_file(), f
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["per_seed"]) == {"0", "1"}
    acc_mean, acc_std = metrics["summary"]["acc"]
    assert 0.3 < acc_mean <= 1.0 and acc_std > 0  # ER learns the tiny stream; two seeds differ
    assert "±" in (run / "report.md").read_text()
    assert "er" in proc.stdout and "acc" in proc.stdout
    # report rebuilds the same metrics from the log alone
    before = (run / "report.md").read_text()
    (run / "report.md").unlink()
    run_cli(tmp_path, "report", str(run), check=True)
    assert (run / "report.md").read_text() == before


def test_flags_override_the_config(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    run_cli(tmp_path, "run", "tiny.toml", "--learner", "naive", "--seeds", "3", "--epochs", "2",
            "--batch-size", "8", "--lr", "0.01", "--name", "over", check=True)
    cfg = (tmp_path / "runs" / "over" / "config.toml").read_text()
    assert 'name = "naive"' in cfg and "mem_size" not in cfg
    assert "epochs = 2" in cfg and "batch_size = 8" in cfg and "lr = 0.01" in cfg
    metrics = json.loads((tmp_path / "runs" / "over" / "metrics.json").read_text())
    assert list(metrics["per_seed"]) == ["3"]


def test_list_shows_every_registered_name(tmp_path):
    from lifelong.data.datasets import DATASETS
    from lifelong.learn.methods import LEARNERS
    from lifelong.data.scenarios import SCENARIOS

    out = run_cli(tmp_path, "list", check=True).stdout
    for name in [*DATASETS, *LEARNERS, *SCENARIOS]:
        assert name in out


BAD_CONFIGS = {
    "malformed TOML": ("name = [unclosed", "not valid TOML"),
    "unknown top-level key": ('name = "x"\nbogus = 1', "unknown config key"),
    "unknown train key": ("[train]\nepochs = 1\nspeed = 3", "unknown key 'speed'"),
    "unknown learner": ('[learner]\nname = "nope"', "unknown learner 'nope'"),
    "unknown hyper-parameter": ('[learner]\nname = "er"\nmemsize = 5', "no hyper-parameter 'memsize'"),
    "unknown dataset": ('[dataset]\nname = "imagenet"', "unknown dataset"),
    "bad split": ('[dataset]\nname = "blobs"\n[scenario]\nname = "class_incremental"\nn_chunks = 3\nclasses_per_chunk = 4',
                  "need 12 classes"),
    "negative epochs": ("[train]\nepochs = -1", "positive integer"),
    "missing data directory": ('[dataset]\nname = "mnist"\ndata_dir = "/no/such/dir"', "/no/such/dir"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_configs_exit_2_with_one_clear_line(tmp_path, case):
    text, expected = BAD_CONFIGS[case]
    (tmp_path / "bad.toml").write_text(text)
    proc = run_cli(tmp_path, "run", "bad.toml")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert expected in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("log.jsonl"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("a,b,label\n1,2,0\nnan,3,1\n1,1,0\n2,2,1\n", "NaN"),
        ("a,b,label\n1,2,0.5\n2,3,1\n1,1,0\n2,2,1\n", "integer"),
        ("a,b,label\n1,2,cat\n2,3,dog\n1,1,cat\n2,2,dog\n", "integer"),
    ],
)
def test_bad_user_data_exits_2(tmp_path, content, expected):
    (tmp_path / "d.csv").write_text(content)
    (tmp_path / "c.toml").write_text('[dataset]\nname = "file"\npath = "d.csv"\n[scenario]\nname = "class_incremental"\nn_chunks = 1')
    proc = run_cli(tmp_path, "run", "c.toml")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert expected in proc.stderr


def test_mismatched_input_shape_is_a_clear_error(tmp_path):
    import torch

    from lifelong.data import Batch
    from lifelong.errors import DataError
    from lifelong.learn.memory import ReservoirMemory

    mem = ReservoirMemory(5)
    mem.add(Batch(torch.zeros(2, 3), torch.tensor([0, 1])))
    with pytest.raises(DataError, match="shape"):
        mem.add(Batch(torch.zeros(2, 4), torch.tensor([0, 1])))


def test_corrupt_checkpoint_exits_2_and_keeps_the_log(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    run_cli(tmp_path, "run", "tiny.toml", check=True)
    run = tmp_path / "runs" / "tiny"
    log_before = (run / "log.jsonl").read_bytes()
    ckpt = run / "checkpoints" / "seed0.pt"
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\x00" * 64
    ckpt.write_bytes(bytes(data[: len(data) - 100]))
    proc = run_cli(tmp_path, "run", "--resume", str(run))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "corrupt" in proc.stderr and "seed0.pt" in proc.stderr
    assert (run / "log.jsonl").read_bytes() == log_before


def test_existing_run_is_not_overwritten_without_force(tmp_path):
    (tmp_path / "tiny.toml").write_text(TINY)
    run_cli(tmp_path, "run", "tiny.toml", "--seeds", "0", check=True)
    proc = run_cli(tmp_path, "run", "tiny.toml", "--seeds", "0")
    assert proc.returncode == 2 and "--resume" in proc.stderr
    run_cli(tmp_path, "run", "tiny.toml", "--seeds", "0", "--force", check=True)


def test_every_command_loads_and_its_help_line_is_its_docstring():
    from lifelong.cli import COMMANDS, load_command

    for name, entry in COMMANDS.items():
        cmd = load_command(name)
        assert cmd.name == name
        assert (cmd.help or "").strip().splitlines()[0] == entry.help, name


def test_help_lists_every_command_without_loading_torch_or_the_commands():
    code = ("import sys\nfrom lifelong.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in sys.modules if m in ('torch', 'fastapi') or m.startswith(('lifelong.cli.r', "
            "'lifelong.cli.s', 'lifelong.cli.l', 'lifelong.learn'))))")
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    from lifelong.cli import COMMANDS

    assert all(name in proc.stdout for name in COMMANDS)
    assert proc.stdout.strip().splitlines()[-1] == "LOADED []"


def test_a_command_whose_extra_is_missing_is_one_clear_line(monkeypatch):
    import importlib

    from lifelong.cli import load_command
    from lifelong.errors import ConfigError

    def missing(name):
        raise ModuleNotFoundError("No module named 'ray'", name="ray")

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(ConfigError, match=r"`lifelong sweep` needs the sweep extra \(ray is missing\)"):
        load_command("sweep")


def test_user_errors_of_the_split_commands_exit_2_with_one_line(tmp_path):
    for args, expected in ((("report", "nowhere"), "has no log.jsonl"),
                           (("sweep",), "pass a sweep file"),
                           (("ledger", "check", "--tier", "slow"), "--tier must be one of fast, full, paper")):
        proc = run_cli(tmp_path, *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert expected in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_list_shows_a_plugin_learner_found_through_its_entry_point(tmp_path):
    # a distribution on PYTHONPATH (a dist-info directory beside its module) with a lifelong.plugins entry point
    site = tmp_path / "site"
    (site / "tinyplug-0.1.dist-info").mkdir(parents=True)
    (site / "tinyplug-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: tinyplug\nVersion: 0.1\n")
    (site / "tinyplug-0.1.dist-info" / "entry_points.txt").write_text("[lifelong.plugins]\ntinyplug = tinyplug\n")
    (site / "tinyplug.py").write_text(
        "from lifelong.learn.methods import LEARNERS\nfrom lifelong.plugins import register_learner\n\n\n"
        "class Tiny(LEARNERS['naive']):\n    name = 'tiny_plugin_learner'\n    description = 'a plugin learner'\n\n\n"
        "register_learner(Tiny)\n")
    env = cli_env()
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    proc = subprocess.run(cli("list"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "tiny_plugin_learner" in proc.stdout and "a plugin learner" in proc.stdout
