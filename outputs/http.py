"""Shared HTTP plumbing (httpx): one client per output, and one rule for what a status code means."""

from __future__ import annotations

from typing import Any

import httpx

from outputs.base import Output
from outputs.model import DeliveryError
from outputs.tls import TlsOptions, client_context

# Worth retrying: the destination is busy, restarting or briefly unreachable.
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


def classify(response: httpx.Response, what: str) -> None:
    """Raise DeliveryError unless 2xx; 4xx other than 408/425/429 will not get better by retrying."""
    if 200 <= response.status_code < 300:
        return
    body = response.text[:300].replace("\n", " ")
    retryable = response.status_code in RETRYABLE_STATUS or response.status_code >= 500
    raise DeliveryError(f"{what} -> HTTP {response.status_code}: {body}", retryable=retryable)


class HttpOutput(Output):
    """An output speaking HTTP: `self.client` is ready after start()."""

    timeout_s: float = 10.0
    client: httpx.AsyncClient

    def tls_options(self) -> TlsOptions:
        return getattr(self.options, "tls", None) or TlsOptions()

    async def start(self) -> None:
        timeout = float(getattr(self.options, "timeout", self.timeout_s))
        self.client = httpx.AsyncClient(verify=client_context(self.tls_options()), timeout=timeout,
                                        follow_redirects=False, trust_env=False)

    async def close(self) -> None:
        client = getattr(self, "client", None)
        if client is not None:
            await client.aclose()

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        what = f"{method} {url.split('?')[0]}"
        try:
            response = await self.client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"{what}: {type(exc).__name__}: {exc}") from exc
        classify(response, what)
        return response
