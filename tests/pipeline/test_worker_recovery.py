"""The worker keeps each host's process table in Faust tables: a killed worker's successor recovers it from the
changelog, so an alert after the restart still names the right parent process."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from settings.config import Config
from settings.kafka_clients import consumer_config
from tests.pipeline.helpers import (
    SHADOW_RULES,
    alerts_consumer,
    batch,
    event,
    proc_info,
    produce_batches,
    read_alerts,
    spawn,
    stop,
    write_config,
)

pytestmark = pytest.mark.kafka

RULES = SHADOW_RULES

T0 = 1_700_000_000_000_000_000


def committed_total(cfg: Config) -> int:
    c = Consumer(consumer_config(cfg.kafka, group_id=cfg.worker.app_id))
    try:
        parts = [TopicPartition(cfg.kafka.topics.events, p) for p in range(cfg.kafka.events_partitions)]
        return sum(max(tp.offset, 0) for tp in c.committed(parts, timeout=10))
    finally:
        c.close()


def wait_committed(cfg: Config, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if committed_total(cfg) >= n:
            return
        time.sleep(0.5)
    raise AssertionError(f"worker did not commit {n} records within {timeout}s")


def test_restarted_worker_recovers_process_table_from_changelog(kafka_config: Config, tmp_path: Path) -> None:
    cfg = kafka_config
    cfg.worker.metrics_port = 0
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    conf = write_config(cfg, tmp_path / "peregrine.yaml")
    host = "node-a"
    first = batch(host, 1, [
        event(T0, "snapshot", 1, comm="systemd", proc=proc_info("/usr/lib/systemd/systemd", ["/sbin/init"])),
        event(T0 + 1, "snapshot", 100, ppid=1, comm="bash", proc=proc_info("/usr/bin/bash", ["-bash"])),
        event(T0 + 2, "clone", 100, ppid=1, comm="bash", res=200, args={"child_pid": "200", "child_tid": "200"}),
        event(T0 + 3, "execve", 200, ppid=100, comm="cat", proc=proc_info("/usr/bin/cat", ["cat", "/etc/shadow"])),
        event(T0 + 4, "openat", 200, ppid=100, comm="cat", res=3,
              args={"name": "/etc/shadow", "flags": "524288", "fd": "3", "dirfd": "-100"}),
    ])
    consumer = alerts_consumer(cfg)
    produce_batches(cfg, [first])
    worker = spawn(conf, "worker", "--rules", str(rules), "--loglevel", "INFO", log=tmp_path / "worker1.log")
    try:
        got = read_alerts(consumer, lambda a: len(a) >= 1, timeout=90, procs=(worker,))
        assert len(got) == 1, (tmp_path / "worker1.log").read_text()[-3000:]
        fields = got[0]["output_fields"]
        assert (fields["proc.name"], fields["proc.pname"], fields["proc.aname[2]"]) == ("cat", "bash", "systemd")
        wait_committed(cfg, 1)
    finally:
        stop(worker, signal.SIGKILL)

    # The second worker never sees the lifecycle events again: only the changelog can tell it who pid 200 is.
    produce_batches(cfg, [batch(host, 6, [
        event(T0 + 10, "openat", 200, ppid=100, comm="cat", res=4,
              args={"name": "/etc/shadow", "flags": "0", "fd": "4", "dirfd": "-100"}),
    ], batch_seq=1)])
    worker2 = spawn(conf, "worker", "--rules", str(rules), "--loglevel", "INFO", log=tmp_path / "worker2.log")
    try:
        # The group hands over only once the killed member's session expires (15 s); a loaded CI host adds more.
        got2 = read_alerts(consumer, lambda a: len(a) >= 1, timeout=150, procs=(worker2,))
        assert got2, (tmp_path / "worker2.log").read_text()[-3000:]
        alert = got2[0]
        assert alert["hostname"] == host
        assert alert["rule"] == "Shadow file opened"
        assert alert["output_fields"]["proc.pname"] == "bash"
        assert alert["output_fields"]["proc.aname[2]"] == "systemd"
        assert alert["uuid"] != got[0]["uuid"]
    finally:
        stop(worker2)
        consumer.close()
