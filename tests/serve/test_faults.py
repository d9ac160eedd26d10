"""Faults the service survives (issue 11): transient I/O errors in journal and snapshot writes are
retried, shown in /health and /metrics, and learning resumes by itself; idle and slow clients
cannot exhaust file descriptors. Real servers, real SQLite, a real full disk (tmpfs) where the
machine allows mounting one."""

from __future__ import annotations

import resource
import shutil
import socket
import sqlite3
import subprocess
import time

import httpx
import pytest
import torch

from lifelong.serve.config import load_serve_config
from lifelong.serve.service import Service
from lifelong.serve.validation import parse_feedback
from lifelong.serve.worker import Replayer, state_digest

from tests.serve.conftest import Server, write_config
from tests.serve.test_data_dir import run_cli

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROW = [0.25] * 8


def until(check, what: str, timeout: float = 60.0):
    """Poll ``check()`` until it returns something truthy (a bound for a hung test, not a timing claim)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.split()[-1])
    return total


# -- transient journal errors, in-process ------------------------------------------------------------
def test_transient_journal_errors_are_retried_and_the_state_equals_a_replay(tmp_path, monkeypatch):
    cfg = load_serve_config(write_config(tmp_path, serve={"batch_size": 4, "linger_ms": 0.0}),
                            env={"LIFELONG_SERVE_TOKEN": "t" * 20})
    svc = Service(cfg, threads=False)
    svc.start()
    real = svc.log.journal_append
    failures = {"left": 0}

    def flaky(*args, **kw):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return real(*args, **kw)

    monkeypatch.setattr(svc.log, "journal_append", flaky)
    try:
        g = torch.Generator().manual_seed(0)
        failures["left"] = 5
        for i in range(10):
            svc.feedback(parse_feedback({"inputs": torch.randn(3, 8, generator=g).tolist(), "labels": [i % 4] * 3}, cfg))
        assert svc.worker.wait_published(30, timeout=60)
        assert failures["left"] == 0 and svc.worker.io_errors["journal"] == 5
        assert svc.health()["status"] == "ok" and svc.worker.running
        assert metric(svc.metrics.render(), 'lifelong_serve_io_errors_total{op="journal"}') == 5
        batches = [e for e in svc.log.journal() if e.kind == "batch"]
        assert [e.a for e in batches] == [1] + [e.b + 1 for e in batches[:-1]] and batches[-1].b == 30  # in order, once
        live = svc.worker.request("digest").result()["learner"]
        scratch, _ = Replayer(cfg, svc.log, None).state_at(svc.log.last_step())
        assert live == state_digest(scratch.state_dict())
    finally:
        svc.stop(snapshot=False)


# -- a snapshot directory that cannot be written, over HTTP --------------------------------------------
def test_failing_snapshot_writes_are_reported_and_recover_without_a_restart(tmp_path):
    srv = Server(write_config(tmp_path, serve={"snapshot_every": 8, "batch_size": 4, "linger_ms": 1.0}))
    srv.start()
    snaps = tmp_path / "data" / "snapshots"
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            def send(n: int, tag: str) -> None:
                for i in range(n):
                    r = c.post("/feedback", json={"inputs": [ROW], "labels": [i % 4], "event_ids": [f"{tag}-{i}"]},
                               headers=srv.auth())
                    assert r.status_code == 200, r.text

            send(8, "a")
            until(lambda: c.get("/health").json()["snapshot_seq"] >= 1, "a first snapshot")
            shutil.rmtree(snaps)
            snaps.write_text("not a directory")  # every snapshot write now fails with an OSError
            send(24, "b")
            h = until(lambda: (h := c.get("/health").json())["faults"].get("snapshot") and h, "the fault in /health")
            assert h["status"] == "degraded" and h["worker"] == "running"
            assert metric(c.get("/metrics").text, 'lifelong_serve_io_errors_total{op="snapshot"}') >= 1
            # learning goes on meanwhile: everything acknowledged is applied, in order
            until(lambda: (h := c.get("/health").json())["applied_seq"] == h["logged_seq"] == 32, "learning to go on")
            snaps.unlink()
            snaps.mkdir()  # the fault clears: the retry writes a snapshot by itself
            h = until(lambda: (h := c.get("/health").json())["status"] == "ok" and h, "recovery")
            assert h["faults"] == {} and h["snapshot_seq"] == 32
            send(4, "c")
            until(lambda: c.get("/health").json()["applied_seq"] == 36, "learning after the fault")
    finally:
        srv.kill(sig=15)
    assert "Traceback" not in srv.output()
    code, err = run_cli(srv.config, "--verify")
    assert code == 0, err


# -- a full disk ---------------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                                                       capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_is_survived_and_nothing_acknowledged_is_lost(tmp_path, small_disk):
    cfg = write_config(tmp_path, serve={"data_dir": str(small_disk / "data"), "snapshot_every": 4, "batch_size": 2,
                                        "linger_ms": 1.0})
    srv = Server(cfg)
    srv.start()
    acked: dict[str, int] = {}
    statuses: set[int] = set()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            def send(tag: str, n: int) -> None:
                for i in range(n):
                    eid = f"{tag}-{i}"
                    r = c.post("/feedback", json={"inputs": [[float(i)] * 8], "labels": [i % 4], "event_ids": [eid]},
                               headers=srv.auth())
                    statuses.add(r.status_code)
                    assert r.status_code in (200, 503), r.text
                    assert r.headers["content-type"].startswith("application/json")
                    if r.status_code == 200:
                        acked[eid] = r.json()["seqs"][0]

            send("before", 10)
            filler = small_disk / "filler"
            with open(filler, "wb", buffering=0) as f:  # fill the disk to the last byte
                for size in (65536, 512, 1):
                    try:
                        while True:
                            f.write(b"\0" * size)
                    except OSError:
                        pass
            send("full", 30)
            h = until(lambda: (h := c.get("/health").json())["faults"] and h, "a fault in /health")
            assert h["status"] == "degraded"
            m = c.get("/metrics").text
            assert metric(m, "lifelong_serve_io_errors_total") + metric(m, "lifelong_serve_append_errors") >= 1
            filler.unlink()  # the disk has room again
            send("after", 10)
            until(lambda: (h := c.get("/health").json())["status"] == "ok" and h["applied_seq"] == h["logged_seq"],
                  "recovery after the disk has room")
            assert all(s in (200, 503) for s in statuses)
    finally:
        srv.kill(sig=15)
    assert "Traceback" not in srv.output()
    # every acknowledged event is logged exactly once, and the state equals a replay of the log
    c = load_serve_config(cfg, env={"LIFELONG_SERVE_TOKEN": "t" * 20})
    svc = Service(c, threads=False)
    try:
        ids = svc.log.event_ids()
        assert {e: ids.get(e) for e in acked} == acked
        assert svc.log.count() == len(ids)
    finally:
        svc.stop(snapshot=False)
    code, err = run_cli(cfg, "--verify")
    assert code == 0, err


# -- idle and slow clients -----------------------------------------------------------------------------
def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))


def test_idle_connections_cannot_exhaust_file_descriptors(tmp_path):
    srv = Server(write_config(tmp_path, serve={"max_connections": 32, "header_timeout": 1.0, "snapshot_every": 4,
                                               "batch_size": 2, "linger_ms": 1.0}),
                 preexec_fn=_low_fd_limit)
    srv.start()
    idle: list[socket.socket] = []
    try:
        for _ in range(400):  # twice the server's whole fd limit, sending nothing
            s = socket.create_connection(("127.0.0.1", srv.port))
            idle.append(s)

        open_ = set(range(len(idle)))

        def closed_by_server(s: socket.socket) -> bool:
            s.settimeout(0.01)
            try:
                while s.recv(4096):  # a refused one first gets its 503
                    pass
                return True
            except (TimeoutError, socket.timeout):
                return False
            except OSError:
                return True

        def all_closed() -> bool:
            open_.difference_update([i for i in open_ if closed_by_server(idle[i])])
            return not open_

        until(all_closed, "the server to close every idle connection", timeout=120)
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for i in range(12):
                r = c.post("/feedback", json={"inputs": [ROW], "labels": [i % 4]}, headers=srv.auth())
                assert r.status_code == 200, r.text
            h = until(lambda: (h := c.get("/health").json())["applied_seq"] == 12 and h, "learning")
            assert h["status"] == "ok" and h["snapshot_seq"] >= 8
            m = c.get("/metrics").text
            assert metric(m, "lifelong_serve_connections_refused") >= 300
            assert metric(m, "lifelong_serve_connections_timed_out") >= 1
    finally:
        for s in idle:
            s.close()
        srv.kill()


def test_a_header_sent_byte_by_byte_is_cut_off(tmp_path):
    srv = Server(write_config(tmp_path, serve={"header_timeout": 1.0}))
    srv.start()
    head = (b"POST /feedback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"X-Padding: " + b"a" * 300 + b"\r\n\r\n")
    sent = 0
    try:
        with socket.create_connection(("127.0.0.1", srv.port)) as s:
            s.settimeout(0.1)
            closed = False
            for b in head:
                try:
                    s.sendall(bytes([b]))
                    sent += 1
                    if s.recv(1024) == b"":
                        closed = True
                        break
                except (TimeoutError, socket.timeout):
                    continue
                except OSError:
                    closed = True
                    break
        assert closed and sent < len(head), f"sent {sent} of {len(head)} bytes"
        assert httpx.get(srv.url + "/health").status_code == 200
    finally:
        srv.kill()
