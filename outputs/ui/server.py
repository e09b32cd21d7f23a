"""The web UI's HTTP side (aiohttp): authentication on every route but the login page, strict security headers,
the JSON API under /api/ and the static single-page app. Store reads run in a small thread pool.
"""

from __future__ import annotations

import asyncio
import html
import logging
import mimetypes
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from outputs.ui import queries
from outputs.ui.ancestry import process_ancestry
from outputs.ui.auth import SESSION_COOKIE, SESSION_TTL_S, AccessToken, Sessions
from outputs.ui.export import csv_chunks, json_chunks
from outputs.ui.ingest import AlertIngestor, IngestStats
from outputs.ui.store import AlertStore, Retention, connect
from settings.config import Config

log = logging.getLogger("peregrine.ui")

STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_PORT = 2802  # falcosidekick-ui's port: one less thing to change in firewall rules
EXPORT_MAX = 100_000
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PUBLIC = {("GET", "/login"), ("POST", "/login"), ("GET", "/login.css")}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def state_dir(cfg: Config) -> Path:
    return cfg.state_path / "ui"


def default_db_path(cfg: Config) -> Path:
    return state_dir(cfg) / "alerts.db"


@dataclass
class UiAccess:
    """Where the UI listens and how to get in; the clear token exists only in the run that generated it."""

    url: str
    token: str | None
    token_file: Path

    @property
    def credentials_line(self) -> str:
        if self.token:
            return (f"Peregrine UI: {self.url}  access token: {self.token}  "
                    f"(shown once; only its scrypt hash is kept in {self.token_file})")
        return (f"Peregrine UI: {self.url}  access token: set at first start "
                f"(hash in {self.token_file}; new one: peregrine ui --reset-token)")


def ui_access(cfg: Config, port: int = DEFAULT_PORT, listen: str = "127.0.0.1", reset_token: bool = False) -> UiAccess:
    """The URL and the credentials line to print, creating the access token on first start."""
    token = AccessToken.load_or_create(state_dir(cfg), reset=reset_token)
    host = f"[{listen}]" if ":" in listen else listen
    shown = "127.0.0.1" if listen in ("0.0.0.0", "") else ("[::1]" if listen == "::" else host)
    return UiAccess(url=f"http://{shown}:{port}/", token=token.new_token, token_file=token.path)


class ReadPool:
    """Read-only connections, one per worker thread (WAL: readers never wait for the ingest writer)."""

    def __init__(self, db_path: Path, workers: int = 4) -> None:
        self.db_path = db_path
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ui-read")
        self._local = threading.local()

    def conn(self) -> sqlite3.Connection:
        c = getattr(self._local, "conn", None)
        if c is None:
            c = self._local.conn = connect(self.db_path, readonly=True)
        return c

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(self.conn(), *args))


_TOKEN_KEY = web.AppKey("token", AccessToken)
_SESSIONS_KEY = web.AppKey("sessions", Sessions)
_POOL_KEY = web.AppKey("pool", ReadPool)
_STATS_KEY = web.AppKey("stats", IngestStats)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


async def _authenticated(request: web.Request) -> bool:
    if request.app[_SESSIONS_KEY].valid(request.cookies.get(SESSION_COOKIE)):
        return True
    token = _bearer(request)
    if token is None:
        return False
    loop = asyncio.get_running_loop()
    return bool(await loop.run_in_executor(None, request.app[_TOKEN_KEY].verify, token))


