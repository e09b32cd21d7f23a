"""Real peers for output tests: a test PKI (openssl), an rsyslogd of our own, an aiohttp server recording requests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_pki(root: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate, all signed by the CA."""
    root.mkdir(parents=True, exist_ok=True)

    def ossl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True)

    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
         "-subj", "/CN=Peregrine Test CA")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (root / f"{name}.ext").write_text(ext + "\n")
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", f"/CN={name}.peregrine.test")
        ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    return Pki(root / "ca.pem", root / "server.pem", root / "server.key", root / "client.pem", root / "client.key")


RSYSLOG_CONF = """
global(workDirectory="{work}" maxMessageSize="64k"
       DefaultNetstreamDriverCAFile="{ca}" DefaultNetstreamDriverCertFile="{cert}" DefaultNetstreamDriverKeyFile="{key}")
module(load="imudp")
module(load="imtcp" MaxSessions="50")
template(name="fields" type="list") {{
  property(name="pri") constant(value="|")
  property(name="timereported" dateFormat="rfc3339") constant(value="|")
  property(name="hostname") constant(value="|")
  property(name="app-name") constant(value="|")
  property(name="msgid") constant(value="|")
  property(name="structured-data") constant(value="|")
  property(name="msg") constant(value="\\n")
}}
ruleset(name="out") {{ action(type="omfile" file="{out}" template="fields") }}
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="out")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="out")
input(type="imtcp" address="127.0.0.1" port="{tls}" ruleset="out" StreamDriver.Name="gtls" StreamDriver.Mode="1"
      StreamDriver.AuthMode="x509/certvalid")
"""


@dataclass
class Rsyslog:
    """Our own rsyslogd (Debian's), on free ports: UDP, TCP and TLS requiring a client certificate."""

    root: Path
    pki: Pki
    udp: int = field(default_factory=lambda: free_port(socket.SOCK_DGRAM))
    tcp: int = field(default_factory=free_port)
    tls: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def out(self) -> Path:
        return self.root / "received.log"

    def start(self) -> None:
        (self.root / "work").mkdir(parents=True, exist_ok=True)
        conf = self.root / "rsyslog.conf"
        conf.write_text(RSYSLOG_CONF.format(work=self.root / "work", ca=self.pki.ca, cert=self.pki.server_cert,
                                            key=self.pki.server_key, out=self.out, udp=self.udp, tcp=self.tcp,
                                            tls=self.tls))
        self.proc = subprocess.Popen(["rsyslogd", "-n", "-f", str(conf), "-i", str(self.root / "rsyslogd.pid")],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode() if self.proc.stdout else ""
                raise RuntimeError(f"rsyslogd exited: {out}")
            if all(_listening(p) for p in (self.tcp, self.tls)):
                return
            time.sleep(0.1)
        raise RuntimeError("rsyslogd did not listen")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    def lines(self) -> list[str]:
        return self.out.read_text().splitlines() if self.out.exists() else []

    def wait_lines(self, count: int, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if len(lines) >= count:
                return lines
            time.sleep(0.1)
        raise AssertionError(f"rsyslog wrote {len(self.lines())} of {count} lines: {self.lines()}")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    peer_cert: dict[str, Any] | None = None


Handler = Callable[[web.Request, Recorded], Awaitable[web.StreamResponse]]


class HttpServer:
    """An aiohttp server on 127.0.0.1 in its own thread, recording every request; `handler` chooses the answer."""

    def __init__(self, handler: Handler | None = None, ssl_context: Any = None) -> None:
        self.requests: list[Recorded] = []
        self.handler = handler
        self.ssl_context = ssl_context
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        ssl_obj = transport.get_extra_info("ssl_object") if transport else None
        rec = Recorded(request.method, request.path, dict(request.query), dict(request.headers),
                       await request.read(), ssl_obj.getpeercert() if ssl_obj else None)
        self.requests.append(rec)
        if self.handler is None:
            return web.Response(status=200, text="ok")
        return await self.handler(request, rec)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.ssl_context)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> HttpServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def env_without_proxy() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
