"""The whole pipeline with `kafka.profile: eventhubs` against the Event Hubs-like broker: sensor -> SASL_SSL ->
Faust worker -> alerts, with the connection string only in PEREGRINE_KAFKA__SASL_PASSWORD.

Two sensors: a replayed capture (no root needed), and live eBPF capture (root)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from settings.config import Config
from tests.conftest import free_port
from tests.deploy.conftest import EventHubsLike, stored_batches
from tests.pipeline.helpers import alerts_consumer, event, proc_info, read_alerts, spawn, stop, write_config

pytestmark = pytest.mark.kafka
T0 = 1_700_000_000_000_000_000

RULE = "Credential File Read by Untrusted Program"


def is_shadow_alert(alert: dict) -> bool:  # type: ignore[type-arg]
    f = alert.get("output_fields", {})
    return alert.get("rule") == RULE and f.get("proc.name") == "cat" and f.get("fd.name") == "/etc/shadow"


def _eventhubs_config(eventhubs: EventHubsLike, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    cfg = Config(state_dir=str(tmp_path / "state"), hostname="eh-test-host")
    cfg.kafka = eventhubs.client_config()
    cfg.worker.app_id = eventhubs.broker.cfg.worker.app_id  # its changelogs were pre-created with the topology
    cfg.worker.metrics_port = 0
    cfg.sensor.metrics_port = free_port()
    cfg.kafka.sasl_password = ""  # the secret comes from the environment only, as in a pod
    monkeypatch.setenv("PEREGRINE_KAFKA__SASL_PASSWORD", eventhubs.password)
    return cfg


def _assert_wire(eventhubs: EventHubsLike, cfg: Config) -> None:
    """What reached the broker's disk: every batch below the cap, gzip (or left uncompressed when gzip can't win)."""
    topics = {cfg.kafka.topics.events: cfg.kafka.events_partitions, cfg.kafka.topics.alerts: cfg.kafka.alerts_partitions}
    batches = [b for t, n in topics.items() for p in range(n) for b in stored_batches(eventhubs.log_dir(t, p))]
    assert batches and max(b.size for b in batches) < 1_046_528
    assert {b.compression for b in batches} <= {0, 1} and 1 in {b.compression for b in batches}


def test_replayed_capture_alerts_through_the_eventhubs_profile(eventhubs: EventHubsLike, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from sensor.recording import Recorder

    cfg = _eventhubs_config(eventhubs, tmp_path, monkeypatch)
    conf = write_config(cfg, tmp_path / "peregrine.yaml")
    rules = tmp_path / "rules.yaml"
    rules.write_text(SHADOW_RULE)
    capture = tmp_path / "cap.avro"
    recorder = Recorder(capture, "eh-test-host", "eh-test-host/boot")
    recorder.write([
        event(T0, "snapshot", 1, comm="systemd", proc=proc_info("/usr/lib/systemd/systemd", ["/sbin/init"])),
        event(T0 + 1, "snapshot", 100, ppid=1, comm="bash", proc=proc_info("/usr/bin/bash", ["-bash"])),
        event(T0 + 2, "clone", 100, ppid=1, comm="bash", res=200, args={"child_pid": "200", "child_tid": "200"}),
        event(T0 + 3, "execve", 200, ppid=100, comm="cat", proc=proc_info("/usr/bin/cat", ["cat", "/etc/shadow"])),
        event(T0 + 4, "openat", 200, ppid=100, comm="cat", res=3,
              args={"name": "/etc/shadow", "flags": "524288", "fd": "3", "dirfd": "-100"}),
    ])
    recorder.close()
    consumer = alerts_consumer(_reader(eventhubs))
    worker = spawn(conf, "worker", "--rules", str(rules), log=tmp_path / "worker.log")
    sensor = spawn(conf, "sensor", "--replay", str(capture), log=tmp_path / "sensor.log")
    try:
        got = read_alerts(consumer, lambda a: any(x.get("rule") == "Shadow file opened" for x in a), timeout=120,
                          procs=(worker,))
        logs = (tmp_path / "sensor.log").read_text()[-2000:] + (tmp_path / "worker.log").read_text()[-2000:]
        found = [a for a in got if a.get("rule") == "Shadow file opened"]
        assert found, "no alert through the eventhubs profile:\n" + logs
        fields = found[0]["output_fields"]
        assert (fields["proc.name"], fields["fd.name"], fields["proc.pname"]) == ("cat", "/etc/shadow", "bash")
    finally:
        stop(sensor)
        stop(worker)
        consumer.close()
    _assert_wire(eventhubs, cfg)


SHADOW_RULE = """
- rule: Shadow file opened
  desc: test rule
  condition: evt.type in (open, openat, openat2) and fd.name = /etc/shadow
  output: shadow read (proc.name=%proc.name fd.name=%fd.name parent=%proc.pname)
  priority: WARNING
  tags: [test]
"""


def _reader(eventhubs: EventHubsLike) -> Config:
    cfg = Config()
    cfg.kafka = eventhubs.client_config()
    return cfg


@pytest.mark.ebpf
@pytest.mark.skipif(os.geteuid() != 0, reason="the sensor needs root to load eBPF")
def test_cat_etc_shadow_alerts_through_the_eventhubs_profile(eventhubs: EventHubsLike, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _eventhubs_config(eventhubs, tmp_path, monkeypatch)
    conf = write_config(cfg, tmp_path / "peregrine.yaml")
    consumer_cfg = Config()
    consumer_cfg.kafka = eventhubs.client_config()
    consumer = alerts_consumer(consumer_cfg)
    worker = spawn(conf, "worker", log=tmp_path / "worker.log")
    sensor = spawn(conf, "sensor", log=tmp_path / "sensor.log")
    try:
        deadline = time.monotonic() + 150
        found: list[dict] = []  # type: ignore[type-arg]
        while time.monotonic() < deadline and not found:
            assert sensor.poll() is None, (tmp_path / "sensor.log").read_text()[-3000:]
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            subprocess.run(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
            got = read_alerts(consumer, lambda a: any(is_shadow_alert(x) for x in a), timeout=10)
            found = [a for a in got if is_shadow_alert(a)]
        assert found, "no alert through the eventhubs profile:\n" + (tmp_path / "sensor.log").read_text()[-2000:] + \
            (tmp_path / "worker.log").read_text()[-2000:]
        assert found[0]["hostname"] == "eh-test-host"
    finally:
        stop(sensor)
        stop(worker)
        consumer.close()
    _assert_wire(eventhubs, cfg)
