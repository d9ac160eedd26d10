"""Operating a learning model (issue 11): the freeze switch, and the negative flip rate of every
publish against the previous published model."""

from __future__ import annotations

import math
import signal

import httpx
import numpy as np
import pytest
import torch

from lifelong.serve.config import load_serve_config
from lifelong.serve.service import FLIP_CHUNK, Service

from tests.serve.conftest import Server, write_config
from tests.serve.test_faults import metric, until

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROW = [0.5] * 8


def test_freeze_keeps_serving_stops_learning_outlives_a_restart_and_resumes(tmp_path):
    cfg = write_config(tmp_path, serve={"batch_size": 4, "linger_ms": 1.0})
    srv = Server(cfg)
    srv.start()

    def send(c: httpx.Client, n: int) -> None:
        for i in range(n):
            assert c.post("/feedback", json={"inputs": [[i / 10] * 8], "labels": [i % 4]}, headers=srv.auth()).status_code == 200

    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            send(c, 12)
            until(lambda: c.get("/health").json()["applied_seq"] == 12, "learning")
            assert c.post("/freeze", json={"frozen": "yes"}, headers=srv.auth()).status_code == 422
            assert c.post("/freeze", json={"frozen": True}).status_code == 401
            r = c.post("/freeze", json={"frozen": True}, headers=srv.auth())
            assert r.status_code == 200 and r.json()["frozen"] is True
            send(c, 20)  # logged and acknowledged, not learned
            p = c.post("/predict", json={"inputs": [ROW]})
            assert p.status_code == 200 and p.json()["model_seq"] == 12
            assert metric(c.get("/metrics").text, "lifelong_serve_frozen") == 1
        srv.proc.send_signal(signal.SIGTERM)  # a clean stop drains, except while frozen
        assert srv.proc.wait(120) == 0
        srv.start()  # the same server again: still frozen
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            h = c.get("/health").json()
            assert h["frozen"] is True and h["logged_seq"] == 32 and h["applied_seq"] == 12
            r = c.post("/freeze", json={"frozen": False}, headers=srv.auth())
            assert r.status_code == 200 and r.json()["frozen"] is False
            until(lambda: c.get("/health").json()["applied_seq"] == 32, "learning to resume")
            assert c.post("/predict", json={"inputs": [ROW]}).json()["model_seq"] == 32
    finally:
        srv.kill()
    assert "Traceback" not in srv.output()


class _Fixed:
    """A stand-in learner whose predictions are given per row."""

    def __init__(self, labels: torch.Tensor, n_classes: int = 4) -> None:
        self.labels, self.n = labels, n_classes

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(self.labels[: len(x)], self.n).float()


def test_negative_flip_rate_counts_rows_the_old_model_got_right_and_the_new_gets_wrong(tmp_path):
    cfg = load_serve_config(write_config(tmp_path), env={"LIFELONG_SERVE_TOKEN": "t" * 20})
    svc = Service(cfg, threads=False)
    try:
        assert math.isnan(svc.flip_rate)
        y = torch.tensor([0, 1, 2, 3] * 5)  # 20 rows
        svc._recent.extend((np.zeros(8, np.float32), int(v)) for v in y)
        old = y.clone()
        new = y.clone()
        new[:5] = (y[:5] + 1) % 4  # 5 of 20 flip from right to wrong
        old[10:12] = (y[10:12] + 1) % 4  # 2 the old got wrong ...
        new[10:12] = y[10:12]  # ... that the new gets right: positive flips, not counted
        svc._flip(_Fixed(new), _Fixed(old))
        assert svc.flip_rate == pytest.approx(5 / 20)
        assert metric(svc.metrics.render(), "lifelong_serve_negative_flip_rate") == pytest.approx(0.25)
    finally:
        svc.stop(snapshot=False)


def test_the_flip_rate_is_reported_while_serving(tmp_path):
    srv = Server(write_config(tmp_path, serve={"batch_size": 4, "linger_ms": 1.0}))
    srv.start()
    try:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            g = torch.Generator().manual_seed(0)
            for i in range(30):
                x = torch.randn(2, 8, generator=g).tolist()
                assert c.post("/feedback", json={"inputs": x, "labels": [i % 4, (i + 1) % 4]}, headers=srv.auth()).status_code == 200
            h = until(lambda: (h := c.get("/health").json())["applied_seq"] == 60 and h["negative_flip_rate"] is not None and h,
                      "a scored publish")
            assert 0.0 <= h["negative_flip_rate"] <= 1.0
    finally:
        srv.kill()


def test_the_flip_pass_holds_the_serving_lock_one_slice_at_a_time(tmp_path):
    """The served copy scores the flip sample in slices of FLIP_CHUNK rows, each under the serving
    lock, so a /predict never waits for the whole sample's pass; the rate is the whole sample's."""
    cfg = load_serve_config(write_config(tmp_path), env={"LIFELONG_SERVE_TOKEN": "t" * 20})
    svc = Service(cfg, threads=False)
    calls: list[tuple[int, bool]] = []

    class ByRow:  # predicts labels[row id], the id carried in the input's first value
        def __init__(self, labels: torch.Tensor, record: bool) -> None:
            self.labels, self.record = labels, record

        def predict(self, x: torch.Tensor) -> torch.Tensor:
            if self.record:
                calls.append((len(x), svc.published.lock.locked()))
            return torch.nn.functional.one_hot(self.labels[x[:, 0].long()], 4).float()

    try:
        n = 3 * FLIP_CHUNK + 5
        assert n <= cfg.flip_sample
        y = torch.arange(n) % 4
        svc._recent.extend((np.full(8, i, np.float32), int(y[i])) for i in range(n))
        new = y.clone()
        new[:7] = (y[:7] + 1) % 4
        new[-3:] = (y[-3:] + 1) % 4
        svc._flip(ByRow(new, False), ByRow(y.clone(), True))
        assert svc.flip_rate == pytest.approx(10 / n)
        assert [c for c, _ in calls] == [FLIP_CHUNK] * 3 + [5] and all(locked for _, locked in calls)
    finally:
        svc.stop(snapshot=False)
