"""Falco's alert: the text line and the JSON object (formats.cpp, falco_outputs.cpp).

JSON keys come out sorted (as nlohmann does); `uuid` is Peregrine's stable alert id, the way
Falcosidekick adds one, derived from (hostname, event sequence number, rule) so that a replayed
event produces the same id and consumers can deduplicate.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from processor.engine.compiler import CompiledRule
from processor.engine.formatter import OutputConfig, format_time

ALERT_NAMESPACE = uuid.UUID("5f0c6c1e-9d7a-4c55-8f0e-70657265676e")
"""Namespace of Peregrine alert ids (uuid5)."""

_CONTROL = {i: f"\\u{i:04x}" for i in range(0x20)} | {0x7F: "\\u007f", 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f",
                                                        13: "\\r"}


def alert_id(hostname: str, seq: int, rule: str) -> str:
    return str(uuid.uuid5(ALERT_NAMESPACE, f"{hostname}\x00{seq}\x00{rule}"))


def iso_time(time_ns: int) -> str:
    """JSON `time`: UTC with nanoseconds, `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`."""
    secs, frac = divmod(int(time_ns), 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def escape_control(text: str) -> str:
    """Falco escapes control characters of the text alert so one alert stays one line."""
    return text.translate(_CONTROL)


def _prefix_time(time_ns: int, iso: bool) -> tuple[str, str]:
    if iso:
        secs, frac = divmod(int(time_ns), 1_000_000_000)
        return "evt.time.iso8601", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}+0000"
    return "evt.time", format_time(time_ns)


def alert_text(rule: CompiledRule, event: Any, time_ns: int, config: OutputConfig | None = None) -> str:
    """`<evt.time>: <Priority> <message>`."""
    config = config or OutputConfig()
    _, when = _prefix_time(time_ns, config.time_format_iso_8601)
    return escape_control(f"{when}: {rule.priority.label} {rule.output.format(event)}")


def format_alert(rule: CompiledRule, event: Any, hostname: str, seq: int, time_ns: int,
                 config: OutputConfig | None = None) -> dict[str, Any]:
    """Falco's JSON alert as a dict with sorted keys (serialise with orjson OPT_SORT_KEYS or as is)."""
    config = config or OutputConfig()
    time_key, when = _prefix_time(time_ns, config.time_format_iso_8601)
    message = rule.output.format(event)
    alert: dict[str, Any] = {"hostname": hostname}
    if config.include_message:
        alert["message"] = escape_control(message)
    if config.include_output:
        alert["output"] = escape_control(f"{when}: {rule.priority.label} {message}")
    if config.include_output_fields:
        fields: dict[str, Any] = {time_key: int(time_ns)}
        fields.update(rule.output.fields(event))
        for name, fmt in rule.extra_fields.items():
            tokens = fmt.tokens()
            if len(tokens) == 1 and fmt.parts == (tokens[0],):
                fields[name] = tokens[0].raw(event)
            else:
                fields[name] = fmt.format(event)
        alert["output_fields"] = dict(sorted(fields.items()))
    alert["priority"] = rule.priority.label
    alert["rule"] = rule.name
    alert["source"] = rule.source
    if config.include_tags:
        alert["tags"] = sorted(rule.tags)
    alert["time"] = iso_time(time_ns)
    alert["uuid"] = alert_id(hostname, seq, rule.name)
    return dict(sorted(alert.items()))
