"""Periodic "drop" meta events: loss counters travel with the events, so the processor can raise Falco's
`Falco internal: syscall event drop` for the host that lost them.

Like Falco's drop manager, a report covers one interval (1 s by default) and is sent only when something was
lost in it. Its args carry the interval's deltas under Falco's names (n_evts, n_drops, n_drops_buffer,
n_drops_scratch_map, n_drops_journal, ...) and the totals since the sensor started (`*_total`), so a report
that is itself lost (journal full) loses no information: the next one's totals include it. Only counters
named n_drops_* are losses; others the capture keeps (e.g. n_args_truncated) ride along as information.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class DropReporter:
    interval_s: float = 1.0
    comm: str = "peregrine-sensor"
    _last_at: float = field(default_factory=time.monotonic)
    _reported: dict[str, int] = field(default_factory=dict)

    def due(self, now: float | None = None) -> bool:
        return ((time.monotonic() if now is None else now) - self._last_at) >= self.interval_s

    def report(self, n_evts: int, drops: Mapping[str, int], now: float | None = None) -> dict[str, Any] | None:
        """A drop event if any counter grew since the last report, else None. Counters are cumulative."""
        self._last_at = time.monotonic() if now is None else now
        totals = {"n_evts": n_evts, **{k: v for k, v in drops.items() if k.startswith("n_drops_")}}
        totals["n_drops"] = sum(v for k, v in totals.items() if k.startswith("n_drops_"))
        deltas = {k: v - self._reported.get(k, 0) for k, v in totals.items()}
        if deltas["n_drops"] <= 0:
            self._reported["n_evts"] = n_evts
            return None
        self._reported = dict(totals)
        args = {k: str(v) for k, v in deltas.items()}
        args.update({f"{k}_total": str(v) for k, v in totals.items()})
        args.update({k: str(v) for k, v in drops.items() if not k.startswith("n_drops")})  # e.g. n_args_truncated
        evts = deltas["n_evts"] + deltas["n_drops"]
        args["n_drops_pct"] = f"{100.0 * deltas['n_drops'] / evts:.2f}" if evts else "0.00"
        pid = os.getpid()
        return {"ts": time.time_ns(), "type": "drop", "tid": pid, "pid": pid, "ppid": os.getppid(),
                "uid": os.geteuid(), "gid": os.getegid(), "euid": os.geteuid(), "loginuid": -1, "comm": self.comm,
                "res": 0, "args": args, "proc": None}

