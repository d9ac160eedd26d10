"""``GET /dashboard`` in headless Chromium (issue 11): it renders the live numbers, updates itself,
logs nothing to the console, and its data needs the predict token when predict is protected."""

from __future__ import annotations

import re
import shutil
import subprocess

import httpx
import pytest

from tests.serve.conftest import TOKEN, Server, write_config
from tests.serve.test_faults import until

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium")


def render(url: str, tmp_path, budget_ms: int = 4500) -> tuple[str, str]:
    """The DOM after ``budget_ms`` of virtual time, and Chromium's log (console messages included)."""
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                           f"--user-data-dir={tmp_path / 'chromium'}", f"--virtual-time-budget={budget_ms}", "--dump-dom",
                           url], capture_output=True, timeout=120)
    return proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def text(dom: str, id_: str) -> str:
    m = re.search(rf'id="{id_}"[^>]*>([^<]*)<', dom)
    assert m, f"no #{id_} in the page"
    return m.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("dash")
    srv = Server(write_config(d, serve={"protect_predict": True, "batch_size": 4, "linger_ms": 1.0}))
    srv.start()
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        for i in range(20):
            r = c.post("/feedback", json={"inputs": [[i / 20] * 8], "labels": [i % 4]}, headers=srv.auth())
            assert r.status_code == 200
        until(lambda: c.get("/health").json()["applied_seq"] == 20, "learning")
        assert c.post("/snapshot", headers=srv.auth()).status_code == 200
    yield srv
    srv.kill()


def test_the_dashboard_renders_updates_and_has_no_console_errors(server, tmp_path):
    dom, log = render(f"{server.url}/dashboard#token={TOKEN}", tmp_path)
    assert "lifelong serve" in dom
    assert int(text(dom, "updates")) >= 2  # it refreshed itself more than once
    assert text(dom, "logged_seq") == "20" and text(dom, "applied_seq") == "20" and text(dom, "pending") == "0"
    assert text(dom, "status") == "ok" and text(dom, "learner") == "er"
    assert int(text(dom, "snapshots")) >= 1 and text(dom, "frozen") == "on" and text(dom, "faults") == "none"
    assert re.fullmatch(r"\d\.\d{3}", text(dom, "online_accuracy"))
    assert re.search(r'id="acc"[^>]*points="[\d.,]', dom) or re.search(r'points="[\d.,][^"]*"[^>]*id="acc"', dom)
    assert text(dom, "errors") == ""
    assert "CONSOLE" not in log, log  # not one console message, error or otherwise
    assert TOKEN not in server.output()  # the token travelled in the fragment and a header, never in a URL


def test_the_dashboard_data_needs_the_predict_token(server, tmp_path):
    assert httpx.get(server.url + "/dashboard/data").status_code == 401
    assert httpx.get(server.url + "/dashboard/data", headers=server.auth()).status_code == 200
    dom, log = render(f"{server.url}/dashboard", tmp_path, budget_ms=1500)
    assert text(dom, "logged_seq") == "–"  # no data without the token
    assert re.search(r'<div id="auth">', dom)  # the hint is shown (no longer hidden)
