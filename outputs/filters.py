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

    def __post_init__(self) -> None:
        self.minimum = priority.severity(self.spec.minimum_priority)
        s = self.spec
        self.by_name = bool(s.rules.include or s.rules.exclude or s.sources.include or s.sources.exclude)
        self.by_tag = bool(s.tags.include or s.tags.exclude)

    def admits(self, alert: Alert) -> bool:
        # Falcosidekick forwards "Test rule" to every output whatever its priority.
        if priority.severity(alert.get("priority")) > self.minimum and alert.get("rule") != "Test rule":
            return False
        if self.by_name and not (_admits(self.spec.rules, [str(alert.get("rule", ""))])
                                 and _admits(self.spec.sources, [str(alert.get("source", ""))])):
            return False
        if self.by_tag:
            tags = [str(t) for t in alert.get("tags") or []]
            return _admits(self.spec.tags, tags) if tags else not self.spec.tags.include
        return True
