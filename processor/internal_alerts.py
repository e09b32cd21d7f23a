"""Falco's internal alerts, produced by Peregrine itself (source "internal")."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any


def alert_time(ns: int) -> str:
    return datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 10**9:09d}Z"


def alert_id(host: str, seq: int, rule: str) -> str:
    digest = hashlib.sha256(f"{host}\x00{seq}\x00{rule}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def drop_alert(host: str, seq: int, ev: dict[str, Any]) -> dict[str, Any] | None:
    """`Falco internal: syscall event drop` when a sensor reports losses since its last report."""
    counters = {k: int(v) for k, v in (ev.get("args") or {}).items() if v.lstrip("-").isdigit()}
    # The sensor reports the interval's total as n_drops (per-reason n_drops_* and cumulative *_total beside it).
    n_drops = counters["n_drops"] if "n_drops" in counters else sum(
        v for k, v in counters.items() if k.startswith("n_drops_") and not k.endswith("_total"))
    if n_drops <= 0:
        return None
    rule = "Falco internal: syscall event drop"
    ts = int(ev["ts"])
    fields = {"n_evts": counters.get("n_evts", 0), "n_drops": n_drops, **counters}
    text = " ".join(f"{k}={v}" for k, v in sorted(fields.items()))
    return {
        "hostname": host,
        "output": f"{alert_time(ts)}: Debug {rule}. {n_drops} system calls dropped in last interval. ({text})",
        "output_fields": fields,
        "priority": "Debug",
        "rule": rule,
        "source": "internal",
        "tags": [],
        "time": alert_time(ts),
        "uuid": alert_id(host, seq, rule),
    }
