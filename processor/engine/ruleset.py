"""Enabled rules indexed by event type, in enable order (Falco's evttype_index_ruleset).

Each event is checked only against rules whose event-type set contains its `evt.type` (plus rules that
match every type), in the order rules were enabled; `rule_matching: first` stops at the first match.
Event types with the same candidate rules share one fused function (`compile_ruleset`): every field is
read once per event for all of them, macros several rules use are evaluated once, and `evt.type` checks
are constants. Groups compile on their first event and are kept across enable/disable changes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from processor.engine.compiler import CompiledRule
from processor.engine.priority import Priority

RULE_MATCHING = ("first", "all")
log = logging.getLogger(__name__)

Evaluator = Callable[[Any], list["Match"]]
"""Evaluates one event against a fixed candidate list; returns the matches in evaluation order."""


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


def _no_match(event: Any) -> list[Match]:
    return []


def _dispatch_keys(types: frozenset[str] | None) -> Iterable[str | None]:
    """A group's keys in the dispatch table: its event types, or None for the any-other-type group."""
    return types if types is not None else (None,)


def per_rule_evaluator(rules: tuple[CompiledRule, ...], first_only: bool) -> Evaluator:
    """One filter call per candidate rule: the reference the fused evaluation must agree with."""
    pairs = tuple((Match(r), r.filter.match) for r in rules)  # type: ignore[attr-defined]

    def evaluate(event: Any) -> list[Match]:
        out: list[Match] = []
        for match, matches in pairs:
            if matches(event):
                out.append(match)
                if first_only:
                    break
        return out

    return evaluate


def fused_evaluator(rules: tuple[CompiledRule, ...], source: str, event_types: frozenset[str] | None,
                    first_only: bool) -> Evaluator:
    """All candidate rules in one generated function; `event_types` are the only types it is given."""
    from processor.engine.filter_compiler import compile_ruleset

    if not rules:
        return _no_match
    fused = compile_ruleset([r.condition for r in rules], source, event_types=event_types,
                            results=[Match(r) for r in rules], first=first_only)
    return fused.match


