"""Generic webhook (Falcosidekick's `webhook`): the alert JSON, POST or PUT, custom headers, TLS and mutual TLS."""

from __future__ import annotations

from dataclasses import dataclass, field

from outputs.falco_format import json_bytes
from outputs.http import HttpOutput, send_each
from outputs.model import Alert
from outputs.tls import TlsOptions
from settings.config import ConfigError


@dataclass
class WebhookOptions:
    address: str = ""
    method: str = "POST"
    customheaders: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    tls: TlsOptions = field(default_factory=TlsOptions)

    maxconcurrentrequests: int = 1  # Falcosidekick's key: alerts in flight at once (1 keeps their order)

    def check(self, where: str) -> None:
        if self.maxconcurrentrequests < 1:
            raise ConfigError(f"{where}.maxconcurrentrequests: must be at least 1")
        if not self.address.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.address: an http:// or https:// URL is required")
        if self.method.upper() not in ("POST", "PUT"):
            raise ConfigError(f"{where}.method: POST or PUT, got '{self.method}'")


class WebhookOutput(HttpOutput):
    type_name = "webhook"
    Options = WebhookOptions

    async def start(self) -> None:
        await super().start()
        self.batch_max = self.options.maxconcurrentrequests

    async def send(self, alerts: list[Alert]) -> None:
        o = self.options
        headers = {"Content-Type": "application/json", "User-Agent": "Peregrine", **o.customheaders}

        async def one(alert: Alert) -> None:
            await self.request(o.method.upper(), o.address, content=json_bytes(alert), headers=headers)

        await send_each(alerts, one)
