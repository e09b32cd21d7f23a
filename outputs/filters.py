"""Which alerts an output takes: Falcosidekick's minimum_priority plus rule, tag and source routing."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from outputs import priority
from outputs.config import NameFilter, OutputSpec
from outputs.model import Alert


def _admits(flt: NameFilter, names: list[str]) -> bool:
    if flt.exclude and any(fnmatchcase(n, p) for n in names for p in flt.exclude):
        return False
    if flt.include and not any(fnmatchcase(n, p) for n in names for p in flt.include):
        return False
    return True


@dataclass
class AlertFilter:
    spec: OutputSpec

    def admits(self, alert: Alert) -> bool:
        # Falcosidekick forwards "Test rule" to every output whatever its priority.
        if alert.get("rule") != "Test rule" and not priority.at_least(alert.get("priority"), self.spec.minimum_priority):
            return False
        tags = [str(t) for t in alert.get("tags") or []]
        return (_admits(self.spec.rules, [str(alert.get("rule", ""))])
                and _admits(self.spec.sources, [str(alert.get("source", ""))])
                and (_admits(self.spec.tags, tags) if tags else not self.spec.tags.include))
