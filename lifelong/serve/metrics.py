"""Prometheus text exposition (format 0.0.4) for the service, without a client library.

Counters and histograms are updated from any thread; gauges are read from callbacks at scrape time.

Examples
--------
>>> m = Registry()
>>> c = m.counter("demo_total", "things")
>>> c.inc(2)
>>> h = m.histogram("demo_seconds", "latency", buckets=(0.01, 0.1))
>>> h.observe(0.05)
>>> print(m.render().splitlines()[2])
demo_total 2
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from collections.abc import Callable

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if math.isnan(v):
        return "NaN"
    return repr(int(v)) if float(v).is_integer() and abs(v) < 2**53 else repr(float(v))


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    esc = (str(v).replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n") for v in labels.values())
    return "{" + ",".join(f'{k}="{e}"' for k, e in zip(labels, esc)) + "}"


class Counter:
    def __init__(self, name: str, help: str) -> None:
        self.name, self.help = name, help
        self._lock = threading.Lock()
        self._values: dict[tuple, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items()) or [((), 0.0)]
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"] + \
            [f"{self.name}{_labels(dict(k))} {_fmt(v)}" for k, v in items]


class Gauge:
    def __init__(self, name: str, help: str, read: Callable[[], float]) -> None:
        self.name, self.help, self.read = name, help, read

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge", f"{self.name} {_fmt(float(self.read()))}"]


class Histogram:
    """Cumulative-bucket histogram plus a sliding window for recent quantiles (p50, p90, p99)."""

    def __init__(self, name: str, help: str, buckets: tuple[float, ...] = LATENCY_BUCKETS, window: int = 2048) -> None:
        self.name, self.help = name, help
        self.buckets = tuple(sorted(buckets))
        self._lock = threading.Lock()
        self._counts = [0] * (len(self.buckets) + 1)  # last: above every bucket (+Inf only)
        self._sum = 0.0
        self._n = 0
        self._recent: deque[float] = deque(maxlen=window)

    def observe(self, v: float) -> None:
        with self._lock:
            self._counts[bisect.bisect_left(self.buckets, v)] += 1
            self._sum += v
            self._n += 1
            self._recent.append(v)

    def quantiles(self, qs: tuple[float, ...] = (0.5, 0.9, 0.99)) -> dict[float, float]:
        """Quantiles of the recent window (nearest rank); NaN when empty."""
        with self._lock:
            xs = sorted(self._recent)
        if not xs:
            return {q: math.nan for q in qs}
        return {q: xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))] for q in qs}

    def render(self) -> list[str]:
        with self._lock:
            counts, total, n = list(self._counts), self._sum, self._n
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        acc = 0
        for b, c in zip(self.buckets, counts):
            acc += c
            out.append(f'{self.name}_bucket{{le="{_fmt(b)}"}} {acc}')
        out += [f'{self.name}_bucket{{le="+Inf"}} {n}', f"{self.name}_sum {_fmt(total)}", f"{self.name}_count {n}"]
        recent = f"{self.name}_recent"
        out += [f"# HELP {recent} {self.help} (quantiles over the last {self._recent.maxlen} observations)",
                f"# TYPE {recent} summary"]
        out += [f'{recent}{{quantile="{q}"}} {_fmt(v)}' for q, v in self.quantiles().items()]
        return out


class Registry:
    """An ordered set of metrics rendered together."""

    def __init__(self) -> None:
        self._metrics: list[Counter | Gauge | Histogram] = []

    def counter(self, name: str, help: str) -> Counter:
        m = Counter(name, help)
        self._metrics.append(m)
        return m

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> Gauge:
        m = Gauge(name, help, read)
        self._metrics.append(m)
        return m

    def histogram(self, name: str, help: str, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> Histogram:
        m = Histogram(name, help, buckets)
        self._metrics.append(m)
        return m

    def render(self) -> str:
        return "\n".join(line for m in self._metrics for line in m.render()) + "\n"
