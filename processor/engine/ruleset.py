"""Enabled rules indexed by event type, in enable order (Falco's evttype_index_ruleset).

Each event is checked only against rules whose event-type set contains its `evt.type` (plus rules that
match every type), in the order rules were enabled; `rule_matching: first` stops at the first match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from processor.engine.compiler import CompiledRule
from processor.engine.priority import Priority

RULE_MATCHING = ("first", "all")


def wildcard(pattern: str) -> re.Pattern[str]:
    """Falco's rule-name selection: `*` matches anything, every other character is literal."""
    return re.compile(".*".join(re.escape(p) for p in pattern.split("*")), re.S)


@dataclass(frozen=True, slots=True)
class Match:
    """A rule that matched an event: `rule` is its name, `compiled` the rule itself."""

    compiled: CompiledRule

    @property
    def rule(self) -> str:
        return self.compiled.name

    @property
    def priority(self) -> Priority:
        return self.compiled.priority

    @property
    def source(self) -> str:
        return self.compiled.source

    @property
    def tags(self) -> tuple[str, ...]:
        return self.compiled.tags


class Ruleset:
    """Compiled rules plus which are enabled; rebuilt index on every enable/disable."""

    def __init__(self, rules: Iterable[CompiledRule], rule_matching: str = "first") -> None:
        if rule_matching not in RULE_MATCHING:
            raise ValueError(f"rule_matching must be one of {RULE_MATCHING}, not {rule_matching!r}")
        self.rules = list(rules)
        self.by_name = {r.name: r for r in self.rules}
        self.first_only = rule_matching == "first"
        self._enabled: dict[str, CompiledRule] = {}
        for r in self.rules:
            if r.enabled:
                self._enabled[r.name] = r
        self._index: dict[str, dict[str, tuple[Any, ...]]] = {}
        self._default: dict[str, tuple[Any, ...]] = {}
        self._rebuild()

    # -- selection --------------------------------------------------------------------------------
    @property
    def enabled(self) -> list[CompiledRule]:
        return list(self._enabled.values())

    def is_enabled(self, name: str) -> bool:
        return name in self._enabled

    def select(self, enabled: bool, rule: str | None = None, tag: str | None = None) -> int:
        """Enable/disable rules by name wildcard and/or tag (falco.yaml `rules:`); returns how many matched."""
        rx = wildcard(rule) if rule is not None else None
        count = 0
        for r in self.rules:
            if rx is not None and not rx.fullmatch(r.name):
                continue
            if tag is not None and tag not in r.tags:
                continue
            count += 1
            if enabled:
                self._enabled.setdefault(r.name, r)
            else:
                self._enabled.pop(r.name, None)
        self._rebuild()
        return count

    def _rebuild(self) -> None:
        index: dict[str, dict[str, list[CompiledRule]]] = {}
        default: dict[str, list[CompiledRule]] = {}
        types_by_source: dict[str, set[str]] = {}
        for r in self._enabled.values():
            default.setdefault(r.source, [])
            index.setdefault(r.source, {})
            if r.event_types is not None:
                types_by_source.setdefault(r.source, set()).update(r.event_types)
        for source, types in types_by_source.items():
            for et in types:
                index[source][et] = []
        for r in self._enabled.values():
            if r.event_types is None:
                default[r.source].append(r)
                for lst in index[r.source].values():
                    lst.append(r)
            else:
                for et in r.event_types:
                    index[r.source][et].append(r)
        self._index = {s: {et: tuple((r, r.filter.match) for r in lst)  # type: ignore[attr-defined]
                           for et, lst in per.items()} for s, per in index.items()}
        self._default = {s: tuple((r, r.filter.match) for r in lst)  # type: ignore[attr-defined]
                         for s, lst in default.items()}

    # -- evaluation -------------------------------------------------------------------------------
    def required_event_types(self, source: str = "syscall") -> set[str]:
        return set(self._index.get(source, {}))

    def matches_all_event_types(self, source: str = "syscall") -> bool:
        return bool(self._default.get(source))

    def candidates(self, evt_type: str | None, source: str = "syscall") -> tuple[Any, ...]:
        per = self._index.get(source)
        if per is None:
            return ()
        found = per.get(evt_type) if evt_type is not None else None
        return found if found is not None else self._default.get(source, ())

    def process(self, event: Any, source: str = "syscall") -> list[Match]:
        out: list[Match] = []
        for rule, match in self.candidates(event.get("evt.type"), source):
            if match(event):
                out.append(Match(rule))
                if self.first_only:
                    break
        return out
