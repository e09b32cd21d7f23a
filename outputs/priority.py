"""Falco priorities as Falcosidekick orders them: `minimum_priority` and the per-format severity maps."""

from __future__ import annotations

# Most severe first; the index is the syslog severity (RFC 5424: 0 emergency .. 7 debug).
PRIORITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "informational", "debug")
_ALIASES = {"info": "informational"}

# Falcosidekick's CEF severities (outputs/syslog.go getCEFSeverity).
CEF_SEVERITY = {"debug": 0, "informational": 3, "notice": 4, "warning": 6, "error": 7, "critical": 8,
                "alert": 9, "emergency": 10}

# Slack/Teams attachment colours, as Falcosidekick uses them.
COLOURS = {"emergency": "#e20b0b", "alert": "#ff5400", "critical": "#ff9000", "error": "#ffc700",
           "warning": "#ffff00", "notice": "#5bffb5", "informational": "#68c2ff", "debug": "#ccfff2"}


def normalise(name: object) -> str:
    """Canonical lower-case name; anything unknown counts as debug (Falcosidekick's checkPriority)."""
    key = str(name or "").strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in PRIORITIES else "debug"


def is_known(name: str) -> bool:
    key = name.strip().lower()
    return _ALIASES.get(key, key) in PRIORITIES


def severity(name: object) -> int:
    """0 (emergency) .. 7 (debug): also the RFC 5424 severity."""
    return PRIORITIES.index(normalise(name))


def at_least(priority: object, minimum: str) -> bool:
    return severity(priority) <= severity(minimum)
