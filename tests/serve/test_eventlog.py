"""The event log (group commit, idempotency, refusal of a foreign log) and the config parser."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from lifelong.errors import ConfigError
from lifelong.serve.config import config_from_dict, load_serve_config
from lifelong.serve.eventlog import EventConflict, EventLog


def open_log(tmp_path, fingerprint="f"):
    return EventLog(tmp_path / "events.sqlite", input_dim=3, n_classes=5, fingerprint=fingerprint)


def test_concurrent_appends_get_unique_contiguous_seqs(tmp_path):
    log = open_log(tmp_path)
    got: list[list[int]] = [[] for _ in range(8)]

    def client(c: int) -> None:
        for i in range(50):
            x = np.full((2, 3), c * 1000 + i, dtype=np.float32)
            got[c] += log.append(x, np.array([c % 5, i % 5]), event_ids=[f"{c}-{i}-a", f"{c}-{i}-b"]).seqs

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = sorted(s for g in got for s in g)
    assert seqs == list(range(1, 801))
    assert all(g == sorted(g) for g in got)  # one client's events keep its order
    seq, x, y, _ = log.read_range(1, 800)
    assert seq.tolist() == seqs and x.shape == (800, 3)
    log.close()
    log = open_log(tmp_path)  # durable across a reopen
    assert log.last_seq == 800 and len(log.event_ids()) == 800
    log.close()


def test_conflicting_event_id_rejects_the_whole_request_only(tmp_path):
    log = open_log(tmp_path)
    log.append(np.zeros((1, 3), np.float32), np.array([1]), event_ids=["a"])
    bad = log.submit(np.ones((2, 3), np.float32), np.array([2, 2]), event_ids=["new", "a"])
    good = log.submit(np.ones((1, 3), np.float32), np.array([3]), event_ids=["other"])
    with pytest.raises(EventConflict, match="already logged"):
        bad.result()
    assert good.result().seqs == [2]
    assert log.event_ids() == {"a": 1, "other": 2}  # "new" was rolled back with its request
    log.close()


def test_foreign_log_is_refused(tmp_path):
    open_log(tmp_path).close()
    with pytest.raises(ConfigError, match="different configuration"):
        open_log(tmp_path, fingerprint="g")


def test_journal_round_trip(tmp_path):
    log = open_log(tmp_path)
    assert log.journal_append("batch", 1, 4) == 1
    assert log.journal_append("drift") == 2
    assert [(e.kind, e.a, e.b) for e in log.journal()] == [("batch", 1, 4), ("drift", None, None)]
    assert [e.step for e in log.journal(after=1)] == [2]
    log.close()


BASE = {"model": {"input_shape": [4], "n_classes": 3}}


@pytest.mark.parametrize("data,words", [
    ({"model": {"n_classes": 3}}, "input_shape"),
    ({"model": {"input_shape": [0], "n_classes": 3}}, "input_shape"),
    ({**BASE, "serve": {"snapshot_every": "10"}}, "snapshot_every"),
    ({**BASE, "serve": {"protect_predict": 1}}, "true or false"),
    ({**BASE, "serve": {"tokn": "x"}}, "unknown key"),
    ({**BASE, "extra": {}}, "unknown key"),
    ({**BASE, "serve": {"token": "short"}}, "at least 16"),
    ({**BASE, "serve": {"port": 70000}}, "port"),
    ({**BASE, "seed": -1}, "seed"),
])
def test_bad_config_is_a_config_error(data, words):
    with pytest.raises(ConfigError, match=words):
        config_from_dict(data, env={})


def test_config_token_from_env_is_never_in_repr(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text('[model]\ninput_shape = [2]\nn_classes = 2\n[serve]\ndata_dir = "d"\n')
    cfg = load_serve_config(path, env={"LIFELONG_SERVE_TOKEN": "s3cret-token-from-env"})
    assert cfg.token == "s3cret-token-from-env" and "s3cret" not in repr(cfg)
    assert cfg.data_dir == tmp_path / "d" and cfg.host == "127.0.0.1"
    with pytest.raises(ConfigError, match="LIFELONG_SERVE_TOKEN"):
        load_serve_config(path, env={}).require_token()
    path.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_serve_config(path, env={})
