"""Splunk HTTP Event Collector: `POST /services/collector/event`, `Authorization: Splunk <token>`, batched events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from outputs.falco_format import alert_epoch_ns
from outputs.http import HttpOutput
from outputs.model import Alert, DeliveryError
from outputs.tls import TlsOptions
from settings.config import ConfigError


@dataclass
class SplunkOptions:
    host: str = ""  # full collector URL, as Falcosidekick: https://splunk:8088/services/collector/event
    token: str = ""
    index: str = ""
    sourcetype: str = "falco"
    source: str = "peregrine"
    customheaders: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    tls: TlsOptions = field(default_factory=TlsOptions)

    def check(self, where: str) -> None:
        if not self.host.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.host: the HEC URL (https://splunk:8088/services/collector/event) is required")
        if not self.token:
            raise ConfigError(f"{where}.token: the HEC token is required")


def hec_event(alert: Alert, o: SplunkOptions) -> dict[str, Any]:
    event: dict[str, Any] = {"time": round(alert_epoch_ns(alert) / 1e9, 6), "host": alert.get("hostname", ""),
                             "source": o.source, "sourcetype": o.sourcetype, "event": alert}
    if o.index:
        event["index"] = o.index
    return event


class SplunkOutput(HttpOutput):
    type_name = "splunk"
    Options = SplunkOptions
    batch_max = 500

    async def send(self, alerts: list[Alert]) -> None:
        o = self.options
        body = b"\n".join(orjson.dumps(hec_event(a, o)) for a in alerts)
        response = await self.request("POST", o.host, content=body, headers={
            "Authorization": f"Splunk {o.token}", "Content-Type": "application/json", **o.customheaders})
        answer = response.json() if response.content else {}
        if answer.get("code", 0) != 0:
            raise DeliveryError(f"{o.host}: HEC answered code {answer.get('code')}: {answer.get('text')}")
