"""The HTTP API against a real uvicorn server on 127.0.0.1: the happy path, a matrix of bad
requests (each gets the right 4xx and changes neither the log nor the model), and authentication."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.serve.conftest import TOKEN, Server, write_config

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

DIM, N_CLASSES = 8, 4
ROW = [0.5] * DIM


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("api")
    srv = Server(write_config(d, serve={"max_rows": 64, "max_body_bytes": 20_000}))
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30.0) as c:
        # one logged event with a known id, for the reused-id case
        r = c.post("/feedback", json={"inputs": [ROW], "labels": [1], "event_ids": ["known-1"]}, headers=server.auth())
        assert r.status_code == 200, r.text
        yield c


def state(http: httpx.Client) -> dict:
    """Everything a bad request must leave alone: log length, event count, worker and served state
    (read once the worker has applied everything logged)."""
    deadline = time.monotonic() + 60
    while (h := http.get("/health").json())["applied_seq"] < h["logged_seq"]:
        assert time.monotonic() < deadline, h
        time.sleep(0.02)
    r = http.get("/state", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_predict_feedback_roundtrip(http, server):
    r = http.post("/predict", json={"inputs": [ROW, [0.0] * DIM]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["labels"]) == 2 and len(out["probabilities"][0]) == N_CLASSES
    assert abs(sum(out["probabilities"][0]) - 1) < 1e-4
    fb = {"inputs": [ROW, [0.0] * DIM], "labels": [1, 2], "prediction_id": out["prediction_id"], "event_ids": ["rt-1", "rt-2"]}
    r = http.post("/feedback", json=fb, headers=server.auth())
    assert r.status_code == 200, r.text
    seqs = r.json()["seqs"]
    assert len(seqs) == 2 and seqs[1] == seqs[0] + 1
    again = http.post("/feedback", json=fb, headers=server.auth())  # an idempotent retry
    assert again.status_code == 200 and again.json()["seqs"] == seqs and again.json()["duplicates"] == 2
    health = http.get("/health").json()
    assert health["status"] == "ok" and health["logged_seq"] >= seqs[1]
    metrics = http.get("/metrics").text
    for name in ("lifelong_serve_events_received_total", "lifelong_serve_events_applied", "lifelong_serve_events_pending",
                 "lifelong_serve_predict_latency_seconds_bucket", "lifelong_serve_online_accuracy",
                 "lifelong_serve_drift_alarms_total", "lifelong_serve_last_snapshot_seq"):
        assert name in metrics


FEEDBACK_BAD = [
    # (name, body bytes or JSON object, headers, status, words in the message)
    ("not json", b"{inputs: [1,", None, 400, "not valid JSON"),
    ("empty body", b"", None, 400, "empty"),
    ("not an object", [1, 2, 3], None, 422, "JSON object"),
    ("missing labels", {"inputs": [ROW]}, None, 422, "labels"),
    ("unknown key", {"inputs": [ROW], "labels": [1], "weights": [1]}, None, 422, "unknown key"),
    ("empty inputs", {"inputs": [], "labels": []}, None, 422, "non-empty"),
    ("wrong row length", {"inputs": [[0.5] * (DIM - 1)], "labels": [1]}, None, 422, "shape"),
    ("ragged rows", {"inputs": [ROW, ROW[:3]], "labels": [1, 1]}, None, 422, "ragged"),
    ("extra nesting", {"inputs": [[ROW]], "labels": [1]}, None, 422, "shape"),
    ("NaN", b'{"inputs": [[NaN, 0, 0, 0, 0, 0, 0, 0]], "labels": [1]}', None, 422, "NaN or infinity"),
    ("Infinity", b'{"inputs": [[Infinity, 0, 0, 0, 0, 0, 0, 0]], "labels": [1]}', None, 422, "NaN or infinity"),
    ("beyond float32", {"inputs": [[1e39] + ROW[1:]], "labels": [1]}, None, 422, "float32"),
    ("string number", {"inputs": [["0.5"] + ROW[1:]], "labels": [1]}, None, 422, "only numbers"),
    ("null value", {"inputs": [[None] + ROW[1:]], "labels": [1]}, None, 422, "only numbers"),
    ("label too large", {"inputs": [ROW], "labels": [N_CLASSES]}, None, 422, "unknown label"),
    ("negative label", {"inputs": [ROW], "labels": [-1]}, None, 422, "unknown label"),
    ("float label", {"inputs": [ROW], "labels": [1.5]}, None, 422, "not an integer"),
    ("bool label", {"inputs": [ROW], "labels": [True]}, None, 422, "not an integer"),
    ("label count", {"inputs": [ROW, ROW], "labels": [1]}, None, 422, "one class id per input row"),
    ("event_ids count", {"inputs": [ROW], "labels": [1], "event_ids": ["a", "b"]}, None, 422, "event_ids"),
    ("event_id type", {"inputs": [ROW], "labels": [1], "event_ids": [7]}, None, 422, "event_ids[0]"),
    ("prediction_id type", {"inputs": [ROW], "labels": [1], "prediction_id": 5}, None, 422, "prediction_id"),
    ("too many rows", {"inputs": [ROW] * 65, "labels": [1] * 65}, None, 413, "max_rows"),
    ("body too large", b'{"inputs": [[' + b"0," * 15_000 + b'0]], "labels": [1]}', None, 413, "max_body_bytes"),
    ("wrong content type", b'{"inputs": [[0,0,0,0,0,0,0,0]], "labels": [1]}', {"Content-Type": "text/plain"}, 415, "application/json"),
    ("event_id reused for other data", {"inputs": [[9.0] * DIM], "labels": [3], "event_ids": ["known-1"]}, None, 409, "already logged"),
    ("one good row, one bad label", {"inputs": [ROW, ROW], "labels": [1, 99], "event_ids": ["fresh-1", "fresh-2"]}, None, 422, "unknown label"),
]


@pytest.mark.parametrize("name,body,headers,status,words", FEEDBACK_BAD, ids=[c[0] for c in FEEDBACK_BAD])
def test_bad_feedback_is_refused_and_changes_nothing(http, server, name, body, headers, status, words):
    before = state(http)
    h = {**server.auth(), "Content-Type": "application/json", **(headers or {})}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = http.post("/feedback", content=content, headers=h)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert state(http) == before


PREDICT_BAD = [
    ("wrong shape", {"inputs": [[0.5] * (DIM + 1)]}, 422, "shape"),
    ("NaN", b'{"inputs": [[0, 0, 0, 0, 0, 0, 0, NaN]]}', 422, "NaN or infinity"),
    ("not a list", {"inputs": "abc"}, 422, "non-empty list"),
    ("labels not allowed", {"inputs": [ROW], "labels": [1]}, 422, "unknown key"),
]


@pytest.mark.parametrize("name,body,status,words", PREDICT_BAD, ids=[c[0] for c in PREDICT_BAD])
def test_bad_predict_is_refused(http, name, body, status, words):
    before = state(http)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = http.post("/predict", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert state(http) == before


def test_the_startup_heap_is_frozen_out_of_the_collector(http):
    """The served process froze its startup objects (gc.freeze): a full collection no longer walks
    the imported modules and the restored learner while holding the GIL."""
    text = http.get("/metrics").text
    frozen = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("lifelong_serve_gc_frozen_objects ")]
    assert frozen and frozen[0] > 50_000


def test_bad_admin_requests(http, server):
    before = state(http)
    for body, status in (({"to_seq": -1}, 422), ({"to_seq": "3"}, 422), ({}, 422), ({"to_seq": 10**9}, 409)):
        r = http.post("/rollback", json=body, headers=server.auth())
        assert r.status_code == status, r.text
    assert http.get("/feedback").status_code == 405
    assert http.get("/nope").status_code == 404
    assert state(http) == before


# -- authentication -----------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-0000000000"},
                                     {"Authorization": f"Basic {TOKEN}"}, {"Authorization": "Bearer"}],
                         ids=["none", "wrong", "basic scheme", "empty"])
def test_write_and_admin_endpoints_need_the_token(http, headers):
    before = state(http)
    for method, path, body in (("POST", "/feedback", {"inputs": [ROW], "labels": [1]}), ("POST", "/snapshot", None),
                               ("POST", "/rollback", {"to_seq": 0}), ("GET", "/state", None), ("GET", "/snapshots", None)):
        r = http.request(method, path, json=body, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"] == "Bearer"
    assert state(http) == before


def test_predict_is_open_by_default_and_token_never_logged(http, server):
    assert http.post("/predict", json={"inputs": [ROW]}).status_code == 200
    assert http.get("/health").status_code == 200 and http.get("/metrics").status_code == 200
    http.post("/feedback", json={"inputs": [ROW], "labels": [0]}, headers={"Authorization": "Bearer guessed-token-123456"})
    out = server.output()
    assert "Uvicorn running on http://127.0.0.1:" in out  # loopback by default
    assert TOKEN not in out and "guessed-token" not in out


def test_protected_predict(tmp_path):
    srv = Server(write_config(tmp_path, serve={"protect_predict": True}))
    srv.start()
    try:
        assert httpx.post(srv.url + "/predict", json={"inputs": [ROW]}).status_code == 401
        assert httpx.post(srv.url + "/predict", json={"inputs": [ROW]}, headers=srv.auth()).status_code == 200
    finally:
        srv.kill()


def test_refuses_to_start_without_a_token(tmp_path, monkeypatch, capsys):
    from lifelong.cli.serve import main

    monkeypatch.delenv("LIFELONG_SERVE_TOKEN", raising=False)
    with pytest.raises(SystemExit) as e:
        main(["--config", str(write_config(tmp_path))])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "LIFELONG_SERVE_TOKEN" in err and "Traceback" not in err
    assert not (tmp_path / "data").exists()  # refused before anything was created
