"""One Falco alert as the UI store keeps it: indexed columns plus the text that full-text search reads."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from typing import Any

import orjson

from schemas.codec import DecodeError

# Falco's priority order; the store keeps the index (0 = most severe) so "at or above" is a range.
PRIORITIES = ("Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug")
_PRIORITY_INDEX = {name.lower(): i for i, name in enumerate(PRIORITIES)}
_PRIORITY_INDEX["info"] = 6
_PRIORITY_INDEX[""] = 7  # Falcosidekick's checkPriority: empty counts as debug

_CORE_KEYS = {"uuid", "time", "priority", "rule", "hostname", "source", "tags", "output", "output_fields"}


def priority_index(name: str) -> int:
    try:
        return _PRIORITY_INDEX[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown priority '{name}' (one of {', '.join(PRIORITIES)})") from None


def parse_time_ns(text: str) -> int:
    """Falco's '2024-05-01T12:00:00.123456789Z' to ns since the epoch, without datetime's microsecond cap."""
    if len(text) < 20 or text[4] != "-" or text[10] != "T" or not text.endswith("Z"):
        raise ValueError(f"time '{text}' is not RFC 3339 UTC ('YYYY-MM-DDTHH:MM:SS.fffffffffZ')")
    seconds = calendar.timegm((int(text[0:4]), int(text[5:7]), int(text[8:10]),
                               int(text[11:13]), int(text[14:16]), int(text[17:19]), 0, 0, 0))
    frac = text[20:-1] if text[19] == "." else ""
    nanos = int((frac + "000000000")[:9]) if frac else 0
    return seconds * 1_000_000_000 + nanos


def format_time_ns(ts: int) -> str:
    import time

    seconds, nanos = divmod(ts, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


@dataclass(frozen=True)
class AlertRow:
    uuid: str
    ts: int
    priority: int
    rule: str
    hostname: str
    source: str
    tags: tuple[str, ...]
    output: str
    fields_json: str
    extra_json: str | None

    def index_params(self) -> tuple[Any, ...]:
        """Columns of the narrow `alerts` table: uuid, ts, priority, rule, hostname, source, tags."""
        tags = orjson.dumps(list(self.tags)).decode()
        return (self.uuid, self.ts, self.priority, self.rule, self.hostname, self.source, tags)

    def text_params(self) -> tuple[Any, ...]:
        """Columns of `alert_text` after the id: rule, output, fields, extra."""
        return (self.rule, self.output, self.fields_json, self.extra_json)


def alert_to_row(alert: dict[str, Any]) -> AlertRow:
    """Validate the fields the store indexes; the caller names the record (topic:partition:offset) on error."""
    try:
        uuid = alert["uuid"]
        if not isinstance(uuid, str) or not uuid:
            raise DecodeError("alert has no 'uuid'")
        fields = alert.get("output_fields") or {}
        tags = alert.get("tags") or []
        if not isinstance(fields, dict) or not isinstance(tags, list):
            raise DecodeError("'output_fields' must be an object and 'tags' a list")
        extra = {k: v for k, v in alert.items() if k not in _CORE_KEYS}
        return AlertRow(
            uuid=uuid,
            ts=parse_time_ns(str(alert["time"])),
            priority=priority_index(str(alert.get("priority", ""))),
            rule=str(alert["rule"]),
            hostname=str(alert.get("hostname", "")),
            source=str(alert.get("source") or "syscall"),
            tags=tuple(dict.fromkeys(str(t) for t in tags)),
            output=str(alert.get("output", "")),
            fields_json=orjson.dumps(fields).decode(),
            extra_json=orjson.dumps(extra).decode() if extra else None,
        )
    except KeyError as exc:
        raise DecodeError(f"alert has no '{exc.args[0]}'") from None
    except (ValueError, TypeError) as exc:
        if isinstance(exc, DecodeError):
            raise
        raise DecodeError(str(exc)) from None


def row_to_alert(row: dict[str, Any]) -> dict[str, Any]:
    """The alert as it came off the topic (Falco's JSON layout), rebuilt from the stored columns."""
    alert: dict[str, Any] = orjson.loads(row["extra"]) if row.get("extra") else {}
    alert.update({
        "uuid": row["uuid"],
        "time": format_time_ns(row["ts"]),
        "priority": PRIORITIES[row["priority"]],
        "rule": row["rule"],
        "hostname": row["hostname"],
        "source": row["source"],
        "tags": orjson.loads(row["tags"]),
        "output": row["output"],
        "output_fields": orjson.loads(row["fields"]),
    })
    return alert
