"""Operating a learning model (issue 11), part two: shadow mode and promotion, the held-back flip
sample, and the publish guard, each through the real HTTP server, with restarts compared to a replay
of the log."""

from __future__ import annotations

import signal

import httpx
import pytest
import torch

from lifelong.serve.config import load_serve_config
from lifelong.serve.eventlog import EventLog
from lifelong.serve.worker import Replayer, learn_batch, state_digest

from tests.serve.conftest import Server, one_thread, write_config
from tests.serve.test_faults import metric, until

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROW = [0.5] * 8
EM = {"name": "error_memory", "inner": "er"}  # a fast path: pinned states must skip it


def send(srv: Server, c: httpx.Client, first: int, n: int) -> None:
    g = torch.Generator().manual_seed(first)
    for i in range(first, first + n):
        x = torch.randn(1, 8, generator=g).tolist()
        r = c.post("/feedback", json={"inputs": x, "labels": [int(torch.randint(4, (1,), generator=g))]},
                   headers=srv.auth())
        assert r.status_code == 200, r.text


def applied(c: httpx.Client, seq: int) -> dict:
    """/health once every event up to ``seq`` is applied and its publish decided (served, refused or shadowed)."""
    return until(lambda: (h := c.get("/health").json())["decided_seq"] == seq and h, f"applied seq {seq}")


def open_log(cfg_path):
    cfg = load_serve_config(cfg_path, env={"LIFELONG_SERVE_TOKEN": "t" * 20})
    return cfg, EventLog(cfg.data_dir / "events.sqlite", input_dim=cfg.input_dim, n_classes=cfg.n_classes,
                         fingerprint=cfg.fingerprint())


def replayed(cfg, log, step: int) -> str:
    with one_thread():
        return state_digest(Replayer(cfg, log, None).state_at(step)[0].state_dict())


def test_shadow_mode_learns_and_scores_serves_the_promoted_model_and_outlives_a_restart(tmp_path):
    cfg_path = write_config(tmp_path, learner=EM, serve={"batch_size": 4, "linger_ms": 1.0})
    srv = Server(cfg_path)
    srv.start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            send(srv, c, 0, 12)
            applied(c, 12)
            assert c.post("/shadow", json={"shadow": True}).status_code == 401
            assert c.post("/shadow", json={"shadow": 1}, headers=srv.auth()).status_code == 422
            assert c.post("/promote").status_code == 401
            r = c.post("/shadow", json={"shadow": True}, headers=srv.auth())
            assert r.status_code == 200 and r.json()["shadow"] is True and r.json()["served_seq"] == 12
            send(srv, c, 100, 20)  # learned and scored, not served (not even through the fast path)
            h = applied(c, 32)
            assert h["shadow"] is True and h["published_seq"] == 12 and h["pinned"] is True
            assert h["shadow_online_accuracy"] is not None and h["online_accuracy"] is not None
            p = c.post("/predict", json={"inputs": [ROW]}).json()
            assert p["model_seq"] == 12
            m = c.get("/metrics").text
            assert metric(m, "lifelong_serve_shadow ") == 1 and metric(m, "lifelong_serve_publish_pinned") == 1
            assert "lifelong_serve_shadow_online_accuracy" in m
            before = c.get("/state", headers=srv.auth()).json()
            assert before["learner"] != before["published"]
            served_step = h["served_step"]
        srv.kill(signal.SIGKILL)
        srv.start()  # still in shadow, serving the same state: the state after the pinned journal step
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = c.get("/health").json()
            assert h["shadow"] is True and h["published_seq"] == 12 and h["applied_seq"] == 32
            after = c.get("/state", headers=srv.auth()).json()
            assert after["published"] == before["published"] and after["learner"] == before["learner"]
            assert c.post("/predict", json={"inputs": [ROW]}).json()["probabilities"] == p["probabilities"]
            r = c.post("/promote", headers=srv.auth())
            assert r.status_code == 200 and r.json()["served_seq"] == 32 and r.json()["shadow"] is True
            st = c.get("/state", headers=srv.auth()).json()
            assert st["published"] == st["learner"]
            send(srv, c, 200, 4)
            applied(c, 36)
            assert c.post("/predict", json={"inputs": [ROW]}).json()["model_seq"] == 32  # still shadow
            r = c.post("/shadow", json={"shadow": False}, headers=srv.auth())
            assert r.status_code == 200 and r.json()["served_seq"] == 36
            send(srv, c, 300, 4)
            applied(c, 40)
            until(lambda: c.post("/predict", json={"inputs": [ROW]}).json()["model_seq"] == 40, "serving the learner")
            h = c.get("/health").json()
            assert h["shadow"] is False and h["pinned"] is False
            final = c.get("/state", headers=srv.auth()).json()
    finally:
        srv.kill()
    cfg, log = open_log(cfg_path)
    try:
        assert replayed(cfg, log, log.last_step()) == final["learner"]
        assert replayed(cfg, log, served_step) == before["published"]  # the pinned state is a replay of the log
    finally:
        log.close()
    assert "Traceback" not in srv.output()


