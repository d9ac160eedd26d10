"""One writer per data directory and a clean stop on SIGTERM / SIGINT (issue 11), with real
server processes and real signals."""

from __future__ import annotations

import signal

import httpx
import pytest

from lifelong.serve.config import load_serve_config
from lifelong.serve.service import Service
from lifelong.serve.snapshots import SnapshotStore

from tests.serve.conftest import Server, write_config
from tests.serve.test_data_dir import assert_refused, run_cli

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROW = [0.25] * 8


def test_a_second_process_on_the_same_data_dir_is_refused_and_names_the_holder(tmp_path):
    cfg = write_config(tmp_path)
    first = Server(cfg)
    first.start()
    try:
        before = httpx.get(first.url + "/health").json()["logged_seq"]
        code, err = run_cli(cfg)  # another port, the same data_dir
        assert_refused(code, err, "in use by another lifelong serve process", f"PID {first.proc.pid}")
        code, err = run_cli(cfg, "--verify")
        assert_refused(code, err, f"PID {first.proc.pid}")
        # the first one still serves and is the only writer
        r = httpx.post(first.url + "/feedback", json={"inputs": [ROW], "labels": [1]}, headers=first.auth())
        assert r.status_code == 200 and r.json()["seqs"] == [before + 1]
    finally:
        first.kill()
    # SIGKILL leaves no stale lock: the kernel released it
    second = Server(cfg)
    second.start()
    second.kill()


def test_the_lock_holds_within_one_process_too(tmp_path):
    cfg = load_serve_config(write_config(tmp_path), env={"LIFELONG_SERVE_TOKEN": "t" * 20})
    a = Service(cfg, threads=False)
    try:
        with pytest.raises(Exception, match="in use by another lifelong serve process"):
            Service(cfg, threads=False)
    finally:
        a.stop()
    Service(cfg, threads=False).stop()  # released by stop()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_cleanly_with_everything_committed_applied_and_snapshotted(tmp_path, sig):
    # a long linger and a large batch: committed events wait in the log, unapplied, until the stop
    cfg_path = write_config(tmp_path, serve={"batch_size": 10_000, "linger_ms": 600_000.0, "snapshot_every": 10_000})
    srv = Server(cfg_path)
    srv.start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for i in range(25):
                r = c.post("/feedback", json={"inputs": [ROW, ROW], "labels": [i % 4, (i + 1) % 4]}, headers=srv.auth())
                assert r.status_code == 200, r.text
            h = c.get("/health").json()
            assert h["logged_seq"] == 50 and h["applied_seq"] < 50
        srv.proc.send_signal(sig)
        code = srv.proc.wait(120)
    finally:
        srv.kill()
    out = srv.output()
    assert code == 0, out
    assert "Traceback" not in out
    assert "stopped: applied seq 50 of 50 logged" in out and "event log closed" in out
    data = tmp_path / "data"
    assert not (data / "events.sqlite-wal").exists() or (data / "events.sqlite-wal").stat().st_size == 0
    cfg = load_serve_config(cfg_path, env={"LIFELONG_SERVE_TOKEN": "t" * 20})
    store = SnapshotStore(data / "snapshots", fingerprint=cfg.fingerprint())
    assert [i.seq for i in store.list()][0] == 50
    # and the restart starts from that snapshot without replaying anything
    srv2 = Server(cfg_path)
    srv2.start()
    try:
        assert httpx.get(srv2.url + "/health").json()["applied_seq"] == 50
    finally:
        srv2.kill()
    assert "from snapshot snap-" in srv2.output()