def _same_origin(request: web.Request) -> bool:
    """State-changing requests must come from our own pages (CSRF): Origin, else Referer, must match Host."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return True  # non-browser client: no ambient cookie can be riding along without an Origin from a browser
    return urlsplit(origin).netloc == request.host


@web.middleware
async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if request.method not in ("GET", "HEAD", "POST"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD", "POST"])
        if request.method == "POST" and not _same_origin(request):
            response: web.StreamResponse = web.Response(status=403, text="cross-origin request refused\n")
        elif (request.method if request.method != "HEAD" else "GET", request.path) in PUBLIC \
                or await _authenticated(request):
            response = await handler(request)
        elif request.path.startswith("/api/") or request.path.startswith("/static/"):
            response = _json({"error": "authentication required: log in or send 'Authorization: Bearer <token>'"},
                             status=401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="peregrine-ui"'
        else:
            response = _login_page(status=401, next_path=request.path_qs)
    except web.HTTPException as exc:  # raised by aiohttp or our handlers: answered as a plain response
        response = web.Response(status=exc.status, body=exc.body, headers=dict(exc.headers))
    if not response.prepared:
        _harden(response)
    return response


def _harden(response: web.StreamResponse) -> None:
    h = response.headers
    h["Content-Security-Policy"] = CSP
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "DENY"
    h["Referrer-Policy"] = "same-origin"  # no-referrer would make browsers send "Origin: null" on our own POSTs
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    h["Cross-Origin-Resource-Policy"] = "same-origin"
    h.setdefault("Cache-Control", "no-cache")


def _safe_next(path: str | None) -> str:
    """Only local paths after login (no open redirect through //host or scheme-relative tricks)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path or path.startswith("/login"):
        return "/"
    return path


def _login_page(status: int = 200, next_path: str = "/", error: str = "") -> web.Response:
    page = (STATIC_DIR / "login.html").read_text()
    page = page.replace("{{next}}", html.escape(_safe_next(next_path), quote=True))
    page = page.replace("{{error}}", html.escape(error, quote=True))
    page = page.replace("{{error_class}}", "error" if error else "error hidden")
    return web.Response(text=page, status=status, content_type="text/html", headers={"Cache-Control": "no-store"})


async def login_get(request: web.Request) -> web.StreamResponse:
    return _login_page(next_path=request.query.get("next", "/"))


async def login_post(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    token = str(form.get("token", ""))
    next_path = str(form.get("next", "/"))
    loop = asyncio.get_running_loop()
    if not await loop.run_in_executor(None, request.app[_TOKEN_KEY].verify, token):
        await asyncio.sleep(0.5)  # on top of scrypt: make online guessing slower still
        return _login_page(status=401, next_path=next_path, error="Wrong access token.")
    response = web.Response(status=303, headers={"Location": _safe_next(next_path)})
    response.set_cookie(SESSION_COOKIE, request.app[_SESSIONS_KEY].create(), httponly=True, samesite="Strict",
                        path="/", max_age=SESSION_TTL_S, secure=request.secure)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    request.app[_SESSIONS_KEY].drop(request.cookies.get(SESSION_COOKIE))
    response = web.Response(status=303, headers={"Location": "/login"})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


async def login_css(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "login.css")


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Content-Type": "text/html; charset=utf-8"})


async def static(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = (STATIC_DIR / name).resolve()
    if path.parent != STATIC_DIR or not path.is_file() or name.startswith("login."):
        raise web.HTTPNotFound()
    ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return web.FileResponse(path, headers={"Content-Type": ctype})


def _filter(request: web.Request) -> queries.AlertFilter:
    try:
        return queries.filter_from_params(request.query)
    except queries.QueryError as exc:
        raise web.HTTPBadRequest(text=orjson.dumps({"error": str(exc)}).decode(),
                                 content_type="application/json") from None


async def _query(request: web.Request, fn: Callable[..., Any], *args: Any) -> web.Response:
    try:
        return _json(await request.app[_POOL_KEY].run(fn, *args))
    except queries.QueryError as exc:
        return _json({"error": str(exc)}, status=400)


async def api_counts(request: web.Request) -> web.StreamResponse:
    return await _query(request, queries.counts, _filter(request))


async def api_timeline(request: web.Request) -> web.StreamResponse:
    return await _query(request, queries.timeline, _filter(request))


async def api_events(request: web.Request) -> web.StreamResponse:
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        return _json({"error": "limit: not an integer"}, status=400)
    return await _query(request, queries.events, _filter(request), limit, request.query.get("before"))


def _event_detail(conn: sqlite3.Connection, uuid: str) -> dict[str, Any] | None:
    alert = queries.event(conn, uuid)
    if alert is None:
        return None
    return {"alert": alert, "ancestry": process_ancestry(alert["output_fields"])}


async def api_event(request: web.Request) -> web.StreamResponse:
    detail = await request.app[_POOL_KEY].run(_event_detail, request.match_info["uuid"])
    if detail is None:
        return _json({"error": "no alert with this uuid in the store (expired or never received)"}, status=404)
    return _json(detail)


async def api_status(request: web.Request) -> web.StreamResponse:
    def newest(conn: sqlite3.Connection) -> dict[str, Any]:
        row = conn.execute("SELECT max(ts) AS ts FROM alerts").fetchone()
        return {"newest": row["ts"] // 1_000_000_000 if row["ts"] else None}

    return _json({"ingest": request.app[_STATS_KEY].snapshot(), **await request.app[_POOL_KEY].run(newest)})


async def api_export(request: web.Request) -> web.StreamResponse:
    f = _filter(request)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        return _json({"error": "format: must be json or csv"}, status=400)
    try:
        limit = min(int(request.query.get("limit", "10000")), EXPORT_MAX)
    except ValueError:
        return _json({"error": "limit: not an integer"}, status=400)
    pool = request.app[_POOL_KEY]
    conn = connect(pool.db_path, readonly=True)
    alerts = queries.iter_alerts(conn, f, limit)
    chunks: Iterator[bytes] = csv_chunks(alerts) if fmt == "csv" else json_chunks(alerts)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    response = web.StreamResponse(headers={
        "Content-Type": "text/csv; charset=utf-8" if fmt == "csv" else "application/json",
        "Content-Disposition": f'attachment; filename="peregrine-alerts-{stamp}.{fmt}"',
        "Cache-Control": "no-store"})
    _harden(response)
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    try:
        while True:
            chunk = await loop.run_in_executor(pool.executor, next, chunks, None)
            if chunk is None:
                break
            await response.write(chunk)
    finally:
        conn.close()
    await response.write_eof()
    return response


def build_app(token: AccessToken, pool: ReadPool, stats: IngestStats | None = None) -> web.Application:
    app = web.Application(middlewares=[security_middleware], client_max_size=64 * 1024)
    app[_TOKEN_KEY] = token
    app[_SESSIONS_KEY] = Sessions()
    app[_POOL_KEY] = pool
    app[_STATS_KEY] = stats or IngestStats()
    app.router.add_get("/login", login_get)
    app.router.add_post("/login", login_post)
    app.router.add_post("/logout", logout)
    app.router.add_get("/login.css", login_css)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/counts", api_counts)
    app.router.add_get("/api/timeline", api_timeline)
    app.router.add_get("/api/events", api_events)
    app.router.add_get("/api/event/{uuid}", api_event)
    app.router.add_get("/api/export", api_export)
    app.router.add_get("/api/status", api_status)
    return app


def _ingest_forever(ingestor: AlertIngestor, stop: threading.Event) -> None:
    """Keep the consumer alive across broker outages: the UI serves what it has meanwhile."""
    while not stop.is_set():
        try:
            ingestor.run(stop)
        except Exception:  # logged by the ingestor; retry after a pause
            stop.wait(5.0)


def run_ui(cfg: Config, port: int = DEFAULT_PORT, listen: str = "127.0.0.1", db_path: Path | str | None = None,
           stop_event: threading.Event | None = None, *, retention: Retention | None = None,
           consume: bool = True, announce: bool = True, reset_token: bool = False) -> None:
    """Serve the UI and fill its store from the alerts topic until `stop_event` is set (blocking).

    `peregrine up` calls `ui_access()` itself to print the address and token, then this with announce=False.
    """
    access = ui_access(cfg, port, listen, reset_token=reset_token)
    token = AccessToken.load_or_create(state_dir(cfg))
    db = Path(db_path) if db_path else default_db_path(cfg)
    store = AlertStore(db, retention)
    stop = stop_event or threading.Event()
    ingestor = AlertIngestor(cfg, store)
    threads = []
    if consume:
        threads.append(threading.Thread(target=_ingest_forever, args=(ingestor, stop), name="ui-ingest", daemon=True))
        threads[-1].start()
    pool = ReadPool(db)
    app = build_app(token, pool, ingestor.stats)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, listen, port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            if access.token:  # never shown: drop it so the next start makes and prints a new one
                access.token_file.unlink(missing_ok=True)
            raise
        if announce:  # only once listening, so the one-time token is never printed for a UI that failed to start
            print(access.credentials_line, flush=True)
        try:
            while not stop.is_set():
                await asyncio.sleep(0.2)
        finally:
            await runner.cleanup()

    try:
        asyncio.run(serve())
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
        pool.executor.shutdown(wait=False, cancel_futures=True)
        store.close()
