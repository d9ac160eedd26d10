"""Load benchmark of ``lifelong serve``: prediction latency while the model learns.

A real server (``python -m lifelong.serve``) runs the default learner (an error memory over ER
with memory 500; ``--learner er`` for ER alone), batch 32, on the MLP 784-256-256-10 with Fashion-MNIST-shaped inputs (real Fashion-MNIST test images when available).
An open-loop client sends, at fixed rates, ``--predict-rate`` single-image ``/predict`` requests per
second and ``--feedback-rate`` labelled events per second (one per ``/feedback`` request), for
``--seconds`` after a short warm-up. Latencies are measured from each request's *scheduled* send
time, so a stalled server cannot hide queueing (no coordinated omission).

Reported: predict p50/p90/p99/max, feedback acknowledgement p50/p99 (durable commit included), and
the lag between an event's commit and its application by the learner worker (from the server's
``lifelong_serve_apply_lag_seconds``). Writes benchmarks/results/serve_load.json. Never asserts.
Run: ``.venv/bin/python benchmarks/serve_load.py`` (about 50 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results" / "serve_load.json"


def images(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    """``n`` Fashion-MNIST test images (flattened, in [0, 1]) and labels, or random ones of that shape."""
    try:
        from lifelong.data.datasets import dataset_available, load_dataset

        if dataset_available("fashion_mnist"):
            ds = load_dataset("fashion_mnist")
            x = ds.test_inputs()[:n].reshape(-1, 784).numpy()
            return x, ds.y_test[:n].numpy(), "fashion_mnist"
    except Exception as e:  # the benchmark still runs on synthetic inputs of the same shape
        print(f"(Fashion-MNIST not loaded: {e}; using random inputs)", file=sys.stderr)
    rng = np.random.default_rng(0)
    return rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n), "random"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) * 1000 if xs else float("nan")


class Conn:
    """A minimal HTTP/1.1 keep-alive connection: a light client, so that the client's own CPU use
    (on the same 2 cores as the server) distorts the measurement as little as possible."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(body)}\r\n").encode()
        self.writer.write(head + headers + b"\r\n" + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def drive(url: str, token: str, x: np.ndarray, y: np.ndarray, *, predict_rate: float, feedback_rate: float,
                seconds: float, warmup: float) -> dict:
    """Open-loop load: requests start at their scheduled times whatever the latency of earlier ones."""
    host, port = url.removeprefix("http://").split(":")
    rows = [json.dumps({"inputs": [r]}).encode() for r in np.round(x, 4).tolist()]
    fbs = [json.dumps({"inputs": [r], "labels": [int(l)]}).encode() for r, l in zip(np.round(x, 4).tolist(), y)]
    hj = b"Content-Type: application/json\r\n"
    ha = hj + f"Authorization: Bearer {token}\r\n".encode()
    lat: dict[str, list[float]] = {"predict": [], "feedback": []}
    errors: dict[str, int] = {"predict": 0, "feedback": 0}
    idle: list[Conn] = []  # a request takes an idle keep-alive connection or opens one
    t0 = time.perf_counter() + 0.5
    total = warmup + seconds

    async def one(kind: str, at: float, body: bytes, headers: bytes) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        ok = False
        for attempt in range(2):  # a reused keep-alive connection may have been closed by the server
            conn = idle.pop() if idle and attempt == 0 else Conn(host, int(port))
            try:
                ok = await conn.post("/" + kind, body, headers) == 200
                idle.append(conn)
                break
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                continue
        if at - t0 >= warmup:
            if ok:
                lat[kind].append(time.perf_counter() - at)
            else:
                errors[kind] += 1

    tasks = []
    for i in range(int(total * predict_rate)):
        tasks.append(one("predict", t0 + i / predict_rate, rows[i % len(rows)], hj))
    for i in range(int(total * feedback_rate)):
        tasks.append(one("feedback", t0 + i / feedback_rate, fbs[(i * 7919) % len(fbs)], ha))
    await asyncio.gather(*tasks)
    for c in idle:
        c.writer.close()
    return {"lat": lat, "errors": errors}


def scrape(url: str) -> dict[str, float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        m = re.match(r'^(lifelong_serve_[a-z_]+)(\{quantile="([0-9.]+)"\})? (\S+)$', line)
        if m:
            out[m.group(1) + (f"_q{m.group(3)}" if m.group(3) else "")] = float(m.group(4))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--predict-rate", type=float, default=200.0)
    ap.add_argument("--feedback-rate", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=40.0)
    ap.add_argument("--warmup", type=float, default=5.0)
    ap.add_argument("--learner", choices=("error_memory", "er"), default="error_memory",
                    help="error_memory: the service's default (error memory over ER); er: the slow path alone")
    args = ap.parse_args()

    x, y, source = images(2000)
    load_before = os.getloadavg()
    token = secrets.token_urlsafe(24)
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        cfg = Path(d) / "serve.toml"
        cfg.write_text(
            'seed = 0\n[learner]\n'
            + ('name = "error_memory"\ninner = "er"\ninner_hp = {mem_size = 500}\n' if args.learner == "error_memory"
               else 'name = "er"\nmem_size = 500\n')
            + '[model]\nkind = "mlp"\nhidden = [256, 256]\ninput_shape = [784]\nn_classes = 10\n'
            '[serve]\ndata_dir = "data"\nbatch_size = 32\nsnapshot_every = 1000\nthreads = 1\n'
        )
        env = {**os.environ, "LIFELONG_SERVE_TOKEN": token, "PYTHONPATH": str(ROOT)}
        log = open(Path(d) / "server.log", "wb")
        proc = subprocess.Popen([sys.executable, "-m", "lifelong.serve", "--config", str(cfg), "--port", str(port)],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=d)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(url + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                raise SystemExit("server did not start:\n" + (Path(d) / "server.log").read_text())
            res = asyncio.run(drive(url, token, x, y, predict_rate=args.predict_rate, feedback_rate=args.feedback_rate,
                                    seconds=args.seconds, warmup=args.warmup))
            time.sleep(1.0)
            m = scrape(url)
            health = httpx.get(url + "/health", timeout=10).json()
        finally:
            proc.terminate()
            proc.wait(60)
            log.close()
    lat = res["lat"]
    lag_n = m.get("lifelong_serve_apply_lag_seconds_count", 0)
    result = {
        "config": {"learner": ("error memory over ER" if args.learner == "error_memory" else "ER") + " (mem 500, batch 32)", "model": "mlp 784-256-256-10", "inputs": source,
                   "predict_rate_per_s": args.predict_rate, "feedback_events_per_s": args.feedback_rate,
                   "seconds": args.seconds, "warmup_s": args.warmup, "torch_threads": 1},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "loadavg_1min_before": round(load_before[0], 2), "loadavg_1min_after": round(os.getloadavg()[0], 2),
                    "note": "the load average counts every process on the machine, this benchmark's included"},
        "predict_ms": {"n": len(lat["predict"]), "errors": res["errors"]["predict"], "p50": pct(lat["predict"], 50),
                       "p90": pct(lat["predict"], 90), "p99": pct(lat["predict"], 99), "max": pct(lat["predict"], 100)},
        "feedback_ack_ms": {"n": len(lat["feedback"]), "errors": res["errors"]["feedback"],
                            "p50": pct(lat["feedback"], 50), "p99": pct(lat["feedback"], 99), "max": pct(lat["feedback"], 100)},
        "ack_to_apply_lag_ms": {"mean": 1000 * m.get("lifelong_serve_apply_lag_seconds_sum", float("nan")) / max(lag_n, 1),
                                "p50": 1000 * m.get("lifelong_serve_apply_lag_seconds_recent_q0.5", float("nan")),
                                "p99": 1000 * m.get("lifelong_serve_apply_lag_seconds_recent_q0.99", float("nan")),
                                "window": "server side, last 2048 events"},
        "server_predict_ms": {"p50": 1000 * m.get("lifelong_serve_predict_latency_seconds_recent_q0.5", float("nan")),
                              "p99": 1000 * m.get("lifelong_serve_predict_latency_seconds_recent_q0.99", float("nan"))},
        "events_applied": health["applied_seq"], "events_logged": health["logged_seq"],
        "online_accuracy": m.get("lifelong_serve_online_accuracy"),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    p, f, g = result["predict_ms"], result["feedback_ack_ms"], result["ack_to_apply_lag_ms"]
    print(f"predict  p50 {p['p50']:.2f} ms  p99 {p['p99']:.2f} ms  max {p['max']:.1f} ms  ({p['n']} requests, {p['errors']} errors)")
    print(f"feedback ack p50 {f['p50']:.2f} ms  p99 {f['p99']:.2f} ms  ({f['n']} events, {f['errors']} errors)")
    print(f"ack->apply lag mean {g['mean']:.1f} ms  p50 {g['p50']:.1f} ms  p99 {g['p99']:.1f} ms; "
          f"applied {result['events_applied']}/{result['events_logged']}")
    print(f"machine load average (1 min) {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; wrote {OUT}")


if __name__ == "__main__":
    main()
