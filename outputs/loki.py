"""Grafana Loki push API (`POST /loki/api/v1/push`, JSON): one stream per label set, nanosecond timestamps.

Labels stay low-cardinality (rule, priority, source, hostname, tags, plus `extralabels` taken from output
fields); the line is Falco's text or the JSON alert.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from outputs.falco_format import alert_epoch_ns, json_line, text_line
from outputs.http import HttpOutput
from outputs.model import Alert
from outputs.tls import TlsOptions
from settings.config import ConfigError


@dataclass
class LokiOptions:
    hostport: str = ""
    endpoint: str = "/loki/api/v1/push"
    tenant: str = ""
    user: str = ""
    apikey: str = ""
    format: str = "text"  # text | json
    extralabels: list[str] = field(default_factory=list)
    customheaders: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    tls: TlsOptions = field(default_factory=TlsOptions)

    def check(self, where: str) -> None:
        if not self.hostport.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.hostport: the Loki URL (http://loki:3100) is required")
        if self.format not in ("text", "json"):
            raise ConfigError(f"{where}.format: text or json, got '{self.format}'")


def label_name(name: str) -> str:
    """Loki label names match [a-zA-Z_][a-zA-Z0-9_]*."""
    label = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    return label if re.match(r"[a-zA-Z_]", label) else "_" + label


def push_body(alerts: list[Alert], o: LokiOptions) -> dict[str, Any]:
    streams: dict[tuple[tuple[str, str], ...], list[list[str]]] = {}
    for alert in alerts:
        fields = alert.get("output_fields") or {}
        labels = {"rule": str(alert.get("rule", "")), "priority": str(alert.get("priority", "")),
                  "source": str(alert.get("source", "")), "hostname": str(alert.get("hostname", "")),
                  "tags": ",".join(map(str, alert.get("tags") or []))}
        for key in o.extralabels:
            if key in fields:
                labels[label_name(key)] = str(fields[key])
        line = json_line(alert) if o.format == "json" else text_line(alert)
        streams.setdefault(tuple(sorted(labels.items())), []).append([str(alert_epoch_ns(alert)), line])
    return {"streams": [{"stream": dict(k), "values": v} for k, v in streams.items()]}


class LokiOutput(HttpOutput):
    type_name = "loki"
    Options = LokiOptions
    batch_max = 500

    async def send(self, alerts: list[Alert]) -> None:
        o = self.options
        headers = {"Content-Type": "application/json", **o.customheaders}
        if o.tenant:
            headers["X-Scope-OrgID"] = o.tenant
        if o.user:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{o.user}:{o.apikey}".encode()).decode()
        await self.request("POST", o.hostport.rstrip("/") + o.endpoint, content=orjson.dumps(push_body(alerts, o)),
                           headers=headers)
