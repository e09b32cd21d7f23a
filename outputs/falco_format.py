"""Falco's two alert renderings: the text line (`<time>: <Priority> <message>`) and one JSON object per line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from outputs.model import Alert


def text_line(alert: Alert) -> str:
    """The alert's `output` already is Falco's text line; aggregated alerts say how many they stand for."""
    line = str(alert.get("output") or f"{alert.get('time', '')}: {alert.get('priority', '')} {alert.get('rule', '')}")
    count = alert.get("count")
    if isinstance(count, int) and count > 1:
        line += f" (repeated {count} times)"
    return line.replace("\r", "\\r").replace("\n", "\\n")


def json_bytes(alert: Alert) -> bytes:
    """Falco's json_output line: orjson escapes control characters, quotes and backslashes."""
    return orjson.dumps(alert, option=orjson.OPT_SORT_KEYS)


def json_line(alert: Alert) -> str:
    return json_bytes(alert).decode()


def alert_datetime(alert: Alert) -> datetime:
    """The alert's `time` (nanosecond RFC 3339, Falco's format); now if absent or unreadable."""
    raw = str(alert.get("time") or "")
    try:
        return datetime.fromisoformat(raw[:26].rstrip("Z") + "+00:00") if raw else datetime.now(UTC)
    except ValueError:
        return datetime.now(UTC)


def alert_epoch_ns(alert: Alert) -> int:
    """Nanoseconds since the epoch, keeping Falco's nanosecond digits when the time string has them."""
    raw = str(alert.get("time") or "")
    dt = alert_datetime(alert)
    base = int(dt.replace(microsecond=0).timestamp()) * 1_000_000_000
    frac = raw[20:29] if len(raw) >= 30 and raw[19] == "." else ""
    if frac.isdigit() and len(frac) == 9:
        return base + int(frac)
    return base + dt.microsecond * 1000


def key_fields(alert: Alert, limit: int = 12) -> list[tuple[str, Any]]:
    """The output fields worth showing a person first: process, file, container, user; then the rest."""
    fields = alert.get("output_fields") or {}
    preferred = ("proc.name", "proc.cmdline", "proc.pname", "proc.exepath", "fd.name", "user.name", "user.uid",
                 "container.name", "container.id", "container.image.repository", "k8s.ns.name", "k8s.pod.name")
    ordered = [(k, fields[k]) for k in preferred if k in fields]
    ordered += [(k, v) for k, v in sorted(fields.items()) if k not in preferred and k != "evt.time"]
    return ordered[:limit]
