"""The HTTP API (FastAPI on uvicorn) around a :class:`~lifelong.serve.service.Service`.

==========================  =======  ===========================================================
endpoint                    auth     what it does
==========================  =======  ===========================================================
``POST /predict``           predict  ``{"inputs": [[...], ...]}`` -> labels and probabilities
                                     (open unless ``protect_predict``)
``POST /feedback``          feedback ``{"inputs", "labels", "event_ids"?, "prediction_id"?}``;
                                     answers only after the durable commit, with the seqs
``GET /health``             open     worker state, sequence numbers, failing writes
``GET /metrics``            open     Prometheus text
``GET /dashboard``          open     a live page; its data (``GET /dashboard/data``) needs the
                                     predict token when ``protect_predict`` is set
``POST /snapshot``          admin    write a snapshot now
``POST /rollback``          admin    ``{"to_seq": n}``: back to the newest snapshot at or before n
``POST /freeze``            admin    ``{"frozen": true|false}``: keep serving, stop (or resume) learning
``POST /shadow``            admin    ``{"shadow": true|false}``: learn and score, but serve the
                                     promoted model (or follow the learner again)
``POST /promote``           admin    serve the learning model now (past the flip-rate guard)
``GET /snapshots``          admin    the snapshot files
``GET /state``              admin    digests of the worker's and the published learner state
==========================  =======  ===========================================================

Bodies are read with a size limit (413), must be ``application/json`` (415) and are validated
completely before anything is logged (:mod:`lifelong.serve.validation`). Tokens carry scopes
(:mod:`lifelong.serve.tokens`): a valid token without the endpoint's scope gets 403. Tokens are
compared in constant time and never logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from lifelong.errors import ConfigError, DataError, LifelongError
from lifelong.serve.dashboard import PAGE
from lifelong.serve.eventlog import EventConflict
from lifelong.serve.service import Service
from lifelong.serve.validation import RequestError, parse_feedback, parse_json, parse_predict, parse_rollback


log = logging.getLogger("lifelong.serve")
#: bodies larger than this are parsed (and predicted) in a worker thread, off the event loop
OFFLOAD_BYTES = 64 * 1024


class ByteBudget:
    """Request body bytes held by requests in progress (event-loop thread only); past the limit a
    request is refused with 503 and ``Retry-After`` before its body is read."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = int(limit), 0

    def take(self, n: int) -> None:
        if self.used + n > self.limit:
            raise RequestError(503, f"the server is busy reading {self.used} bytes of other requests (limit "
                                    f"[serve] max_inflight_bytes = {self.limit}); retry later", retry_after=1)
        self.used += n

    def give(self, n: int) -> None:
        self.used -= n


class ErrorGuard:
    """ASGI middleware: an exception no handler turned into a response becomes a JSON 503, counted
    in ``lifelong_serve_requests_rejected_total{status="503"}`` and ``lifelong_serve_internal_errors_total``.

    It sits inside Starlette's ServerErrorMiddleware, so that one never answers 500. The error is
    logged as one line (type and message), never with the request body.
    """

    def __init__(self, app, service: Service) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as e:  # noqa: BLE001 - the point of the guard
            if started:  # nothing sensible can be sent any more
                raise
            self.service.rejected.inc(status="503")
            self.service.internal_errors.inc(path=scope.get("path", ""))
            log.error("%s %s failed: %s: %s", scope.get("method"), scope.get("path"), type(e).__name__, e)
            body = json.dumps({"detail": f"the service could not complete this request ({type(e).__name__}: {e}); "
                                         "retry later"}).encode()
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


