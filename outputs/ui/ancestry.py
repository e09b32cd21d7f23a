"""The process chain behind an alert, from the proc.* fields the rule's output carried (Falco's aname/apid)."""

from __future__ import annotations

import re
from typing import Any

_LEVEL = re.compile(r"^proc\.a(name|pid|cmdline|exepath)\[(\d+)\]$")


def process_ancestry(fields: dict[str, Any]) -> list[dict[str, Any]]:
    """[the process, its parent, grandparent, ...]: each level has whatever of name/pid/cmdline/exepath is known.

    Level 0 is proc.*, level 1 proc.p* (or proc.aname[1]), level N proc.aname[N]; gaps are kept as unknown
    levels so the chain never silently skips a generation.
    """
    levels: dict[int, dict[str, Any]] = {}

    def put(level: int, key: str, value: Any) -> None:
        if value is not None and value != "" and value != "<NA>":
            levels.setdefault(level, {}).setdefault(key, value)

    for key in ("name", "pid", "cmdline", "exepath"):
        put(0, key, fields.get(f"proc.{key}"))
    for key, field in (("name", "proc.pname"), ("pid", "proc.ppid"), ("cmdline", "proc.pcmdline"),
                       ("exepath", "proc.pexepath")):
        put(1, key, fields.get(field))
    for name, value in fields.items():
        m = _LEVEL.match(name)
        if m:
            put(int(m.group(2)), m.group(1), value)
    if not levels or (set(levels) == {0}):
        return [] if not levels else [{"level": 0, **levels[0]}]
    return [{"level": i, **levels.get(i, {})} for i in range(max(levels) + 1)]
