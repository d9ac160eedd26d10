"""A run killed with SIGKILL mid-way resumes from its last chunk and ends with the same log."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from conftest import cli, cli_env

SLOW = """
name = "{name}"
seeds = [0, 1]
threads = 1
[dataset]
name = "blobs"
n_per_class = 600
[scenario]
name = "class_incremental"
n_chunks = 5
[model]
hidden = [64]
[train]
batch_size = 4
[learner]
name = "er"
mem_size = 100
"""


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    env = cli_env()
    (tmp_path / "a.toml").write_text(SLOW.format(name="full"))
    (tmp_path / "b.toml").write_text(SLOW.format(name="killed"))
    subprocess.run(cli("run", "a.toml"), cwd=tmp_path, env=env, check=True, capture_output=True, timeout=600)

    run = tmp_path / "runs" / "killed"
    proc = subprocess.Popen(cli("run", "b.toml"), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    # kill once seed 0 has checkpointed at least two chunks, mid-way through a later one
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        log = run / "log.jsonl"
        if log.exists() and log.read_text().count('"kind":"chunk_end"') >= 2:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, "the run finished before it could be killed; make it slower"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = (run / "log.jsonl").read_text()
    assert '"kind":"chunk_end"' in partial and (run / "checkpoints" / "seed0.pt").exists()
    assert not (run / "metrics.json").exists()

    subprocess.run(cli("run", "--resume", str(run)), cwd=tmp_path, env=env, check=True, capture_output=True, timeout=600)
    full = (tmp_path / "runs" / "full" / "log.jsonl").read_bytes()
    assert (run / "log.jsonl").read_bytes() == full
    assert (run / "metrics.json").exists()
