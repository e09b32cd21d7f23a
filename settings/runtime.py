"""Process-wide runtime settings shared by Peregrine's long-running processes (sensor, worker)."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Call once start-up is done. Both hot loops allocate a few objects per event and keep almost none past their
    batch: with the default gen-0 threshold (700) a collection ran every few dozen to few hundred events, each
    re-scanning the start-up objects (compiled rules and probe tables, Faust's machinery). Those are frozen out of
    the collector's view and gen-0 runs 70x less often (~10 % of a worker's CPU in the processor bench; the sensor's
    zero-loss rate, see BENCHMARKS.md)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