class Ruleset:
    """Compiled rules plus which are enabled; the index is rebuilt on every enable/disable.

    `fused=False` evaluates rule by rule (each rule's own filter), for comparison and debugging.
    """

    def __init__(self, rules: Iterable[CompiledRule], rule_matching: str = "first", *, fused: bool = True) -> None:
        if rule_matching not in RULE_MATCHING:
            raise ValueError(f"rule_matching must be one of {RULE_MATCHING}, not {rule_matching!r}")
        self.rules = list(rules)
        self.by_name = {r.name: r for r in self.rules}
        self.first_only = rule_matching == "first"
        self.fused = fused
        self._enabled: dict[str, CompiledRule] = {}
        for r in self.rules:
            if r.enabled:
                self._enabled[r.name] = r
        self._index: dict[str, dict[str, tuple[CompiledRule, ...]]] = {}
        self._default: dict[str, tuple[CompiledRule, ...]] = {}
        # source -> evt.type -> evaluator; the None key holds the evaluator for every other type
        self._dispatch: dict[str, dict[str | None, Evaluator]] = {}
        self._groups: dict[str, list[tuple[tuple[CompiledRule, ...], frozenset[str] | None]]] = {}
        self._evaluators: dict[tuple[str, tuple[str, ...], frozenset[str] | None], Evaluator] = {}
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
        for r in self._enabled.values():
            default.setdefault(r.source, [])
            per = index.setdefault(r.source, {})
            for et in r.event_types or ():
                per.setdefault(et, [])
        for r in self._enabled.values():
            if r.event_types is None:
                default[r.source].append(r)
                for lst in index[r.source].values():
                    lst.append(r)
            else:
                for et in r.event_types:
                    index[r.source][et].append(r)
        self._index = {s: {et: tuple(lst) for et, lst in per.items()} for s, per in index.items()}
        self._default = {s: tuple(lst) for s, lst in default.items()}
        self._groups = {}
        self._dispatch = {s: self._dispatch_for(s) for s in self._index}

    def _dispatch_for(self, source: str) -> dict[str | None, Evaluator]:
        """One evaluator per distinct candidate list (open/openat/openat2 usually share one)."""
        by_candidates: dict[tuple[str, ...], tuple[tuple[CompiledRule, ...], list[str]]] = {}
        for et, candidates in self._index[source].items():
            by_candidates.setdefault(tuple(r.name for r in candidates), (candidates, []))[1].append(et)
        groups: list[tuple[tuple[CompiledRule, ...], frozenset[str] | None]] = [
            (candidates, frozenset(types)) for candidates, types in by_candidates.values()]
        groups.append((self._default[source], None))
        self._groups[source] = groups
        dispatch: dict[str | None, Evaluator] = {}
        for candidates, group_types in groups:
            evaluate = self._evaluator(dispatch, source, candidates, group_types)
            for key in _dispatch_keys(group_types):
                dispatch[key] = evaluate
        return dispatch

    def _evaluator(self, dispatch: dict[str | None, Evaluator], source: str, candidates: tuple[CompiledRule, ...],
                   types: frozenset[str] | None) -> Evaluator:
        """The group's evaluator if compiled already, else a stand-in that compiles it on its first event."""
        if not candidates:
            return _no_match
        key = (source, tuple(r.name for r in candidates), types)
        found = self._evaluators.get(key)
        if found is not None:
            return found

        def compile_then_evaluate(event: Any) -> list[Match]:
            evaluate = self._compile(key, candidates)
            for k in [k for k, v in dispatch.items() if v is compile_then_evaluate]:
                dispatch[k] = evaluate
            return evaluate(event)

        return compile_then_evaluate

    def _compile(self, key: tuple[str, tuple[str, ...], frozenset[str] | None],
                 candidates: tuple[CompiledRule, ...]) -> Evaluator:
        evaluate = self._evaluators.get(key)
        if evaluate is not None:
            return evaluate
        source, _, types = key
        if self.fused:
            try:
                evaluate = fused_evaluator(candidates, source, types, self.first_only)
            except (ValueError, SyntaxError, RecursionError, MemoryError) as exc:
                # every rule compiled on its own at load; evaluate them one by one rather than fail events
                log.warning("rules for %s event types %s could not be fused (%s); evaluating rule by rule",
                            source, sorted(types) if types else "(any)", exc)
                evaluate = per_rule_evaluator(candidates, self.first_only)
        else:
            evaluate = per_rule_evaluator(candidates, self.first_only)
        self._evaluators[key] = evaluate
        return evaluate

    def compile_all(self) -> None:
        """Compiles every group now instead of on its first event (no first-event latency)."""
        for source, groups in self._groups.items():
            dispatch = self._dispatch[source]
            for candidates, types in groups:
                if not candidates:
                    continue
                evaluate = self._compile((source, tuple(r.name for r in candidates), types), candidates)
                for key in _dispatch_keys(types):
                    dispatch[key] = evaluate

    # -- evaluation -------------------------------------------------------------------------------
    def required_event_types(self, source: str = "syscall") -> set[str]:
        return set(self._index.get(source, {}))

    def evaluated_event_types(self, source: str = "syscall") -> frozenset[str] | None:
        """The event types some enabled rule is checked against; None when a rule without an evt.type restriction
        sees every type. An event of any other type matches nothing, whatever its fields."""
        if self._default.get(source):
            return None
        return frozenset(self._index.get(source, ()))

    def matches_all_event_types(self, source: str = "syscall") -> bool:
        return bool(self._default.get(source))

    def candidates(self, evt_type: str | None, source: str = "syscall") -> tuple[CompiledRule, ...]:
        """The enabled rules an event of this type is checked against, in evaluation order."""
        per = self._index.get(source)
        if per is None:
            return ()
        found = per.get(evt_type) if evt_type is not None else None
        return found if found is not None else self._default.get(source, ())

    def process(self, event: Any, source: str = "syscall") -> list[Match]:
        dispatch = self._dispatch.get(source)
        if dispatch is None:
            return []
        return (dispatch.get(event.get("evt.type")) or dispatch[None])(event)
