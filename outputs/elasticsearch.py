"""Elasticsearch / OpenSearch `_bulk` into daily (or monthly, yearly) indices.

Each document is a `create` with `_id` = the alert uuid, so a retried batch never indexes an alert twice
(a 409 on create means it is already there). Per-item failures are retried or dead-lettered item by item.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from outputs.falco_format import alert_datetime
from outputs.http import RETRYABLE_STATUS, HttpOutput
from outputs.model import Alert, DeliveryError
from outputs.tls import TlsOptions
from settings.config import ConfigError

SUFFIXES = {"daily": "%Y.%m.%d", "monthly": "%Y.%m", "annually": "%Y", "none": ""}


@dataclass
class ElasticsearchOptions:
    hostport: str = ""
    index: str = "falco"
    suffix: str = "daily"
    pipeline: str = ""
    username: str = ""
    password: str = ""
    apikey: str = ""
    customheaders: dict[str, str] = field(default_factory=dict)
    timeout: float = 30.0
    tls: TlsOptions = field(default_factory=TlsOptions)

    def check(self, where: str) -> None:
        if not self.hostport.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.hostport: the cluster URL (https://host:9200) is required")
        if self.suffix not in SUFFIXES:
            raise ConfigError(f"{where}.suffix: one of {', '.join(SUFFIXES)}, got '{self.suffix}'")


def index_name(alert: Alert, o: ElasticsearchOptions) -> str:
    fmt = SUFFIXES[o.suffix]
    return f"{o.index}-{alert_datetime(alert).strftime(fmt)}" if fmt else o.index


def bulk_body(alerts: list[Alert], o: ElasticsearchOptions) -> bytes:
    lines = []
    for alert in alerts:
        action: dict[str, Any] = {"_index": index_name(alert, o)}
        if alert.get("uuid"):
            action["_id"] = alert["uuid"]
        lines.append(orjson.dumps({"create": action}))
        lines.append(orjson.dumps({**alert, "@timestamp": alert_datetime(alert).isoformat().replace("+00:00", "Z")}))
    return b"\n".join(lines) + b"\n"


class ElasticsearchOutput(HttpOutput):
    type_name = "elasticsearch"
    Options = ElasticsearchOptions
    batch_max = 500

    def _headers(self) -> dict[str, str]:
        o = self.options
        headers = {"Content-Type": "application/x-ndjson", **o.customheaders}
        if o.apikey:
            headers["Authorization"] = f"ApiKey {o.apikey}"
        elif o.username:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{o.username}:{o.password}".encode()).decode()
        return headers

    async def send(self, alerts: list[Alert]) -> None:
        o = self.options
        url = o.hostport.rstrip("/") + "/_bulk"
        params = {"pipeline": o.pipeline} if o.pipeline else None
        response = await self.request("POST", url, content=bulk_body(alerts, o), headers=self._headers(),
                                      params=params)
        result = response.json()
        if not result.get("errors"):
            return
        retry, rejected = [], {}
        for i, item in enumerate(result.get("items", [])):
            status: dict[str, Any] = next(iter(item.values()), {})
            code = int(status.get("status", 200))
            if code < 300 or code == 409:  # 409 on create: indexed by an earlier attempt
                continue
            reason = f"_bulk item {i} -> {code}: {orjson.dumps(status.get('error', '')).decode()[:300]}"
            if code in RETRYABLE_STATUS or code >= 500:
                retry.append(reason)
            else:
                rejected[i] = reason
        if retry:
            raise DeliveryError(f"{url}: {len(retry)} item(s) to retry, first: {retry[0]}")
        if rejected:
            raise DeliveryError(f"{url}: {len(rejected)} item(s) refused", retryable=False, rejected=rejected)
