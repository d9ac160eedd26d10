"""Connection limits and slow-client timeouts for uvicorn, so idle or slow clients cannot exhaust
the process's file descriptors (which the event log and snapshots need).

:func:`guarded_protocol` wraps uvicorn's HTTP protocol class (httptools or h11) with:

``max_connections``
    a connection beyond it is answered ``503`` with ``Retry-After`` and closed at once;
``header_timeout``
    a connection must deliver a complete request head within this many seconds, counted from
    its opening (or from the end of the previous response on a kept-alive connection): a header
    sent byte by byte, or a connection that sends nothing, is closed;
``body_timeout``
    while a request body is being received, a pause longer than this closes the connection.

Requests whose body has arrived are never timed out here: the app may be waiting for a durable
commit. Counts of refused and timed-out connections are kept in :data:`COUNTS` for ``/metrics``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

COUNTS: Counter[str] = Counter()  # "refused" (over max_connections), "header_timeout", "body_timeout"
BUSY = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def guarded_protocol(base: type[asyncio.Protocol], *, max_connections: int, header_timeout: float,
                     body_timeout: float) -> type[asyncio.Protocol]:
    """A subclass of uvicorn's protocol class ``base`` with the limits above."""
    tick = max(0.05, min(1.0, header_timeout / 4, body_timeout / 4))

    class Guarded(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._guard_timer = None
            if len(self.connections) > max_connections:
                COUNTS["refused"] += 1
                transport.write(BUSY)
                transport.close()
                return
            now = time.monotonic()
            self._phase_start = self._last_data = now
            self._seen_cycle: Any = None  # the last request cycle known to be complete
            self._guard_timer = self.loop.call_later(tick, self._guard_check)

        def data_received(self, data: bytes) -> None:
            self._last_data = time.monotonic()
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if getattr(self, "_guard_timer", None) is not None:
                self._guard_timer.cancel()
                self._guard_timer = None
            super().connection_lost(exc)

        def _guard_check(self) -> None:
            self._guard_timer = None
            if self.transport.is_closing():
                return
            now = time.monotonic()
            cycle = self.cycle
            if cycle is not None and cycle.response_complete and cycle is not self._seen_cycle:
                self._seen_cycle, self._phase_start = cycle, now  # waiting for the next request head
            waiting_for_head = cycle is None or cycle.response_complete
            if waiting_for_head and now - self._phase_start > header_timeout:
                COUNTS["header_timeout"] += 1
                self.transport.close()
                return
            if not waiting_for_head and getattr(cycle, "more_body", False) and now - self._last_data > body_timeout:
                COUNTS["body_timeout"] += 1
                self.transport.close()
                return
            self._guard_timer = self.loop.call_later(tick, self._guard_check)

    Guarded.__name__ = f"Guarded{base.__name__}"
    return Guarded
