"""The data directory at start (issue 11): log identity, integrity checks and unusable directories.

Each case runs the real command (``python -m lifelong.serve``) in a subprocess on a real data
directory, and expects one ``error:`` line, exit status 2 and no traceback; nothing stored changes.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lifelong.serve.config import load_serve_config
from lifelong.serve.service import Service
from lifelong.serve.validation import parse_feedback

from tests.serve.conftest import free_port, server_env, write_config

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


def feed(cfg_path: Path, n: int, *, start: int = 0, snapshot: bool = True) -> None:
    """Log and apply ``n`` events in-process, with a snapshot every 20 events and at the end."""
    cfg = load_serve_config(cfg_path, env={"LIFELONG_SERVE_TOKEN": "t" * 20})
    svc = Service(cfg, threads=False)
    svc.start()
    try:
        g = torch.Generator().manual_seed(start)
        for i in range(start, start + n, 10):
            x = torch.randn(10, 8, generator=g).tolist()
            svc.feedback(parse_feedback({"inputs": x, "labels": [j % 4 for j in range(10)]}, cfg))
            assert svc.worker.wait_published(svc.log.last_seq, timeout=60)
            if snapshot and (i // 10) % 2 == 1:
                svc.worker.request("snapshot").result()
    finally:
        svc.stop(snapshot=snapshot)


def run_cli(cfg_path: Path, *args: str, timeout: float = 120) -> tuple[int | None, str]:
    """Run the command; ``None`` as the status if it was still running (served) after ``timeout``."""
    proc = subprocess.Popen([sys.executable, "-m", "lifelong.serve", "--config", str(cfg_path), "--port", str(free_port()),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=server_env(), cwd=cfg_path.parent)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return None, err.decode(errors="replace")
    return proc.returncode, err.decode(errors="replace")


def assert_refused(code: int | None, err: str, *words: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]


def listing(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file() and p.name != "serve.lock"}


@pytest.fixture
def made(tmp_path):
    cfg = write_config(tmp_path, serve={"snapshot_every": 10_000})
    feed(cfg, 60)
    return cfg, tmp_path / "data"


def test_a_replaced_log_beside_old_snapshots_is_refused(made, tmp_path):
    cfg, data = made
    other = tmp_path / "other"
    other.mkdir()
    feed(write_config(other, serve={"snapshot_every": 10_000}), 200, start=1000, snapshot=False)
    shutil.copy(other / "data" / "events.sqlite", data / "events.sqlite")  # a longer log of other events
    before = listing(data)
    code, err = run_cli(cfg)
    assert_refused(code, err, "another backup", "mv ", "snapshots.old")
    assert listing(data) == before


def test_a_deleted_log_beside_snapshots_is_refused_before_anything_is_written(made):
    cfg, data = made
    (data / "events.sqlite").unlink()
    code, err = run_cli(cfg)
    assert_refused(code, err, "missing", "restore")
    assert not (data / "events.sqlite").exists()


def test_an_older_backup_of_the_log_is_refused_and_recovery_works(tmp_path):
    cfg = write_config(tmp_path, serve={"snapshot_every": 10_000})
    data = tmp_path / "data"
    feed(cfg, 20)
    backup = tmp_path / "events.backup"
    shutil.copy(data / "events.sqlite", backup)
    feed(cfg, 60, start=20)
    shutil.copy(backup, data / "events.sqlite")
    code, err = run_cli(cfg)
    assert_refused(code, err, "beyond the end", "older backup")
    # the recovery the message names: keep the snapshots aside, start from this log alone
    (data / "snapshots").rename(data / "snapshots.old")
    code, err = run_cli(cfg, "--verify")
    assert code == 0, err


def test_a_damaged_log_is_refused(made):
    cfg, data = made
    path = data / "events.sqlite"
    raw = bytearray(path.read_bytes())
    page = 4096
    assert len(raw) >= 4 * page
    rng = random.Random(0)
    mid = (len(raw) // page // 2) * page
    raw[mid:mid + page] = bytes(rng.randrange(256) for _ in range(page))  # random bytes over one old page
    path.write_bytes(bytes(raw))
    code, err = run_cli(cfg)
    assert_refused(code, err, "events.sqlite")
    code, err = run_cli(cfg, "--verify")
    assert_refused(code, err, "events.sqlite")


def test_a_truncated_log_is_refused(made):
    cfg, data = made
    path = data / "events.sqlite"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    code, err = run_cli(cfg)
    assert_refused(code, err, "events.sqlite")


def test_a_file_where_the_snapshot_directory_should_be(made):
    cfg, data = made
    shutil.rmtree(data / "snapshots")
    (data / "snapshots").write_text("oops")
    code, err = run_cli(cfg)
    assert_refused(code, err, "snapshots", "not the snapshot directory")


def test_a_file_where_the_data_directory_should_be(tmp_path):
    cfg = write_config(tmp_path)
    (tmp_path / "data").write_text("oops")
    code, err = run_cli(cfg)
    assert_refused(code, err, "data")


def test_every_snapshot_records_the_log_id(made):
    cfg, data = made
    c = load_serve_config(cfg, env={"LIFELONG_SERVE_TOKEN": "t" * 20})
    svc = Service(c, threads=False)
    try:
        infos = svc.store.list()
        assert infos
        assert {svc.store.peek(i)["log_id"] for i in infos} == {svc.log.log_id}
    finally:
        svc.stop(snapshot=False)


def test_threads_are_part_of_the_fingerprint_and_a_change_needs_accepting(tmp_path):
    from lifelong.serve.config import config_from_dict

    model = {"input_shape": [8], "n_classes": 4}
    one, two = (config_from_dict({"model": model, "serve": {"threads": t}}, env={}) for t in (1, 2))
    assert one.fingerprint() != two.fingerprint()
    # batch size and other timing settings do not change the arithmetic, so they are not in it
    assert config_from_dict({"model": model, "serve": {"batch_size": 7, "linger_ms": 1.0}}, env={}).fingerprint() == one.fingerprint()

    cfg = write_config(tmp_path, serve={"snapshot_every": 10_000, "threads": 1})
    feed(cfg, 40)
    cfg = write_config(tmp_path, serve={"snapshot_every": 10_000, "threads": 2})
    code, err = run_cli(cfg, "--verify")
    assert_refused(code, err, "different configuration", "--accept-config-change")
    code, err = run_cli(cfg, "--verify", "--accept-config-change")  # replayed under the new config, and verified
    assert code == 0, err
    code, err = run_cli(cfg, "--verify")  # accepted once: the log now records the new fingerprint
    assert code == 0, err


def test_a_damaged_event_row_fails_its_crc(tmp_path):
    """Bytes changed inside one event's input: SQLite's page checks cannot see it, the row's CRC-32 does."""
    import struct

    cfg_path = write_config(tmp_path, serve={"snapshot_every": 10_000})
    cfg = load_serve_config(cfg_path, env={"LIFELONG_SERVE_TOKEN": "t" * 20})
    svc = Service(cfg, threads=False)
    svc.start()
    marker = [1234.5, -77.25, 3.0, 9.5, 1.0, 2.0, 3.0, 4.0]
    for i in range(10):
        svc.feedback(parse_feedback({"inputs": [marker if i == 5 else [float(i)] * 8], "labels": [i % 4]}, cfg))
    assert svc.worker.wait_published(10, timeout=60)
    svc.stop(snapshot=False)
    shutil.rmtree(tmp_path / "data" / "snapshots")  # no snapshot: a start replays every row
    path = tmp_path / "data" / "events.sqlite"
    raw = bytearray(path.read_bytes())
    at = raw.find(struct.pack("<8f", *marker))
    assert at > 0
    raw[at + 1] ^= 0x40  # 1234.5 becomes another finite float
    path.write_bytes(bytes(raw))
    code, err = run_cli(cfg_path, "--verify")
    assert_refused(code, err, "event seq 6", "CRC-32")
    code, err = run_cli(cfg_path)
    assert_refused(code, err, "event seq 6", "CRC-32")


def test_a_damaged_row_not_yet_learned_is_refused_at_start(tmp_path):
    """Logged but never journaled (the worker had not reached it): found at start, not while serving."""
    import struct

    import numpy as np

    from lifelong.serve.eventlog import EventLog

    cfg_path = write_config(tmp_path)
    cfg = load_serve_config(cfg_path, env={"LIFELONG_SERVE_TOKEN": "t" * 20})
    path = tmp_path / "data" / "events.sqlite"
    log = EventLog(path, input_dim=8, n_classes=4, fingerprint=cfg.fingerprint())
    marker = np.array([[1234.5, -77.25, 3.0, 9.5, 1.0, 2.0, 3.0, 4.0]], np.float32)
    log.append(np.zeros((3, 8), np.float32), np.array([0, 1, 2]))
    log.append(marker, np.array([3]))
    log.close()
    raw = bytearray(path.read_bytes())
    at = raw.find(struct.pack("<8f", *marker[0]))
    raw[at + 1] ^= 0x40
    path.write_bytes(bytes(raw))
    code, err = run_cli(cfg_path)
    assert_refused(code, err, "event seq 4", "CRC-32")
