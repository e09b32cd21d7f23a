"""Drop reports: sent when something was lost, with Falco's counter names, deltas and totals."""

from __future__ import annotations

from sensor.drops import DropReporter
from sensor.metrics import SensorMetrics


def test_no_report_while_nothing_is_lost() -> None:
    reporter = DropReporter(interval_s=1.0)
    assert reporter.report(1000, {"n_drops_buffer": 0, "n_drops_scratch_map": 0}, now=1.0) is None


def test_a_report_carries_the_interval_and_the_totals() -> None:
    reporter = DropReporter(interval_s=1.0)
    reporter.report(1000, {"n_drops_buffer": 0}, now=1.0)
    event = reporter.report(1900, {"n_drops_buffer": 100, "n_drops_journal": 0, "n_args_truncated": 4}, now=2.0)
    assert event is not None and event["type"] == "drop"
    args = event["args"]
    assert (args["n_evts"], args["n_drops"], args["n_drops_buffer"]) == ("900", "100", "100")
    assert args["n_drops_pct"] == "10.00"
    assert args["n_drops_buffer_total"] == "100" and args["n_args_truncated"] == "4"
    assert "n_drops_n_args_truncated" not in args, "information counters are not losses"
    later = reporter.report(2500, {"n_drops_buffer": 150, "n_drops_journal": 10}, now=3.0)
    assert later is not None
    assert (later["args"]["n_drops"], later["args"]["n_drops_journal"], later["args"]["n_drops_total"]) == (
        "60", "10", "160")


def test_due_follows_the_interval() -> None:
    reporter = DropReporter(interval_s=1.0)
    reporter.report(0, {}, now=5.0)
    assert not reporter.due(now=5.5) and reporter.due(now=6.0)


def test_capture_counters_fold_into_the_falco_drop_metric() -> None:
    metrics = SensorMetrics()
    metrics.sync_drops({"n_drops_buffer": 5, "n_args_truncated": 9})
    metrics.sync_drops({"n_drops_buffer": 12, "n_args_truncated": 20})
    assert metrics.n_drops.labels("buffer")._value.get() == 12
    metrics.sync_drops({"n_deferred_buffer": 3})
    metrics.sync_drops({"n_deferred_buffer": 7})
    assert metrics.ring_deferred._value.get() == 7  # late records are counted apart: not a loss
    assert ("deferred_buffer",) not in metrics.n_drops._metrics
    assert "args_truncated" not in {s.labels.get("reason") for m in metrics.registry.collect() for s in m.samples}
