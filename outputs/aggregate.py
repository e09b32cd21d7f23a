"""Throttling by aggregation: the first of identical alerts goes out at once, the rest of its window become one.

Identical = same rule, hostname and configured output fields. When the window closes, the alerts it absorbed
are sent as one alert with `count` (and `output_fields["peregrine.count"]`) so people see "happened N times"
without N notifications (falco#1456, falcosidekick#834). Absorbed alerts keep their Kafka offsets uncommitted
until that summary is delivered.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

from outputs.config import AggregateSpec
from outputs.model import Pending, SourceOffset

_NAMESPACE = uuidlib.UUID("6f1c1c8e-3a59-4c1e-9d53-5d2a8f0e7b11")


@dataclass
class _Window:
    closes_at: float
    absorbed: list[Pending] = field(default_factory=list)


class Aggregator:
    def __init__(self, spec: AggregateSpec) -> None:
        self.spec = spec
        self._windows: dict[tuple[Any, ...], _Window] = {}

    @property
    def enabled(self) -> bool:
        return self.spec.window > 0

    def key(self, pending: Pending) -> tuple[Any, ...]:
        alert = pending.alert
        fields = alert.get("output_fields") or {}
        return (alert.get("rule"), alert.get("hostname"), *(str(fields.get(f)) for f in self.spec.fields))

    def add(self, pending: Pending, now: float) -> Pending | None:
        """The alert to send now, or None when it joins an open window."""
        if not self.enabled:
            return pending
        key = self.key(pending)
        window = self._windows.get(key)
        if window is None or now >= window.closes_at:
            self._windows[key] = _Window(closes_at=now + self.spec.window)
            return pending
        window.absorbed.append(pending)
        return None

    def due(self, now: float) -> list[Pending]:
        """Summaries of every window that has closed."""
        closed = [k for k, w in self._windows.items() if now >= w.closes_at]
        return [s for s in (self._summary(self._windows.pop(k)) for k in closed) if s is not None]

    def drain(self) -> list[Pending]:
        """Summaries of every open window (shutdown)."""
        windows, self._windows = list(self._windows.values()), {}
        return [s for s in (self._summary(w) for w in windows) if s is not None]

    def next_deadline(self) -> float | None:
        return min((w.closes_at for w in self._windows.values() if w.absorbed), default=None)

    @property
    def held(self) -> int:
        return sum(len(w.absorbed) for w in self._windows.values())

    def _summary(self, window: _Window) -> Pending | None:
        if not window.absorbed:
            return None
        count = len(window.absorbed)
        first, last = window.absorbed[0].alert, window.absorbed[-1].alert
        alert = dict(last)
        ids = [p.uuid for p in window.absorbed]
        alert["uuid"] = str(uuidlib.uuid5(_NAMESPACE, "|".join(ids)))
        alert["count"] = count
        alert["aggregation"] = {"window_s": self.spec.window, "first_time": first.get("time"),
                                "last_time": last.get("time"), "fields": list(self.spec.fields),
                                "first_uuid": ids[0], "last_uuid": ids[-1]}
        alert["output_fields"] = {**(last.get("output_fields") or {}), "peregrine.count": count}
        sources: list[SourceOffset] = [s for p in window.absorbed for s in p.sources]
        return Pending(alert, sources)
