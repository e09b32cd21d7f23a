"""faust-streaming can stop fetching a partition after a rebalance while its records wait (faust-streaming #629;
seen here once in CI: a restarted worker, ready, never delivered the record waiting for it). The worker's stall
watchdog then reads that partition itself. The fault is injected with Faust's own pause of every events partition
the worker is given (worker.fault_pause_events_fetch), re-applied each round, so Faust delivers nothing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from settings.config import Config
from tests.conftest import free_port
from tests.pipeline.helpers import (
    SHADOW_RULES,
    alerts_consumer,
    batch,
    committed_offsets,
    event,
    metric_sum,
    metrics_samples,
    proc_info,
    produce_batches,
    read_alerts,
    spawn,
    stop,
    write_config,
)

pytestmark = pytest.mark.kafka

T0 = 1_700_000_000_000_000_000


def shadow_read(host: str, first_seq: int, batch_seq: int) -> dict[str, object]:
    return batch(host, first_seq, [
        event(T0, "snapshot", 100, ppid=1, comm="bash", proc=proc_info("/usr/bin/bash", ["-bash"])),
        event(T0 + 1, "execve", 200, ppid=100, comm="cat", proc=proc_info("/usr/bin/cat", ["cat", "/etc/shadow"])),
        event(T0 + 2, "openat", 200, ppid=100, comm="cat", res=3,
              args={"name": "/etc/shadow", "flags": "524288", "fd": "3", "dirfd": "-100"}),
    ], batch_seq=batch_seq)


def test_a_partition_faust_stops_delivering_is_read_by_the_stall_watchdog(kafka_config: Config,
                                                                         tmp_path: Path) -> None:
    cfg = kafka_config
    cfg.worker.metrics_port = port = free_port()
    cfg.worker.stall_timeout_s = 3.0
    cfg.worker.fault_pause_events_fetch = True
    rules = tmp_path / "rules.yaml"
    rules.write_text(SHADOW_RULES)
    conf = write_config(cfg, tmp_path / "peregrine.yaml")
    consumer = alerts_consumer(cfg)
    worker = spawn(conf, "worker", "--rules", str(rules), "--loglevel", "INFO", log=tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 60
        while "Worker ready" not in (tmp_path / "worker.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # the watchdog has paused every partition it was given
        produce_batches(cfg, [shadow_read("node-a", 1, 0), shadow_read("node-a", 4, 1)])
        got = read_alerts(consumer, lambda a: len(a) >= 2, timeout=60, procs=(worker,))
        log = (tmp_path / "worker.log").read_text()
        assert len(got) == 2, log[-3000:]
        assert {a["output_fields"]["proc.pname"] for a in got} == {"bash"}
        assert "faust-streaming #629" in log  # the stall is said, with the partition and the waiting offsets
        samples = metrics_samples(port)
        stalled = {dict(lbl)["partition"] for (name, lbl), v in samples.items()
                   if name == "peregrine_worker_partition_stalls_total" and v > 0}
        assert len(stalled) == 1, samples  # only the partition with records waiting; idle ones are not stalls
        assert metric_sum(samples, "peregrine_worker_stall_records_total") == 2
        # What the watchdog processed commits like anything else: a successor does not replay it.
        deadline = time.monotonic() + 30
        while sum(max(v, 0) for v in committed_offsets(cfg).values()) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert committed_offsets(cfg)[int(stalled.pop())] == 2
    finally:
        stop(worker)