def test_the_flip_sample_is_held_back_from_learning_and_learned_later(tmp_path):
    k, n = 3, 4  # every 3rd event held back; 4 of them in the sample, so each waits 12 seqs
    cfg_path = write_config(tmp_path, serve={"batch_size": 5, "linger_ms": 1.0, "holdout_every": k, "flip_sample": n})
    srv = Server(cfg_path)
    srv.start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for s in range(1, 41):  # the input encodes the seq
                r = c.post("/feedback", json={"inputs": [[float(s)] * 8], "labels": [s % 4]}, headers=srv.auth())
                assert r.json()["seqs"] == [s]
            h = applied(c, 40)
            assert h["flip_sample_rows"] == 4  # 30, 33, 36, 39: held back, learned by no model yet
            assert metric(c.get("/metrics").text, "lifelong_serve_flip_sample_rows") == 4
        srv.kill(signal.SIGKILL)
        srv.start()  # the sample is read from the log: it survives the restart
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            r = c.post("/feedback", json={"inputs": [[41.0] * 8], "labels": [1]}, headers=srv.auth())
            h = applied(c, 41)
            until(lambda: c.get("/health").json()["flip_sample_rows"] == 4, "a scored publish after the restart")
            live = c.get("/state", headers=srv.auth()).json()
    finally:
        srv.kill()
    cfg, log = open_log(cfg_path)
    try:
        learned = []
        for e in log.journal():
            if e.kind == "batch":
                seqs, x, y, _ = log.read_range(e.a, e.b)
                learned += learn_batch(cfg, log, seqs, x, y, 0).x[:, 0].int().tolist()
        # every event is learned exactly once; a held-back one only after 12 newer seqs
        want = [s for s in range(1, 42) if s % k or s <= 41 - k * n]
        assert sorted(learned) == want and len(learned) == len(set(learned))
        assert not {30, 33, 36, 39} & set(learned) and {3, 15, 27} <= set(learned)
        assert replayed(cfg, log, log.last_step()) == live["learner"] == live["published"]
    finally:
        log.close()


def test_the_publish_guard_refuses_a_high_flip_rate_and_keeps_serving(tmp_path):
    cfg_path = write_config(tmp_path, learner=EM, serve={"batch_size": 4, "linger_ms": 1.0, "holdout_every": 2,
                                                         "flip_sample": 16, "max_flip_rate": 0.0})
    srv = Server(cfg_path)
    srv.start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            seq = 0
            while True:  # random labels: some publish soon flips a sample row from right to wrong
                send(srv, c, seq, 4)
                seq += 4
                h = applied(c, seq)
                if h["pinned"] or seq >= 600:
                    break
            # refused: learning went on (the batch is applied), the model served before it stays
            assert h["pinned"] is True and h["publish_guard"]["refused"] >= 1
            assert h["publish_guard"]["max_flip_rate"] == 0.0 and h["publish_guard"]["last_refused_flip_rate"] > 0
            assert metric(c.get("/metrics").text, "lifelong_serve_publish_refused_total") >= 1
            assert metric(c.get("/metrics").text, "lifelong_serve_publish_pinned") == 1
            served = h["published_seq"]
            assert served < seq
            assert c.post("/predict", json={"inputs": [ROW]}).json()["model_seq"] == served
            before = c.get("/state", headers=srv.auth()).json()
            served_step = h["served_step"]
        srv.kill(signal.SIGKILL)
        srv.start()
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = c.get("/health").json()
            assert h["pinned"] is True and h["published_seq"] == served
            assert c.get("/state", headers=srv.auth()).json()["published"] == before["published"]
            r = c.post("/promote", headers=srv.auth())  # the operator overrides the guard
            assert r.status_code == 200 and r.json()["served_seq"] == seq
            assert c.get("/health").json()["pinned"] is False
    finally:
        srv.kill()
    cfg, log = open_log(cfg_path)
    try:
        assert replayed(cfg, log, served_step) == before["published"]
        assert replayed(cfg, log, log.last_step()) == before["learner"]
    finally:
        log.close()
    assert "Traceback" not in srv.output()


def test_held_back_events_and_a_rollback_still_give_a_restart_equal_to_a_replay(tmp_path):
    cfg_path = write_config(tmp_path, serve={"batch_size": 4, "linger_ms": 1.0, "holdout_every": 2, "flip_sample": 3,
                                             "snapshot_every": 8})
    srv = Server(cfg_path)
    srv.start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            send(srv, c, 0, 24)
            applied(c, 24)
            snaps = c.get("/snapshots", headers=srv.auth()).json()
            to = min(s["seq"] for s in snaps if s["seq"] > 0)
            r = c.post("/rollback", json={"to_seq": to}, headers=srv.auth())
            assert r.status_code == 200, r.text
            send(srv, c, 500, 20)
            applied(c, 44)
        srv.kill(signal.SIGKILL)
        srv.start()
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            send(srv, c, 900, 6)
            applied(c, 50)
            live = c.get("/state", headers=srv.auth()).json()
    finally:
        srv.kill()
    cfg, log = open_log(cfg_path)
    try:
        assert replayed(cfg, log, log.last_step()) == live["learner"] == live["published"]
    finally:
        log.close()


def test_guard_and_hold_out_settings_are_checked_and_the_hold_out_is_in_the_fingerprint(tmp_path):
    from lifelong.errors import ConfigError
    from lifelong.serve.config import config_from_dict

    base = {"model": {"input_shape": [4], "n_classes": 3}}
    with pytest.raises(ConfigError, match="max_flip_rate"):
        config_from_dict({**base, "serve": {"max_flip_rate": 1.5}})
    with pytest.raises(ConfigError, match="holdout_every"):
        config_from_dict({**base, "serve": {"holdout_every": -1}})
    plain = config_from_dict(base)
    assert config_from_dict({**base, "serve": {"max_flip_rate": 0.1, "shadow": True}}).fingerprint() == plain.fingerprint()
    held = config_from_dict({**base, "serve": {"holdout_every": 5}})
    assert held.fingerprint() != plain.fingerprint()
    assert config_from_dict({**base, "serve": {"holdout_every": 5, "flip_sample": 7}}).fingerprint() != held.fingerprint()
