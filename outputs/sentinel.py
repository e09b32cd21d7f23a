"""Microsoft Sentinel through the Azure Monitor Logs Ingestion API (data collection endpoint + rule).

OAuth2 client credentials against Entra ID (the token URL is configurable, e.g. for sovereign clouds), then
`POST {endpoint}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01` with a JSON array of
records, at most 1 MB per call. The DCR's stream declares the columns below (TimeGenerated, Rule, Priority, ...).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from outputs.falco_format import alert_datetime
from outputs.http import HttpOutput
from outputs.model import Alert, DeliveryError
from outputs.tls import TlsOptions
from settings.config import ConfigError

MAX_CALL_BYTES = 1_000_000


@dataclass
class SentinelOptions:
    tenant_id: str = ""
    client_id: str = ""
    client_secret: str = ""
    endpoint: str = ""            # data collection endpoint, https://<dce>.<region>.ingest.monitor.azure.com
    dcr_immutable_id: str = ""    # dcr-...
    stream_name: str = "Custom-FalcoAlerts_CL"
    token_url: str = "https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"
    scope: str = "https://monitor.azure.com//.default"
    api_version: str = "2023-01-01"
    timeout: float = 30.0
    tls: TlsOptions = field(default_factory=TlsOptions)

    def check(self, where: str) -> None:
        for key in ("tenant_id", "client_id", "client_secret", "endpoint", "dcr_immutable_id", "stream_name"):
            if not getattr(self, key):
                raise ConfigError(f"{where}.{key}: required for the Logs Ingestion API")


def sentinel_record(alert: Alert) -> dict[str, Any]:
    return {"TimeGenerated": alert_datetime(alert).isoformat().replace("+00:00", "Z"),
            "Rule": alert.get("rule", ""), "Priority": alert.get("priority", ""), "Source": alert.get("source", ""),
            "Hostname": alert.get("hostname", ""), "Tags": alert.get("tags") or [], "Output": alert.get("output", ""),
            "OutputFields": alert.get("output_fields") or {}, "AlertId": alert.get("uuid", ""),
            "Count": alert.get("count", 1)}


def split_calls(records: list[dict[str, Any]], limit: int = MAX_CALL_BYTES) -> list[bytes]:
    """JSON arrays each under the API's 1 MB call limit."""
    calls: list[bytes] = []
    current: list[bytes] = []
    size = 2
    for record in records:
        encoded = orjson.dumps(record)
        if current and size + len(encoded) + 1 > limit:
            calls.append(b"[" + b",".join(current) + b"]")
            current, size = [], 2
        current.append(encoded)
        size += len(encoded) + 1
    if current:
        calls.append(b"[" + b",".join(current) + b"]")
    return calls


class SentinelOutput(HttpOutput):
    type_name = "sentinel"
    Options = SentinelOptions
    batch_max = 500
    _token: str = ""
    _token_expiry: float = 0.0

    async def _bearer(self) -> str:
        if self._token and time.monotonic() < self._token_expiry:
            return self._token
        o = self.options
        url = o.token_url.format(tenant_id=o.tenant_id)
        response = await self.request("POST", url, data={
            "grant_type": "client_credentials", "client_id": o.client_id, "client_secret": o.client_secret,
            "scope": o.scope})
        answer = response.json()
        self._token = str(answer["access_token"])
        self._token_expiry = time.monotonic() + max(0, int(answer.get("expires_in", 3600)) - 300)
        return self._token

    async def send(self, alerts: list[Alert]) -> None:
        o = self.options
        url = f"{o.endpoint.rstrip('/')}/dataCollectionRules/{o.dcr_immutable_id}/streams/{o.stream_name}"
        for body in split_calls([sentinel_record(a) for a in alerts]):
            headers = {"Authorization": f"Bearer {await self._bearer()}", "Content-Type": "application/json"}
            try:
                await self.request("POST", url, params={"api-version": o.api_version}, content=body, headers=headers)
            except DeliveryError as exc:
                if "HTTP 401" in exc.reason or "HTTP 403" in exc.reason:
                    self._token = ""  # a revoked or expired token: fetch a new one on the retry
                    raise DeliveryError(exc.reason, retryable=True) from exc
                raise
