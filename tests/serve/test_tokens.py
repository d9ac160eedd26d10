"""Scoped tokens (issue 11): predict, feedback and admin scopes from a token file, rotation without
a restart, and bad tokens refused at start. A real server per case group."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.serve.conftest import Server, free_port, server_env, write_config
from tests.serve.test_data_dir import assert_refused

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROW = [0.5] * 8
FEED, ADMIN, PRED, NEW_FEED = ("feed-" + "a" * 20, "admin-" + "b" * 20, "pred-" + "c" * 20, "feed-" + "d" * 20)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def write_tokens(path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)  # how an operator (or a secret manager) rotates: a new file over the old


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    d = tmp_path_factory.mktemp("tokens")
    write_tokens(d / "tokens.txt", f"feedback {FEED}\nadmin {ADMIN}   # the operator\npredict {PRED}\n")
    srv = Server(write_config(d, serve={"token_file": "tokens.txt", "protect_predict": True}), token=None)
    srv.start()
    yield srv
    srv.kill()


def calls(c: httpx.Client, token: str) -> dict[str, int]:
    h = bearer(token)
    return {
        "predict": c.post("/predict", json={"inputs": [ROW]}, headers=h).status_code,
        "feedback": c.post("/feedback", json={"inputs": [ROW], "labels": [1]}, headers=h).status_code,
        "state": c.get("/state", headers=h).status_code,
        "snapshots": c.get("/snapshots", headers=h).status_code,
        "rollback": c.post("/rollback", json={"to_seq": 10**9}, headers=h).status_code,  # 409 once authorized
    }


def test_each_scope_opens_only_its_endpoints(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert calls(c, FEED) == {"predict": 403, "feedback": 200, "state": 403, "snapshots": 403, "rollback": 403}
        assert calls(c, PRED) == {"predict": 200, "feedback": 403, "state": 403, "snapshots": 403, "rollback": 403}
        assert calls(c, ADMIN) == {"predict": 403, "feedback": 403, "state": 200, "snapshots": 200, "rollback": 409}
        r = c.post("/rollback", json={"to_seq": 0}, headers=bearer(FEED))  # the case: feedback may not roll back
        assert r.status_code == 403 and "admin" in r.json()["detail"]
    assert FEED not in server.output() and ADMIN not in server.output()


def test_rotation_without_a_restart(server):
    path = server.config.parent / "tokens.txt"
    with httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.post("/feedback", json={"inputs": [ROW], "labels": [1]}, headers=bearer(FEED)).status_code == 200
        write_tokens(path, f"feedback {NEW_FEED}\nadmin {ADMIN}\npredict {PRED}\n")
        assert c.post("/feedback", json={"inputs": [ROW], "labels": [1]}, headers=bearer(FEED)).status_code == 401
        assert c.post("/feedback", json={"inputs": [ROW], "labels": [1]}, headers=bearer(NEW_FEED)).status_code == 200
        # a broken file keeps the tokens in force (and says so in the log)
        write_tokens(path, f"feedback {NEW_FEED}\nsuperuser {'e' * 20}\n")
        assert c.post("/feedback", json={"inputs": [ROW], "labels": [1]}, headers=bearer(NEW_FEED)).status_code == 200
        assert c.get("/state", headers=bearer(ADMIN)).status_code == 200
    assert "token file not reloaded" in server.output()


def start_once(tmp_path, *, env_token: str | None = None, tokens: str | None = None) -> tuple[int | None, str]:
    serve = {}
    if tokens is not None:
        (tmp_path / "tokens.txt").write_text(tokens, encoding="utf-8")
        serve["token_file"] = "tokens.txt"
    cfg = write_config(tmp_path, serve=serve)
    proc = subprocess.run([sys.executable, "-m", "lifelong.serve", "--config", str(cfg), "--port", str(free_port())],
                          capture_output=True, env=server_env(env_token), cwd=tmp_path, timeout=120)
    return proc.returncode, proc.stderr.decode(errors="replace")


@pytest.mark.parametrize("case", ["trailing space", "inner space", "non-ascii", "file non-ascii", "file unknown scope"])
def test_bad_tokens_are_refused_at_start(tmp_path, case):
    kw = {"trailing space": {"env_token": "x" * 20 + " "},
          "inner space": {"env_token": "x" * 10 + " " + "y" * 10},
          "non-ascii": {"env_token": "x" * 20 + "é"},
          "file non-ascii": {"tokens": "feedback " + "x" * 20 + "\u00e9\n"},
          "file unknown scope": {"tokens": "write " + "x" * 20 + "\n"}}[case]
    code, err = start_once(tmp_path, **kw)
    assert_refused(code, err, "token")
    assert "x" * 20 not in err  # the token itself is never printed
    assert not (tmp_path / "data").exists()
