"""Generic webhook (Falcosidekick's `webhook`): the alert JSON, POST or PUT, custom headers, TLS and mutual TLS."""

from __future__ import annotations

from dataclasses import dataclass, field

from outputs.falco_format import json_bytes
from outputs.http import HttpOutput
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

    def check(self, where: str) -> None:
        if not self.address.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.address: an http:// or https:// URL is required")
        if self.method.upper() not in ("POST", "PUT"):
            raise ConfigError(f"{where}.method: POST or PUT, got '{self.method}'")


class WebhookOutput(HttpOutput):
    type_name = "webhook"
    Options = WebhookOptions

    async def send(self, alerts: list[Alert]) -> None:
        o = self.options
        headers = {"Content-Type": "application/json", "User-Agent": "Peregrine", **o.customheaders}
        for alert in alerts:
            await self.request(o.method.upper(), o.address, content=json_bytes(alert), headers=headers)