def create_app(service: Service, *, manage: bool = True) -> FastAPI:
    """The FastAPI app. With ``manage``, the app's lifespan starts and stops the service."""
    cfg = service.cfg
    tokens = cfg.require_token()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if manage:
            await run_in_threadpool(service.start)
        try:
            yield
        finally:
            if manage:
                await run_in_threadpool(service.stop)

    app = FastAPI(title="lifelong serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(ErrorGuard, service=service)

    def authorize(request: Request, scope: str) -> None:
        """401 without a valid token, 403 with a valid one that lacks ``scope``."""
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise RequestError(401, f"this endpoint needs the header `Authorization: Bearer <token>` (scope {scope})")
        scopes = tokens.scopes(given.strip())
        if scopes is None:
            raise RequestError(401, "the bearer token is not valid")
        if scope not in scopes:
            raise RequestError(403, f"this token may not use this endpoint: it needs the {scope!r} scope, the token has "
                                    f"{sorted(scopes)}")

    budget = ByteBudget(cfg.max_inflight_bytes)
    service.metrics.gauge("lifelong_serve_inflight_bytes", "request body bytes being read or processed now",
                          lambda: budget.used)

    @asynccontextmanager
    async def body(request: Request):
        """The raw JSON body, held against the in-flight byte budget until the request is done."""
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise RequestError(415, f"send the body as JSON with `Content-Type: application/json` (got {ctype or 'none'!r})")
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise RequestError(400, "invalid Content-Length header")
            if int(declared) > cfg.max_body_bytes:
                raise RequestError(413, f"the body has {declared} bytes; the limit is {cfg.max_body_bytes} "
                                        "([serve] max_body_bytes): send fewer rows per request")
        held = 0
        try:
            if declared is not None:
                budget.take(int(declared))
                held = int(declared)
            chunks, size = [], 0
            async for chunk in request.stream():  # also bounds chunked bodies without a Content-Length
                size += len(chunk)
                if size > cfg.max_body_bytes:
                    raise RequestError(413, f"the body exceeds {cfg.max_body_bytes} bytes ([serve] max_body_bytes)")
                if size > held:
                    budget.take(size - held)
                    held = size
                chunks.append(chunk)
            yield b"".join(chunks)
        finally:
            budget.give(held)

    async def read_json(request: Request):
        async with body(request) as raw:
            return parse_json(raw)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, e: RequestError) -> JSONResponse:
        service.rejected.inc(status=str(e.status))
        headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else {}
        if e.retry_after is not None:
            headers["Retry-After"] = str(e.retry_after)
        return JSONResponse({"detail": e.message}, status_code=e.status, headers=headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException) -> JSONResponse:  # 404, 405
        service.rejected.inc(status=str(e.status_code))
        return JSONResponse({"detail": e.detail}, status_code=e.status_code, headers=getattr(e, "headers", None))

    @app.exception_handler(LifelongError)
    async def _lifelong_error(request: Request, e: LifelongError) -> JSONResponse:
        if isinstance(e, (ConfigError, EventConflict)):
            status = 409
        elif isinstance(e, DataError):
            status = 422
        else:
            status = 503
        service.rejected.inc(status=str(status))
        return JSONResponse({"detail": str(e)}, status_code=status, headers={"Retry-After": "1"} if status == 503 else None)

    @app.post("/predict")
    async def predict(request: Request) -> JSONResponse:
        t0 = time.perf_counter()
        if cfg.protect_predict:
            authorize(request, "predict")
        async with body(request) as raw:
            def work() -> dict:
                return service.predict(parse_predict(parse_json(raw), cfg))

            # a large body is parsed and predicted off the event loop, so it cannot stall feedback acks;
            # a small one inline (a thread hop costs more than it saves)
            out = await run_in_threadpool(work) if len(raw) > OFFLOAD_BYTES else work()
        service.predict_latency.observe(time.perf_counter() - t0)
        return JSONResponse(out)

    @app.post("/feedback")
    async def feedback(request: Request) -> JSONResponse:
        t0 = time.perf_counter()
        authorize(request, "feedback")
        async with body(request) as raw:
            def work():
                fb = parse_feedback(parse_json(raw), cfg)
                return fb, service.prepare(fb)  # what the served model says before these rows are logged

            fb, served = await run_in_threadpool(work) if len(raw) > OFFLOAD_BYTES else work()
            pending = service.pending()
            if pending + len(fb.y) > cfg.max_pending:
                raise RequestError(429, f"{pending} events wait to be learned; the limit is {cfg.max_pending} "
                                        "([serve] max_pending): retry later", retry_after=1)
            try:
                res = await asyncio.wrap_future(service.submit(fb))  # resolves after the fsynced commit
            except EventConflict as e:
                raise RequestError(409, str(e)) from None
            out = service.after_commit(fb, res, served)
        out.pop("correct")
        service.ack_latency.observe(time.perf_counter() - t0)
        return JSONResponse(out)

    @app.get("/health")
    async def health() -> JSONResponse:
        h = service.health()
        return JSONResponse(h, status_code=503 if h["status"] == "halted" else 200)

    @app.get("/metrics")
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.post("/snapshot")
    async def snapshot(request: Request) -> JSONResponse:
        authorize(request, "admin")
        info = await asyncio.wrap_future(service.worker.request("snapshot"))
        return JSONResponse({"seq": info.seq, "step": info.step, "file": info.path.name})

    @app.post("/rollback")
    async def rollback(request: Request) -> JSONResponse:
        authorize(request, "admin")
        to_seq = parse_rollback(await read_json(request))
        return JSONResponse(await asyncio.wrap_future(service.worker.request("rollback", to_seq=to_seq)))

    @app.get("/dashboard")
    async def dashboard() -> HTMLResponse:
        # the page holds no data; its data endpoint is behind the predict token when predict is protected
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-store", "Content-Security-Policy":
                                           "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                           "connect-src 'self'; img-src 'self'"})

    @app.get("/dashboard/data")
    async def dashboard_data(request: Request) -> JSONResponse:
        if cfg.protect_predict:
            authorize(request, "predict")
        return JSONResponse(service.dashboard())

    @app.post("/freeze")
    async def freeze(request: Request) -> JSONResponse:
        """``{"frozen": true}``: keep serving, stop learning (events are still logged, and learned
        after ``{"frozen": false}``). The setting is kept in the log and outlives a restart."""
        authorize(request, "admin")
        obj = await read_json(request)
        if not isinstance(obj, dict) or set(obj) != {"frozen"} or not isinstance(obj["frozen"], bool):
            raise RequestError(422, 'the freeze body must be {"frozen": true} or {"frozen": false}')
        return JSONResponse(await asyncio.wrap_future(service.worker.request("freeze", frozen=obj["frozen"])))

    @app.post("/shadow")
    async def shadow(request: Request) -> JSONResponse:
        """``{"shadow": true}``: keep learning and scoring, serve the model of this moment until
        ``POST /promote``; ``false``: serve the learner again (a promotion). Kept in the log."""
        authorize(request, "admin")
        obj = await read_json(request)
        if not isinstance(obj, dict) or set(obj) != {"shadow"} or not isinstance(obj["shadow"], bool):
            raise RequestError(422, 'the shadow body must be {"shadow": true} or {"shadow": false}')
        return JSONResponse(await asyncio.wrap_future(service.worker.request("shadow", shadow=obj["shadow"])))

    @app.post("/promote")
    async def promote(request: Request) -> JSONResponse:
        """Serve the learning model's current state (in shadow mode, or past a refused publish)."""
        authorize(request, "admin")
        return JSONResponse(await asyncio.wrap_future(service.worker.request("promote")))

    @app.get("/snapshots")
    async def snapshots(request: Request) -> JSONResponse:
        authorize(request, "admin")
        return JSONResponse([{"seq": i.seq, "step": i.step, "file": i.path.name} for i in service.store.list()])

    @app.get("/state")
    async def state(request: Request) -> JSONResponse:
        authorize(request, "admin")
        d = await asyncio.wrap_future(service.worker.request("digest"))
        d["published"] = await run_in_threadpool(service.published.digest)
        d["published_seq"] = service.published.seq
        d["logged_seq"] = service.log.last_seq
        d["events"] = await run_in_threadpool(service.log.count)
        return JSONResponse(d)

    return app
