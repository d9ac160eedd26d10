"""Hostile and odd requests against a real server (issue 11): every one gets a 4xx or a counted JSON
503, never a 500, no bad request fails another client's commit, and nothing stored changes."""

from __future__ import annotations

import json
import shutil
import threading

import httpx
import pytest

from tests.serve.conftest import TOKEN, Server, write_config
from tests.serve.test_api import state

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

DIM = 8
ROW = [0.5] * DIM
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    srv = Server(write_config(d, serve={"max_rows": 64}))
    srv.start()
    yield srv
    srv.kill()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=30.0) as c:
        yield c


def rejected(http: httpx.Client, status: int) -> float:
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(f'lifelong_serve_requests_rejected_total{{status="{status}"}}'):
            return float(line.split()[-1])
    return 0.0


def feedback_raw(ids_json: str) -> bytes:
    return ('{"inputs": [[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]], "labels": [1], "event_ids": [' + ids_json + "]}").encode()


BAD_IDS = [
    ("lone surrogate", '"ok-\\ud800"', "surrogate"),
    ("low surrogate alone", '"\\udfff"', "surrogate"),
    ("NUL", '"a\\u0000b"', "control character"),
    ("object", '{"a": 1}', "event_ids[0]"),
    ("number", "3", "event_ids[0]"),
    ("empty", '""', "event_ids[0]"),
]


@pytest.mark.parametrize("name,ids,words", BAD_IDS, ids=[b[0] for b in BAD_IDS])
def test_bad_event_ids_are_refused_before_the_commit(http, name, ids, words):
    before, counted = state(http), rejected(http, 422)
    r = http.post("/feedback", content=feedback_raw(ids), headers=AUTH)
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]
    assert state(http) == before
    assert rejected(http, 422) == counted + 1


def test_a_bad_prediction_id_is_refused(http):
    before = state(http)
    body = b'{"inputs": [[0.5,0.5,0.5,0.5,0.5,0.5,0.5,0.5]], "labels": [1], "prediction_id": "\\ud83d"}'
    r = http.post("/feedback", content=body, headers=AUTH)
    assert r.status_code == 422 and "surrogate" in r.json()["detail"]
    assert state(http) == before


def test_one_bad_id_does_not_fail_concurrent_valid_requests(http, server):
    """12 valid requests race one with a lone surrogate into the same group commit: all 12 are logged."""
    before = state(http)
    results: list[int] = []
    lock = threading.Lock()
    go = threading.Barrier(13)

    def send(i: int) -> None:
        body = feedback_raw('"\\ud800"') if i == 12 else json.dumps(
            {"inputs": [ROW], "labels": [i % 4], "event_ids": [f"race-{i}"]}).encode()
        with httpx.Client(base_url=server.url, timeout=30.0) as c:
            go.wait()
            r = c.post("/feedback", content=body, headers=AUTH)
        with lock:
            results.append((i, r.status_code))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(13)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = dict(results)
    assert codes.pop(12) == 422
    assert set(codes.values()) == {200}, codes
    assert state(http)["events"] == before["events"] + 12


def test_booleans_in_input_rows_are_refused(http):
    before = state(http)
    for body in ({"inputs": [[True] + ROW[1:]], "labels": [1]}, {"inputs": [ROW, ROW[:-1] + [False]], "labels": [1, 2]}):
        r = http.post("/feedback", json=body, headers=AUTH)
        assert r.status_code == 422 and "booleans" in r.json()["detail"], r.text
    r = http.post("/predict", json={"inputs": [[False] * DIM]})
    assert r.status_code == 422, r.text
    assert state(http) == before


@pytest.mark.parametrize("path", ["/predict", "/feedback", "/rollback"])
def test_integer_literals_past_the_conversion_limit_are_a_400(http, path):
    before, counted = state(http), rejected(http, 400)
    huge = "9" * 5000
    body = {"/predict": '{"inputs": [[%s,0,0,0,0,0,0,0]]}', "/feedback": '{"inputs": [[0,0,0,0,0,0,0,0]], "labels": [%s]}',
            "/rollback": '{"to_seq": %s}'}[path] % huge
    r = http.post(path, content=body.encode(), headers=AUTH)
    assert r.status_code == 400, r.text
    assert "number" in r.json()["detail"]
    assert rejected(http, 400) == counted + 1
    assert state(http) == before


def test_large_but_readable_integers_are_a_4xx(http):
    before = state(http)
    big = "9" * 4000
    for path, body in (("/rollback", '{"to_seq": %s}' % big), ("/feedback", '{"inputs": [[0,0,0,0,0,0,0,0]], "labels": [%s]}' % big),
                       ("/predict", '{"inputs": [[%s,0,0,0,0,0,0,0]]}' % big)):
        r = http.post(path, content=body.encode(), headers=AUTH)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
    assert state(http) == before


def test_a_failed_snapshot_is_a_counted_json_503(http, server):
    data = server.config.parent / "data"
    snaps = data / "snapshots"
    aside = data / "snapshots.aside"
    before, counted = state(http), rejected(http, 503)
    snaps.rename(aside)
    snaps.write_text("not a directory")  # the snapshot write fails with an OSError
    try:
        http.post("/feedback", json={"inputs": [ROW], "labels": [1]}, headers=AUTH)  # a new step to snapshot
        state(http)
        r = http.post("/snapshot", headers=AUTH)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/json") and "retry-after" in r.headers
        assert "snapshot" in r.json()["detail"]
        assert rejected(http, 503) == counted + 1
    finally:
        snaps.unlink()
        aside.rename(snaps)
    r = http.post("/snapshot", headers=AUTH)  # the fault cleared: the same request now succeeds
    assert r.status_code == 200, r.text
    assert state(http)["events"] == before["events"] + 1
    assert "Traceback" not in server.output()


def test_unknown_paths_are_counted(http):
    counted = rejected(http, 404)
    assert http.get("/nope").status_code == 404
    assert rejected(http, 404) == counted + 1


def test_an_unexpected_exception_is_a_counted_json_503_not_a_500(tmp_path):
    """The error guard, on a real socket: uvicorn in a thread, around an in-process service whose
    /state handler hits a bug (here: an injected RuntimeError)."""
    import threading as th
    import time as t

    import uvicorn

    from lifelong.serve.app import create_app
    from lifelong.serve.config import load_serve_config
    from lifelong.serve.service import Service
    from tests.serve.conftest import free_port

    cfg = load_serve_config(write_config(tmp_path), env={"LIFELONG_SERVE_TOKEN": TOKEN})
    svc = Service(cfg, threads=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(svc), host="127.0.0.1", port=port, log_level="warning"))
    runner = th.Thread(target=server.run, daemon=True)
    runner.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = t.monotonic() + 60
        while not server.started:
            assert t.monotonic() < deadline
            t.sleep(0.05)

        def broken():
            raise RuntimeError("an injected bug")

        svc.log.count = broken  # GET /state calls it
        r = httpx.get(url + "/state", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/json") and r.headers["retry-after"] == "1"
        assert "RuntimeError" in r.json()["detail"]
        m = httpx.get(url + "/metrics").text
        assert 'lifelong_serve_internal_errors_total{path="/state"} 1' in m
        assert 'lifelong_serve_requests_rejected_total{status="503"} 1' in m
    finally:
        server.should_exit = True
        runner.join(60)
