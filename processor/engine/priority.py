"""Falco's rule priorities: names, order and case-insensitive parsing (falco_common.cpp)."""

from __future__ import annotations

from enum import IntEnum


class Priority(IntEnum):
    """Lower value = more severe; `priority: X` in config keeps rules with value <= X."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFORMATIONAL = 6
    DEBUG = 7

    @property
    def label(self) -> str:
        """The name Falco prints in alerts ("Warning", "Informational", ...)."""
        return _LABELS[self]

    @property
    def syslog_level(self) -> int:
        """Falco uses the priority number as the syslog severity."""
        return int(self)


_LABELS = {
    Priority.EMERGENCY: "Emergency",
    Priority.ALERT: "Alert",
    Priority.CRITICAL: "Critical",
    Priority.ERROR: "Error",
    Priority.WARNING: "Warning",
    Priority.NOTICE: "Notice",
    Priority.INFORMATIONAL: "Informational",
    Priority.DEBUG: "Debug",
}
_BY_NAME = {label.lower(): prio for prio, label in _LABELS.items()}
_BY_NAME["info"] = Priority.INFORMATIONAL


def parse_priority(text: str) -> Priority | None:
    """Falco accepts the names case-insensitively, plus "info"; None means "Invalid priority"."""
    return _BY_NAME.get(text.strip().lower())
