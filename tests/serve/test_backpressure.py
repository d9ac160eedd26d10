"""Backpressure (issue 11): a bounded backlog of unlearned events (429 with Retry-After) and an
in-flight byte budget (503 with Retry-After); refused requests are counted and log nothing."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.serve.conftest import TOKEN, Server, write_config
from tests.serve.test_faults import metric, until

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROW = [0.5] * 8


def test_a_full_backlog_answers_429_with_retry_after(tmp_path):
    # the worker lingers for a full batch that never comes: committed events stay unlearned
    srv = Server(write_config(tmp_path, serve={"max_pending": 20, "batch_size": 10_000, "linger_ms": 600_000.0}))
    srv.start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            for i in range(10):
                r = c.post("/feedback", json={"inputs": [ROW, ROW], "labels": [1, 2]}, headers=srv.auth())
                assert r.status_code == 200, r.text
            r = c.post("/feedback", json={"inputs": [ROW], "labels": [1], "event_ids": ["over"]}, headers=srv.auth())
            assert r.status_code == 429, r.text
            assert int(r.headers["retry-after"]) >= 1 and "max_pending" in r.json()["detail"]
            h = c.get("/health").json()
            assert h["logged_seq"] == 20  # the refused request logged nothing
            assert metric(c.get("/metrics").text, 'lifelong_serve_requests_rejected_total{status="429"}') == 1
            assert c.post("/predict", json={"inputs": [ROW]}).status_code == 200  # predictions go on
    finally:
        srv.kill()


def test_the_in_flight_byte_budget_answers_503_with_retry_after(tmp_path):
    srv = Server(write_config(tmp_path, serve={"max_inflight_bytes": 6000, "max_body_bytes": 5000}))
    srv.start()
    body = json.dumps({"inputs": [[0.1234567] * 8] * 40, "labels": [1] * 40}).encode()
    assert 3000 < len(body) < 5000
    try:
        with socket.create_connection(("127.0.0.1", srv.port)) as slow, httpx.Client(base_url=srv.url, timeout=30) as c:
            # a client that declares its body and sends only half of it holds its bytes in the budget
            slow.sendall(b"POST /feedback HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + f"Authorization: Bearer {TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                         + body[: len(body) // 2])
            until(lambda: metric(c.get("/metrics").text, "lifelong_serve_inflight_bytes") == len(body), "the reservation")
            r = c.post("/feedback", content=body, headers={**srv.auth(), "Content-Type": "application/json"})
            assert r.status_code == 503, r.text
            assert r.headers["retry-after"] == "1" and "max_inflight_bytes" in r.json()["detail"]
            assert c.get("/health").json()["logged_seq"] == 0
            slow.sendall(body[len(body) // 2:])  # the slow one completes and is logged
            assert b" 200 " in slow.recv(65536).split(b"\r\n")[0] + b" "
            until(lambda: metric(c.get("/metrics").text, "lifelong_serve_inflight_bytes") == 0, "the release")
            r = c.post("/feedback", content=body, headers={**srv.auth(), "Content-Type": "application/json"})
            assert r.status_code == 200, r.text
            assert metric(c.get("/metrics").text, 'lifelong_serve_requests_rejected_total{status="503"}') == 1
    finally:
        srv.kill()
