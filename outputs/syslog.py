"""Syslog output: RFC 5424 messages over UDP, TCP (RFC 6587 octet counting) or TLS (RFC 5425), in JSON or CEF.

The alert's uuid, rule, priority and source also travel as RFC 5424 structured data, escaped per section 6.3.3.
A TCP/TLS send is acknowledged when the kernel accepted it (syslog has no application-level ack);
UDP is fire-and-forget.
"""

from __future__ import annotations

import errno
import select
import socket
import ssl
from dataclasses import dataclass, field

from outputs import priority
from outputs.base import Output
from outputs.cef import cef_line
from outputs.escaping import header_token, sd_name, sd_param_value
from outputs.falco_format import alert_datetime, json_line
from outputs.model import Alert, DeliveryError
from outputs.tls import TlsOptions, client_context
from settings.config import ConfigError

FACILITIES = {"kern": 0, "user": 1, "daemon": 3, "auth": 4, "syslog": 5, "authpriv": 10,
              **{f"local{i}": 16 + i for i in range(8)}}


@dataclass
class SyslogOptions:
    host: str = "127.0.0.1"
    port: int = 514
    protocol: str = "udp"           # udp | tcp | tls
    format: str = "json"            # json | cef
    facility: str = "local0"
    app_name: str = "falco"
    msgid: str = "alert"
    framing: str = "octet-counting"  # tcp/tls: octet-counting (RFC 6587 3.4.1) | lf
    structured_data: bool = True
    sd_id: str = "peregrine@32473"
    timeout: float = 10.0
    tls: TlsOptions = field(default_factory=TlsOptions)

    def check(self, where: str) -> None:
        for key, value, allowed in (("protocol", self.protocol, ("udp", "tcp", "tls")),
                                    ("format", self.format, ("json", "cef")),
                                    ("framing", self.framing, ("octet-counting", "lf")),
                                    ("facility", self.facility, tuple(FACILITIES))):
            if value not in allowed:
                raise ConfigError(f"{where}.{key}: one of {', '.join(allowed)}, got '{value}'")


def rfc5424(alert: Alert, opts: SyslogOptions) -> bytes:
    pri = FACILITIES[opts.facility] * 8 + priority.severity(alert.get("priority"))
    ts = alert_datetime(alert).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # TIME-SECFRAC: at most 6 digits
    header = " ".join([f"<{pri}>1", ts, header_token(alert.get("hostname"), 255), header_token(opts.app_name, 48),
                       "-", header_token(opts.msgid, 32)])
    sd = "-"
    if opts.structured_data:
        params = [("uuid", alert.get("uuid", "")), ("rule", alert.get("rule", "")),
                  ("priority", alert.get("priority", "")), ("source", alert.get("source", ""))]
        sd = f"[{sd_name(opts.sd_id)} " + " ".join(f'{sd_name(k)}="{sd_param_value(v)}"' for k, v in params) + "]"
    body = cef_line(alert) if opts.format == "cef" else json_line(alert)
    return f"{header} {sd} {body}".encode()


class SyslogOutput(Output):
    type_name = "syslog"
    Options = SyslogOptions
    batch_max = 200
    _sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        o = self.options
        if o.protocol == "udp":
            sock = socket.socket(socket.AF_INET6 if ":" in o.host else socket.AF_INET, socket.SOCK_DGRAM)
            sock.connect((o.host, o.port))
            return sock
        raw = socket.create_connection((o.host, o.port), timeout=o.timeout)
        if o.protocol == "tls":
            ctx: ssl.SSLContext = client_context(o.tls)
            return ctx.wrap_socket(raw, server_hostname=o.host)
        return raw

    def _frame(self, message: bytes) -> bytes:
        if self.options.protocol == "udp":
            return message
        if self.options.framing == "lf":
            return message.replace(b"\n", b" ") + b"\n"
        return str(len(message)).encode() + b" " + message

    async def send(self, alerts: list[Alert]) -> None:
        frames = [self._frame(rfc5424(a, self.options)) for a in alerts]
        try:
            if self._sock is not None and not self._peer_open(self._sock):
                self._drop()
            if self._sock is None:
                self._sock = self._connect()
            if self.options.protocol == "udp":
                for frame in frames:
                    self._sock.send(frame)
            else:
                self._sock.sendall(b"".join(frames))
        except OSError as exc:
            self._drop()
            o = self.options
            # A datagram over the UDP limit will never fit: dead-letter it rather than retry.
            retryable = exc.errno != errno.EMSGSIZE
            raise DeliveryError(f"syslog {o.protocol}://{o.host}:{o.port}: {exc}", retryable=retryable) from exc

    def _peer_open(self, sock: socket.socket) -> bool:
        """A syslog server never writes to us: a readable TCP/TLS socket means it closed (or reset) its end,
        and writing into it would lose the first frame silently."""
        if self.options.protocol == "udp":
            return True
        readable, _, _ = select.select([sock], [], [], 0)
        return not readable

    def _drop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    async def close(self) -> None:
        self._drop()
