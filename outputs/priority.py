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


_SEVERITY = {**{p: i for i, p in enumerate(PRIORITIES)}, **{a: PRIORITIES.index(p) for a, p in _ALIASES.items()}}
_SEVERITY.update({name.capitalize(): level for name, level in list(_SEVERITY.items())})  # as alerts spell them


def normalise(name: object) -> str:
    """Canonical lower-case name; anything unknown counts as debug (Falcosidekick's checkPriority)."""
    return PRIORITIES[severity(name)]


def is_known(name: str) -> bool:
    key = name.strip().lower()
    return _ALIASES.get(key, key) in PRIORITIES


def severity(name: object) -> int:
    """0 (emergency) .. 7 (debug): also the RFC 5424 severity."""
    level = _SEVERITY.get(name) if isinstance(name, str) else None
    if level is None:
        level = _SEVERITY.get(str(name or "").strip().lower(), 7)
    return level


def at_least(priority: object, minimum: str) -> bool:
    return severity(priority) <= severity(minimum)
