"""Crash test: 10,000 feedback events from 8 concurrent connections while the server is SIGKILLed
at random points (at least 3 times) and restarted. Every acknowledged event must be in the log
exactly once, and the served learner's state must equal a replay of the log from scratch."""

from __future__ import annotations

import random
import signal
import threading
import time

import httpx
import pytest
import torch

from lifelong.serve.config import load_serve_config
from lifelong.serve.eventlog import EventLog
from lifelong.serve.snapshots import SnapshotStore
from lifelong.serve.worker import Replayer, state_digest

from tests.serve.conftest import Server, assert_states_equal, one_thread, write_config

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

N_EVENTS = 10_000
N_CLIENTS = 8
N_KILLS = 3


def make_events(n: int, dim: int = 8, n_classes: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n_classes, dim, generator=g) * 2
    y = torch.randint(n_classes, (n,), generator=g)
    return means[y] + torch.randn(n, dim, generator=g), y


@pytest.mark.slow
def test_no_acknowledged_event_is_lost_and_state_equals_replay(tmp_path):
    cfg_path = write_config(tmp_path, serve={"batch_size": 16, "snapshot_every": 400, "linger_ms": 1.0})
    server = Server(cfg_path)
    server.start()
    x, y = make_events(N_EVENTS)
    rng = random.Random(1234)  # the test's own random stream: request sizes and kill points

    # Each client sends its own events in requests of 1-3 rows, each row with a unique event id;
    # a request that fails (connection refused/reset while the server is down) is retried with the
    # same ids until it gets a 2xx, exactly what an at-least-once client does.
    plans = []
    for c in range(N_CLIENTS):
        idx = list(range(c, N_EVENTS, N_CLIENTS))
        reqs, i = [], 0
        while i < len(idx):
            k = rng.randint(1, 3)
            reqs.append(idx[i:i + k])
            i += k
        plans.append(reqs)
    acked: dict[str, int] = {}
    acked_lock = threading.Lock()
    failures: list[str] = []
    retries = [0]

    def client(reqs: list[list[int]]) -> None:
        with httpx.Client(base_url=server.url, headers=server.auth(), timeout=30.0) as http:
            for rows in reqs:
                body = {"inputs": x[rows].tolist(), "labels": y[rows].tolist(), "event_ids": [f"e{i}" for i in rows]}
                while True:
                    try:
                        r = http.post("/feedback", json=body)
                    except httpx.HTTPError:
                        retries[0] += 1
                        time.sleep(0.05)
                        continue
                    if r.status_code >= 500:
                        retries[0] += 1
                        time.sleep(0.05)
                        continue
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text}")
                        return
                    seqs = r.json()["seqs"]
                    with acked_lock:
                        for i, s in zip(rows, seqs):
                            assert acked.setdefault(f"e{i}", s) == s, "a retry returned a different seq"
                    break

    threads = [threading.Thread(target=client, args=(p,)) for p in plans]
    for t in threads:
        t.start()
    kill_at = sorted(rng.uniform(0.1, 0.85) * N_EVENTS for _ in range(N_KILLS))
    kills = 0
    try:
        for target in kill_at:
            while len(acked) < target and any(t.is_alive() for t in threads):
                time.sleep(0.005 + rng.random() * 0.02)
            server.kill(signal.SIGKILL)
            kills += 1
            server.start()
        for t in threads:
            t.join(600)
        assert not failures, failures[:3]
        assert len(acked) == N_EVENTS
        # let the worker drain, then read its exact state and pin it in a snapshot
        with httpx.Client(base_url=server.url, headers=server.auth(), timeout=60.0) as http:
            deadline = time.monotonic() + 120
            while (h := http.get("/health").json())["applied_seq"] < h["logged_seq"]:
                assert time.monotonic() < deadline, h
                time.sleep(0.1)
            live = http.get("/state").json()
            snap = http.post("/snapshot").json()
    finally:
        server.kill(signal.SIGKILL)
    assert kills >= N_KILLS

    cfg = load_serve_config(cfg_path)
    log = EventLog(cfg.data_dir / "events.sqlite", input_dim=cfg.input_dim, n_classes=cfg.n_classes,
                   fingerprint=cfg.fingerprint())
    try:
        # every acknowledged event is in the log exactly once (event_id is UNIQUE), at the acked seq
        logged = log.event_ids()
        assert log.count() == N_EVENTS == len(logged)
        assert logged == acked
        # and its content is what the client sent
        seqs, lx, ly, _ = log.read_range(1, log.last_seq)
        order = torch.tensor([int(e[1:]) for e, _ in sorted(logged.items(), key=lambda kv: kv[1])])
        assert torch.equal(lx, x[order]) and torch.equal(ly, y[order])

        # the live state (restored from snapshots after each crash) equals a replay from scratch
        with one_thread():
            scratch, _ = Replayer(cfg, log, None).state_at(log.last_step())
        assert state_digest(scratch.state_dict()) == live["learner"] == live["published"]
        store = SnapshotStore(cfg.data_dir / "snapshots", fingerprint=cfg.fingerprint())
        final = next(i for i in store.list() if i.path.name == snap["file"])
        assert_states_equal(store.load(final), scratch.state_dict())
        assert snap["seq"] == N_EVENTS
    finally:
        log.close()
    out = server.output()
    assert out.count("restored learner at seq") == N_KILLS + 1
    assert "from snapshot" in out  # at least one restart resumed from a snapshot, not from scratch
