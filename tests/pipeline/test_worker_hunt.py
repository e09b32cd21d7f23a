"""`peregrine hunt`: a rule written today finds what happened before it existed, in events Kafka still retains."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer

from schemas.codec import encode_batch
from settings.config import Config
from settings.kafka_clients import producer_config
from tests.pipeline.helpers import REPO, batch, event, proc_info, read_topic, write_config

pytestmark = pytest.mark.kafka

T0 = 1_700_000_000_000_000_000
NEW_RULE = """
- rule: Passwd file opened
  desc: written after the fact
  condition: evt.type in (open, openat, openat2) and fd.name = /etc/passwd
  output: passwd read (proc.name=%proc.name parent=%proc.pname gparent=%proc.aname[2])
  priority: NOTICE
"""


def story(host: str) -> list[dict]:  # type: ignore[type-arg]
    """sshd -> bash -> cat: lifecycle in the first record, the read in a later one (state must carry over)."""
    return [
        batch(host, 1, [
            event(T0, "snapshot", 1, comm="systemd", proc=proc_info("/usr/lib/systemd/systemd", ["/sbin/init"])),
            event(T0, "snapshot", 50, ppid=1, comm="sshd", proc=proc_info("/usr/sbin/sshd", ["sshd", "-D"])),
            event(T0, "snapshot", 100, ppid=50, comm="bash", proc=proc_info("/usr/bin/bash", ["-bash"])),
            event(T0 + 1, "clone", 100, comm="bash", res=200, args={"child_pid": "200", "child_tid": "200"}),
            event(T0 + 2, "execve", 200, ppid=100, comm="cat", proc=proc_info("/usr/bin/cat", ["cat", "/etc/passwd"])),
        ]),
        batch(host, 6, [event(T0 + 3, "openat", 200, comm="cat", res=3, args={"name": "/etc/passwd", "flags": "0"}),
                        event(T0 + 4, "openat", 200, comm="cat", res=3, args={"name": "/etc/hosts", "flags": "0"})],
              batch_seq=1),
    ]


def hunt(conf: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "peregrine_cli.main", "-c", str(conf), "hunt", *argv],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def test_hunt_finds_a_match_in_events_produced_before_the_rule_existed(kafka_config: Config, tmp_path: Path) -> None:
    cfg = kafka_config
    producer = Producer(producer_config(cfg.kafka))
    now_ms = int(time.time() * 1000)
    for b in story("old-host"):  # two days ago: outside --since 24h
        producer.produce(cfg.kafka.topics.events, key=b"old-host", value=encode_batch(b), timestamp=now_ms - 2 * 86400_000)
    for host in ("node-a", "node-b"):
        for b in story(host):
            producer.produce(cfg.kafka.topics.events, key=host.encode(), value=encode_batch(b))
    producer.produce(cfg.kafka.topics.events, key=b"node-a", value=b"not avro")
    assert producer.flush(30) == 0

    rule = tmp_path / "new_rule.yaml"  # the rule is written only now
    rule.write_text(NEW_RULE)
    conf = write_config(cfg, tmp_path / "peregrine.yaml")
    done = hunt(conf, "--rules", str(rule), "--since", "24h", "--hosts", "node-a", "old-host")
    assert done.returncode == 0, done.stderr[-3000:]
    findings = [orjson.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert [(f["hostname"], f["rule"]) for f in findings] == [("node-a", "Passwd file opened")]
    fields = findings[0]["output_fields"]
    assert (fields["proc.name"], fields["proc.pname"], fields["proc.aname[2]"]) == ("cat", "bash", "sshd")
    assert "1 undecodable records" in done.stderr and "1 findings" in done.stderr

    on_topic = read_topic(cfg, cfg.kafka.topics.hunt, lambda m: len(m) >= 1, timeout=30)
    assert [orjson.loads(m.value())["uuid"] for m in on_topic] == [findings[0]["uuid"]]

    refused = hunt(conf, "--rules", str(REPO / "tests" / "pipeline" / "missing.yaml"), "--since", "1h")
    assert refused.returncode != 0


def test_hunt_starts_process_state_at_the_sensor_keyframe_before_its_window(
        kafka_config: Config, tmp_path: Path) -> None:
    """cat was exec'd hours ago; only the keyframe snapshot 50 minutes ago knows it. A 10-minute hunt still names
    its parents, and a match inside the warm-up is not a finding (the rule runs on the window only)."""
    import dataclasses

    cfg = kafka_config
    producer = Producer(producer_config(cfg.kafka))
    now_ms = int(time.time() * 1000)
    t_key, t_now = (now_ms - 50 * 60_000) * 10**6, now_ms * 10**6

    def keyframe(pid: int, ppid: int, comm: str, exepath: str, argv: list[str]) -> dict:  # type: ignore[type-arg]
        return {**event(t_key, "snapshot", pid, ppid=ppid, comm=comm, proc=proc_info(exepath, argv)),
                "args": {"periodic": "true"}}

    warmup = batch("node-k", 1, [
        keyframe(1, 0, "systemd", "/usr/lib/systemd/systemd", ["/sbin/init"]),
        keyframe(50, 1, "sshd", "/usr/sbin/sshd", ["sshd", "-D"]),
        keyframe(100, 50, "bash", "/usr/bin/bash", ["-bash"]),
        keyframe(200, 100, "cat", "/usr/bin/cat", ["cat", "/etc/passwd"]),
        event(t_key + 1, "openat", 200, comm="cat", res=3, args={"name": "/etc/passwd", "flags": "0"}),
    ])
    window = batch("node-k", 6, [event(t_now, "openat", 200, comm="cat", res=4,
                                       args={"name": "/etc/passwd", "flags": "0"})], batch_seq=1)
    producer.produce(cfg.kafka.topics.events, key=b"node-k", value=encode_batch(warmup), timestamp=now_ms - 50 * 60_000)
    producer.produce(cfg.kafka.topics.events, key=b"node-k", value=encode_batch(window), timestamp=now_ms)
    assert producer.flush(30) == 0
    rule = tmp_path / "new_rule.yaml"
    rule.write_text(NEW_RULE)

    def findings(snapshot_interval_s: int) -> tuple[list[dict], str]:  # type: ignore[type-arg]
        run_cfg = dataclasses.replace(cfg, sensor=dataclasses.replace(cfg.sensor,
                                                                      snapshot_interval_s=snapshot_interval_s))
        conf = write_config(run_cfg, tmp_path / f"peregrine-{snapshot_interval_s}.yaml")
        done = hunt(conf, "--rules", str(rule), "--since", "10m")
        assert done.returncode == 0, done.stderr[-3000:]
        return [orjson.loads(line) for line in done.stdout.splitlines() if line.strip()], done.stderr

    found, stderr = findings(3600)
    assert [(f["hostname"], f["rule"]) for f in found] == [("node-k", "Passwd file opened")]
    fields = found[0]["output_fields"]
    assert (fields["proc.name"], fields["proc.pname"], fields["proc.aname[2]"]) == ("cat", "bash", "sshd")
    assert "5 events before the window rebuilt process state" in " ".join(stderr.split())  # rich wraps lines

    found, _ = findings(0)  # no keyframes configured: the hunt reads its window only, and cat's parents are unknown
    assert [f["output_fields"]["proc.pname"] for f in found] == [None]
