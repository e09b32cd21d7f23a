"""One host's event batch through state and rules: the hot path shared by the Faust worker, the retro-hunt and
the benchmarks. No Kafka here: callers hand in decoded batches and ship the alerts it returns."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from processor.event_fields import EventFields
from processor.internal_alerts import drop_alert
from processor.state import EXEC_TYPES, LIFECYCLE_TYPES, HostState
from schemas.event_types import META_TYPES as WIRE_META_TYPES


class Engine(Protocol):
    def process(self, event: Any) -> list[Any]: ...

    def format_alert(self, match: Any, event: Any, hostname: str, seq: int, time_ns: int) -> dict[str, Any]: ...

    def evaluated_event_types(self) -> frozenset[str] | None: ...


@dataclass
class EngineFailure:
    """An event that made the engine raise: dead-lettered with its error, the batch carries on."""

    seq: int
    event: dict[str, Any]
    error: str


@dataclass
class BatchResult:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    failures: list[EngineFailure] = field(default_factory=list)
    events: int = 0
    state_changes: int = 0
    matches: Counter[tuple[str, str, str]] = field(default_factory=Counter)


# Meta events keep state and counters; rules never see them (Falco's rules never see its state-only events).
META_TYPES = WIRE_META_TYPES


def process_batch(batch: dict[str, Any], state: HostState, engine: Engine) -> BatchResult:
    host = batch["hostname"]
    first_seq = int(batch.get("first_seq", 0))
    events = batch["events"]
    result = BatchResult(events=len(events))
    apply, process, lifecycle = state.apply, engine.process, LIFECYCLE_TYPES
    ruled = engine.evaluated_event_types()  # (per batch: a rules reload swaps the engine between records)
    for i, ev in enumerate(events):
        seq = first_seq + i
        etype = ev["type"]
        if etype in META_TYPES:
            apply(host, ev)
            result.state_changes += 1
            if etype == "drop":
                alert = drop_alert(host, seq, ev)
                if alert is not None:
                    result.alerts.append(alert)
            continue
        exec_first = etype in EXEC_TYPES
        if exec_first:
            apply(host, ev)
        if ruled is not None and etype not in ruled:  # no rule looks at this type (forks, exits): no fields
            if not exec_first and etype in lifecycle:
                apply(host, ev)
            continue
        fields = EventFields(ev, host, state, seq)
        try:
            matches = process(fields)
            for m in matches:
                alert = engine.format_alert(m, fields, host, seq, int(ev["ts"]))
                result.alerts.append(alert)
                result.matches[(alert["rule"], alert["priority"], alert["source"])] += 1
        except Exception as exc:  # one bad event must not stop a host's stream: it is dead-lettered
            result.failures.append(EngineFailure(seq, ev, f"{type(exc).__name__}: {exc}"))
        if not exec_first and etype in lifecycle:  # (most events are not: no call for them)
            apply(host, ev)
    return result


def apply_state_only(batch: dict[str, Any], state: HostState) -> int:
    """The batch's state changes without rules: a retro-hunt's warm-up before its window. Returns the events."""
    host = batch["hostname"]
    apply = state.apply
    events = batch["events"]
    for ev in events:
        apply(host, ev)
    return len(events)
