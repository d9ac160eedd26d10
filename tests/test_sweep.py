"""Sweeps and tuning: grid expansion, the local backend (outputs, failed runs, resume), a real local
Ray (identical per-run logs to the local backend; Ray Tune random search and ASHA), and a two-node
Ray cluster on loopback (runs spread over both nodes).

The Ray tests are marked slow. Each starts its own Ray with an explicit short temporary directory
and tears it down: ``ray.shutdown()`` for the in-process Ray, SIGTERM to the ``ray start --block``
processes it launched for the cluster (never ``ray stop``, which would end every Ray on the machine).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lifelong.experiments.config import load_config
from lifelong.errors import ConfigError
from lifelong.experiments.sweep import parse_sweep, read_status, run_sweep
from tests.conftest import cli, cli_env

TINY = {
    "name": "tiny",
    "seeds": [0, 1],
    "dataset": {"name": "blobs", "n_per_class": 20, "n_test_per_class": 10},
    "scenario": {"name": "class_incremental", "n_chunks": 5},
    "model": {"hidden": [32]},
    "train": {"batch_size": 10, "lr": 0.05},
    "learner": {"name": "er", "mem_size": 50},
    "axes": {"learner.name": ["naive", "er"]},
}
RUNS = ["learner=naive,seed=0", "learner=naive,seed=1", "learner=er,seed=0", "learner=er,seed=1"]


def tiny(**changes) -> dict:
    d = copy.deepcopy(TINY)
    d.update(changes)
    return d


def quiet():
    from rich.console import Console

    return Console(stderr=True, quiet=True)


def short_tmp(prefix: str) -> str:
    # Ray puts sockets under its temp dir and socket paths are limited to ~107 bytes: stay short.
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


# -- expansion -----------------------------------------------------------------------------------
def test_expansion_is_deterministic_and_drops_keys_a_learner_does_not_take():
    data = tiny(axes={"learner.name": ["naive", "er"], "learner.mem_size": [20, 50], "train.lr": [0.1, 0.01]})
    plan = parse_sweep(data)
    assert [r.name for r in plan.runs] == [r.name for r in parse_sweep(data).runs]
    # naive takes no mem_size: its two mem_size cells merge into one, per lr
    assert [r.name for r in plan.runs] == [
        "learner=naive,lr=0.1,seed=0", "learner=naive,lr=0.1,seed=1",
        "learner=naive,lr=0.01,seed=0", "learner=naive,lr=0.01,seed=1",
        "learner=er,mem_size=20,lr=0.1,seed=0", "learner=er,mem_size=20,lr=0.1,seed=1",
        "learner=er,mem_size=20,lr=0.01,seed=0", "learner=er,mem_size=20,lr=0.01,seed=1",
        "learner=er,mem_size=50,lr=0.1,seed=0", "learner=er,mem_size=50,lr=0.1,seed=1",
        "learner=er,mem_size=50,lr=0.01,seed=0", "learner=er,mem_size=50,lr=0.01,seed=1",
    ]
    naive = plan.runs[0]
    assert naive.dropped == ("learner.mem_size",) and "mem_size" not in naive.config.learner
    er = plan.runs[-1]
    assert er.config.learner == {"name": "er", "mem_size": 50} and er.config.train["lr"] == 0.01
    assert er.config.seeds == (1,) and er.cell == "learner=er,mem_size=50,lr=0.01"
    # a key no learner accepts is a typo: kept, so the plan fails loudly (the run config refuses it)
    with pytest.raises(ConfigError, match="cell learner=naive,mem_sise=1: .*has no hyper-parameter 'mem_sise'"):
        parse_sweep(tiny(axes={"learner.name": ["naive"], "learner.mem_sise": [1]}))


def test_seeds_axis_and_axis_errors():
    plan = parse_sweep({k: v for k, v in tiny(axes={"seeds": [3, 4, 5]}).items() if k != "seeds"})
    assert [r.name for r in plan.runs] == ["seed=3", "seed=4", "seed=5"]
    for bad, msg in [
        ({"axes": {"lr": [0.1]}}, "not a config key"),
        ({"axes": {"learner.name": []}}, "non-empty list"),
        ({"axes": {"train.lr": [0.1, 0.1]}}, "repeats a value"),
        ({"axes": {"seeds": [0]}}, "not both"),
        ({"axes": {"train.lr": [-1.0]}}, "positive number"),
        ({"sweep": {"backnd": "ray"}}, "unknown [sweep] option"),
    ]:
        with pytest.raises(ConfigError, match=msg.replace("[", r"\[").replace("]", r"\]")):
            parse_sweep(tiny(**bad))


# -- the local backend ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory) -> Path:
    """The 2 learners x 2 seeds sweep run by the local backend (shared by the Ray comparisons)."""
    out = tmp_path_factory.mktemp("local") / "tiny"
    res = run_sweep(parse_sweep(tiny()), out, backend="local", console=quiet())
    assert sorted(res.done) == sorted(RUNS) and not res.failed
    return out


def test_local_sweep_writes_runs_and_a_table_per_cell(local_sweep):
    for name in RUNS:
        run = local_sweep / name
        for f in ("config.toml", "log.jsonl", "metrics.json", "report.md", "status.json"):
            assert (run / f).is_file(), f"{name}/{f}"
        status = read_status(run)
        assert status["status"] == "done" and status["threads"] == 1 and status["pid"] == os.getpid()
        cfg = load_config(run / "config.toml")
        assert cfg.seeds == (int(name[-1]),) and cfg.threads == 1 and cfg.learner_name == name.split(",")[0][8:]
    summary = json.loads((local_sweep / "summary.json").read_text())
    cells = {c["cell"]: c for c in summary["cells"]}
    assert set(cells) == {"learner=naive", "learner=er"} and summary["failed"] == []
    for cell, c in cells.items():
        accs = [json.loads((local_sweep / f"{cell},seed={s}" / "metrics.json").read_text())["summary"]["acc"][0] for s in (0, 1)]
        mean = sum(accs) / 2
        std = abs(accs[0] - accs[1]) / 2 ** 0.5  # sample std of two values
        assert c["n_done"] == 2 and c["metrics"]["acc"][0] == pytest.approx(mean) and c["metrics"]["acc"][1] == pytest.approx(std)
    md = (local_sweep / "summary.md").read_text()
    assert "| learner | seeds done | acc |" in md
    assert f"| er | 2/2 | {cells['learner=er']['metrics']['acc'][0]:.4f} ± " in md
    # the `lifelong compare` report over the cells, each cell a run directory holding both seeds
    assert "[compare.md](compare.md)" in md and (local_sweep / "compare.md").is_file() and (local_sweep / "compare.html").is_file()
    compare_md = (local_sweep / "compare.md").read_text()
    assert compare_md.startswith("# Comparison of naive, er") and "forgets least" in compare_md


def test_a_cell_directory_is_what_lifelong_run_writes_for_the_cell(local_sweep, tmp_path):
    from lifelong.experiments.run import execute

    cell = local_sweep / "cells" / "learner=er"
    cfg = load_config(cell / "config.toml")
    assert cfg.seeds == (0, 1) and cfg.learner_name == "er"
    execute(cfg, tmp_path / "run")
    assert (tmp_path / "run" / "log.jsonl").read_bytes() == (cell / "log.jsonl").read_bytes()
    metrics = json.loads((cell / "metrics.json").read_text())
    assert metrics["summary"]["acc"] == json.loads((local_sweep / "summary.json").read_text())["cells"][1]["metrics"]["acc"]


def test_a_failed_run_is_recorded_and_does_not_stop_the_sweep(tmp_path):
    # 50 chunks of blobs' 10 classes: a valid config that the scenario refuses when the run builds
    # its stream (ConfigError); the other cell must still run
    data = tiny(seeds=[0], axes={"learner.name": ["naive"], "scenario.n_chunks": [50, 5]})
    res = run_sweep(parse_sweep(data), tmp_path / "s", backend="local", console=quiet(), compare=False)
    bad, good = "learner=naive,n_chunks=50,seed=0", "learner=naive,n_chunks=5,seed=0"
    assert res.done == [good] and list(res.failed) == [bad]
    status = read_status(tmp_path / "s" / bad)
    assert status["status"] == "failed" and status["error_type"] == "ConfigError"
    assert "do not split into 50 equal chunks" in status["error"] and status["traceback"] is None
    md = (tmp_path / "s" / "summary.md").read_text()
    assert "## Failed runs" in md and f"| {bad} | ConfigError: class_incremental: 10 classes do not split" in md
    assert "| naive | 50 | 0/1 (1 failed) |" in md


def test_torch_threads_come_from_the_flag_then_the_config_then_cpus_per_run(tmp_path):
    data = tiny(seeds=[0], axes={"learner.name": ["naive"], "threads": [2]})
    for flag, expected in ((None, 2), (1, 1)):
        res = run_sweep(parse_sweep(data), tmp_path / str(flag), backend="local", threads=flag, console=quiet(), compare=False)
        run = tmp_path / str(flag) / res.done[0]
        assert read_status(run)["threads"] == expected and load_config(run / "config.toml").threads == expected
    import torch

    before = torch.get_num_threads()
    res = run_sweep(parse_sweep(tiny(seeds=[0], axes={"learner.name": ["naive"]})), tmp_path / "c", backend="local",
                    cpus_per_run=before + 1, console=quiet(), compare=False)
    assert read_status(tmp_path / "c" / res.done[0])["threads"] == before + 1
    assert torch.get_num_threads() == before  # each run restores the caller's setting


def test_resume_skips_finished_runs_and_reruns_the_rest(local_sweep, tmp_path):
    sweep = tmp_path / "tiny"
    shutil.copytree(local_sweep, sweep)
    with pytest.raises(ConfigError, match="--resume"):
        run_sweep(parse_sweep(tiny()), sweep, backend="local", console=quiet(), compare=False)
    # two interrupted runs (status still "running", no metrics): one lost its checkpoint and
    # restarts from scratch, the other continues from its checkpoint
    restart, carry_on = sweep / "learner=er,seed=1", sweep / "learner=naive,seed=0"
    for run in (restart, carry_on):
        (run / "metrics.json").unlink()
        (run / "status.json").write_text(json.dumps({"status": "running"}))
    shutil.rmtree(restart / "checkpoints")
    (restart / "log.jsonl").write_bytes(b"")
    before = {n: (sweep / n / "log.jsonl").stat().st_mtime_ns for n in RUNS}
    res = run_sweep(parse_sweep(tiny()), sweep, backend="local", resume=True, console=quiet(), compare=False)
    assert sorted(res.done) == sorted([restart.name, carry_on.name])
    assert sorted(res.skipped) == sorted(set(RUNS) - {restart.name, carry_on.name})
    for n in res.skipped:
        assert (sweep / n / "log.jsonl").stat().st_mtime_ns == before[n]
    for run in (restart, carry_on):
        assert (run / "log.jsonl").read_bytes() == (local_sweep / run.name / "log.jsonl").read_bytes()
        assert read_status(run)["status"] == "done" and (run / "metrics.json").is_file()


def test_local_backend_never_imports_ray(tmp_path):
    code = (
        "import sys, json\n"
        "from rich.console import Console\n"
        "from lifelong.experiments.sweep import parse_sweep, run_sweep\n"
        f"data = json.loads({json.dumps(json.dumps(tiny(seeds=[0], axes={'learner.name': ['naive']})))})\n"
        f"run_sweep(parse_sweep(data), {str(tmp_path / 's')!r}, backend='local', console=Console(quiet=True))\n"
        "assert 'ray' not in sys.modules, 'the local backend imported ray'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert read_status(tmp_path / "s" / "learner=naive,seed=0")["status"] == "done"


def test_cli_errors_exit_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[axes]\n"lr" = [0.1]\n')
    proc = subprocess.run(cli("sweep", str(bad), "--backend", "local"), env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not a config key" in " ".join(proc.stderr.split()) and "Traceback" not in proc.stderr
    proc = subprocess.run(cli("sweep", "--resume", str(tmp_path)), env=cli_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not a sweep directory" in " ".join(proc.stderr.split())  # rich wraps lines


# -- a real local Ray ----------------------------------------------------------------------------
@pytest.fixture(scope="class")
def local_ray(request):
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    tmp = short_tmp("lr-")
    ray.init(num_cpus=2, _temp_dir=tmp, include_dashboard=False, log_to_driver=False)

    def teardown():
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    request.addfinalizer(teardown)
    return ray


@pytest.mark.slow
class TestLocalRay:
    def test_ray_backend_gives_the_same_logs_as_the_local_backend(self, local_ray, local_sweep, tmp_path):
        res = run_sweep(parse_sweep(tiny()), tmp_path / "tiny", backend="ray", console=quiet(), compare=False)
        assert sorted(res.done) == sorted(RUNS) and not res.failed
        node = local_ray.get_runtime_context().get_node_id()
        for name in RUNS:
            ours, theirs = tmp_path / "tiny" / name, local_sweep / name
            assert (ours / "log.jsonl").read_bytes() == (theirs / "log.jsonl").read_bytes(), name
            assert (ours / "config.toml").read_bytes() == (theirs / "config.toml").read_bytes(), name
            status = read_status(ours)
            assert status["node_id"] == node and status["pid"] != os.getpid() and status["threads"] == 1
        ray_cells = json.loads((tmp_path / "tiny" / "summary.json").read_text())["cells"]
        local_cells = json.loads((local_sweep / "summary.json").read_text())["cells"]
        assert [c["metrics"] for c in ray_cells] == [c["metrics"] for c in local_cells]

    def test_tune_first_chunks_with_asha(self, local_ray, tmp_path):
        from lifelong.experiments.tune import parse_tune, run_tune

        data = {k: v for k, v in tiny(scenario={"name": "class_incremental", "n_chunks": 5}).items() if k != "axes"}
        data["search"] = {"train.lr": {"loguniform": [0.001, 0.3]}, "learner.mem_size": {"choice": [20, 100]}}
        data["tune"] = {"algorithm": "asha", "num_samples": 4, "first_chunks": 3, "reduction_factor": 2}
        spec = parse_tune(data)
        res = run_tune(spec, tmp_path / "t", console=quiet())
        hist = json.loads((tmp_path / "t" / "history.json").read_text())
        trials = hist["trials"]
        assert len(trials) == 4 and hist["protocol"] == "first-chunks" and hist["leaky"] is False
        # no trial ever trained past the tuning chunks; ASHA stops some before the end
        assert max(t["chunks_trained"] for t in trials) == 3
        assert all(1 <= t["chunks_trained"] <= 3 for t in trials)
        finished = [t for t in trials if t["status"] == "finished"]
        best = json.loads((tmp_path / "t" / "best.json").read_text())
        assert best["tuning_score"] == max(t["score"] for t in finished)
        assert best["chosen"] == trials[best["best_trial"]]["params"] == res.best["chosen"]
        assert 0.001 <= best["chosen"]["train.lr"] <= 0.3 and best["chosen"]["learner.mem_size"] in (20, 100)
        # the chosen values as a reusable run config, evaluated on the full stream over both seeds
        cfg = load_config(tmp_path / "t" / "best_config.toml")
        assert cfg.train["lr"] == best["chosen"]["train.lr"] and cfg.learner["mem_size"] == best["chosen"]["learner.mem_size"]
        for seed in (0, 1):
            m = json.loads((tmp_path / "t" / "final" / f"seed={seed}" / "metrics.json").read_text())
            assert len(m["accuracy_matrix"][str(seed)]) == 5  # 5 chunks: the full stream
        assert len(best["held_out_acc"]) == 2 and best["final"]["acc"]
        csv_lines = (tmp_path / "t" / "history.csv").read_text().splitlines()
        assert len(csv_lines) == 1 + sum(t["chunks_trained"] for t in trials)
        assert "LEAKY" not in (tmp_path / "t" / "summary.md").read_text()

    def test_tune_full_stream_is_labelled_leaky(self, local_ray, tmp_path):
        from lifelong.experiments.tune import LEAKY_LABEL, parse_tune, run_tune

        data = {k: v for k, v in tiny(seeds=[0]).items() if k != "axes"}
        data["search"] = {"train.lr": {"uniform": [0.01, 0.1]}}
        data["tune"] = {"algorithm": "random", "num_samples": 2, "protocol": "full-stream"}
        run_tune(parse_tune(data), tmp_path / "t", console=quiet(), final=False)
        best = json.loads((tmp_path / "t" / "best.json").read_text())
        assert best["leaky"] is True and best["label"] == LEAKY_LABEL
        assert all(t["chunks_trained"] == 5 for t in json.loads((tmp_path / "t" / "history.json").read_text())["trials"])
        assert LEAKY_LABEL in (tmp_path / "t" / "summary.md").read_text()
        assert "LEAKY" in (tmp_path / "t" / "best_config.toml").read_text().splitlines()[0]


# -- a two-node cluster on loopback --------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def stop_node(proc: subprocess.Popen) -> None:
    """End a `ray start --block` we launched: SIGTERM makes it stop the processes it started; the
    process group (ours alone, start_new_session=True) is killed if it has not ended in 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def two_node_cluster():
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    ray_bin = str(Path(sys.executable).with_name("ray"))
    env = {**cli_env(), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    tmp, port = short_tmp("lm-"), free_port()
    logs = open(Path(tmp) / "nodes.log", "wb")  # noqa: SIM115 - closed in the teardown
    common = ["--block", "--num-cpus=1", "--node-ip-address=127.0.0.1"]
    head = subprocess.Popen([ray_bin, "start", "--head", f"--port={port}", f"--temp-dir={tmp}", "--include-dashboard=false", *common],
                            env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp)
    nodes = [head]

    def node_log() -> str:
        logs.flush()
        return (Path(tmp) / "nodes.log").read_text(errors="replace")[-3000:]

    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while not _accepts(port):  # the head's GCS is up
            assert head.poll() is None, f"ray start --head exited:\n{node_log()}"
            assert time.monotonic() < deadline, f"the head did not come up in 90 s:\n{node_log()}"
            time.sleep(0.5)
        nodes.append(subprocess.Popen([ray_bin, "start", f"--address={address}", *common],
                                      env=env, stdout=logs, stderr=subprocess.STDOUT, start_new_session=True, cwd=tmp))
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address=address, log_to_driver=False)
        while sum(n["Alive"] for n in ray.nodes()) < 2:
            assert all(p.poll() is None for p in nodes), f"a ray node exited:\n{node_log()}"
            assert time.monotonic() < deadline, f"the worker node did not join in 90 s:\n{node_log()}"
            time.sleep(0.5)
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        assert len(alive) == 2, node_log()
        ray.shutdown()  # the sweep connects on its own, as a user's would
        yield address, alive, env
    finally:
        ray.shutdown()
        for proc in reversed(nodes):  # the worker node first, then the head
            stop_node(proc)
        logs.close()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_sweep_spreads_over_a_two_node_cluster(two_node_cluster, local_sweep, tmp_path):
    import tomli_w

    address, nodes, env = two_node_cluster
    (tmp_path / "tiny.toml").write_text(tomli_w.dumps(tiny()))
    proc = subprocess.run(cli("sweep", str(tmp_path / "tiny.toml"), "--address", address, "--out", str(tmp_path)),
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    used = {read_status(tmp_path / "tiny" / n)["node_id"] for n in RUNS}
    assert used == nodes  # both nodes ran runs (each has 1 CPU, so 4 queued runs must spread)
    for name in RUNS:
        assert (tmp_path / "tiny" / name / "log.jsonl").read_bytes() == (local_sweep / name / "log.jsonl").read_bytes()


def test_progress_comes_as_events_and_the_cli_display_draws_them(tmp_path):
    from rich.console import Console

    from lifelong.cli.sweep import SweepDisplay

    events = []
    data = tiny(seeds=[0], axes={"learner.name": ["naive"], "scenario.n_chunks": [50, 5]})
    run_sweep(parse_sweep(data), tmp_path / "s", backend="local", compare=False,
              on_event=lambda kind, info: events.append((kind, dict(info))))
    assert events[0] == ("start", {"title": "tiny", "total": 2, "skipped": 0})
    finished = [info for kind, info in events if kind == "finished"]
    assert [f["status"] for f in finished] == ["failed", "done"]
    console = Console(record=True, width=200, force_terminal=False)
    with SweepDisplay(console) as display:
        for kind, info in events:
            display(kind, info)
    lines = console.export_text().splitlines()
    assert lines[0].startswith("[1/2] FAILED  learner=naive,n_chunks=50,seed=0: ConfigError: ")
    assert lines[1].startswith("[2/2] done    learner=naive,n_chunks=5,seed=0  acc ")
    assert (display.n_finished, display.n_failed) == (2, 1)
