"""Resolves the names the rules compare fd.sip.name & co. with, at start, on every rules change and then every
`refresh_s`, into the table the engine reads (processor/engine/dns_names.py). Falco's DNS manager does the same
from inside the engine; here it is the worker's I/O, in a thread of its own, so the hot path never waits on DNS.

A name that stops resolving keeps its last addresses until it resolves again (a resolver outage does not turn the
rules off); a name that never resolved is counted as unresolved on /metrics.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from processor.engine.dns_names import DnsNames

log = logging.getLogger("peregrine.dns")


def addresses_of(name: str) -> list[str]:
    """Every address the system resolver gives for `name` (IPv4 and IPv6), as fd.sip prints them."""
    infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


@dataclass
class DnsResolver:
    names: Callable[[], list[str]]  # the rules in force, in their order: engine.dns_names
    table: DnsNames
    refresh_s: float = 30.0
    resolve: Callable[[str], list[str]] = addresses_of
    last: dict[str, list[str]] = field(default_factory=dict)  # name -> addresses, as last resolved
    unresolved: set[str] = field(default_factory=set)
    on_resolved: list[Callable[[DnsResolver], None]] = field(default_factory=list)
    _wake: threading.Event = field(default_factory=threading.Event)

    def resolve_now(self) -> None:
        wanted = list(dict.fromkeys(self.names()))
        if not wanted:
            self.last, self.unresolved = {}, set()
            self.table.replace({})
            return
        self.unresolved = {n for n in wanted if not self.last.get(n)}  # until they answer, new names count as such
        for callback in self.on_resolved:
            callback(self)
        # getaddrinfo has no timeout of its own: names resolve side by side, a slow one holds up only itself
        with ThreadPoolExecutor(max_workers=min(8, len(wanted)), thread_name_prefix="dns") as pool:
            outcomes = list(pool.map(self._try, wanted))
        last: dict[str, list[str]] = {}
        unresolved: set[str] = set()
        for name, addresses in zip(wanted, outcomes, strict=True):
            if addresses:
                last[name] = addresses
            elif self.last.get(name):
                last[name] = self.last[name]  # kept: a failed refresh does not forget a known address
            else:
                unresolved.add(name)
        self.last, self.unresolved = last, unresolved
        self.table.replace(last)
        for callback in self.on_resolved:
            callback(self)

    def _try(self, name: str) -> list[str]:
        try:
            return self.resolve(name)
        except (OSError, UnicodeError) as exc:
            log.debug("dns: %s does not resolve: %s", name, exc)
            return []

    def poke(self) -> None:
        """Resolve again now (the rules changed)."""
        self._wake.set()

    def start(self, stop: threading.Event) -> threading.Thread:
        def run() -> None:
            while not stop.is_set():
                try:
                    self.resolve_now()
                except Exception:  # noqa: BLE001 - the next round tries again; the table keeps what it had
                    log.exception("dns: resolving the rules' names failed")
                self._wake.wait(self.refresh_s)
                self._wake.clear()

        thread = threading.Thread(target=run, name="dns-resolver", daemon=True)
        thread.start()
        return thread
