"""Shared HTTP plumbing (httpx): one client per output, and one rule for what a status code means."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from outputs.base import Output
from outputs.model import Alert, DeliveryError
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


async def send_each(alerts: list[Alert], one: Callable[[Alert], Awaitable[None]]) -> None:
    """One request per alert, all in flight together (the worker sizes the chunk to `maxconcurrentrequests`).
    On failure, says which alerts got through so that only the others are retried."""
    if len(alerts) == 1:
        await one(alerts[0])
        return
    results = await asyncio.gather(*(one(a) for a in alerts), return_exceptions=True)
    failures = [(i, r) for i, r in enumerate(results) if isinstance(r, BaseException)]
    if not failures:
        return
    delivered = {i for i, r in enumerate(results) if not isinstance(r, BaseException)}
    first = failures[0][1]
    errors = [r for _, r in failures if isinstance(r, DeliveryError)]
    if len(errors) == len(failures) and not any(e.retryable for e in errors):
        raise DeliveryError(errors[0].reason, retryable=False,
                            rejected={i: r.reason for i, r in failures if isinstance(r, DeliveryError)})
    reason = first.reason if isinstance(first, DeliveryError) else f"{type(first).__name__}: {first}"
    raise DeliveryError(f"{len(failures)} of {len(alerts)} failed, first: {reason}", delivered=delivered)
