"""Running the real roles as subprocesses against the session broker, and reading the real alerts topic."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import yaml
from confluent_kafka import Consumer, Producer

from schemas.codec import encode_batch, event_batch_fingerprint
from settings.config import Config
from settings.kafka_clients import consumer_config, producer_config

REPO = Path(__file__).resolve().parents[2]

# A rule the worker tests share: alerts on reads of /etc/shadow and names the ancestry the table resolves.
SHADOW_RULES = """
- rule: Shadow file opened
  desc: test rule
  condition: evt.type in (open, openat, openat2) and fd.name = /etc/shadow
  output: shadow read (proc.name=%proc.name fd.name=%fd.name parent=%proc.pname gparent=%proc.aname[2])
  priority: WARNING
  tags: [test]
"""


def write_config(cfg: Config, path: Path) -> Path:
    path.write_text(yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False))
    return path


def spawn(config_file: Path, *argv: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "peregrine_cli.main", "-c", str(config_file), *argv],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def produce_batches(cfg: Config, batches: list[dict[str, Any]]) -> None:
    producer = Producer(producer_config(cfg.kafka))
    for b in batches:
        producer.produce(cfg.kafka.topics.events, key=b["hostname"].encode(), value=encode_batch(b),
                         headers=[("peregrine.schema", event_batch_fingerprint().encode())])
    assert producer.flush(30) == 0


def alerts_consumer(cfg: Config) -> Consumer:
    c = Consumer(consumer_config(cfg.kafka, group_id=f"test-{uuid.uuid4().hex[:8]}"))
    c.subscribe([cfg.kafka.topics.alerts])
    return c


def read_alerts(consumer: Consumer, until: Any, timeout: float = 60.0,
                procs: tuple[subprocess.Popen[bytes], ...] = ()) -> list[dict[str, Any]]:
    """Read alerts until `until(alerts)` is true, the timeout passes or one of `procs` dies; returns what was read."""
    alerts: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not until(alerts):
        if any(p.poll() is not None for p in procs):
            break
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        alerts.append(orjson.loads(msg.value() or b"{}"))
    return alerts


def event(ts: int, etype: str, pid: int, *, ppid: int = 0, uid: int = 0, comm: str = "", res: int = 0,
          args: dict[str, str] | None = None, proc: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"ts": ts, "type": etype, "tid": pid, "pid": pid, "ppid": ppid, "uid": uid, "gid": 0, "euid": uid,
            "loginuid": 1000, "comm": comm, "res": res, "args": args or {}, "proc": proc}


def proc_info(exepath: str, argv: list[str], cwd: str = "/root", tty: int = 34816) -> dict[str, Any]:
    """ProcInfo as the sensor sends it: exe = argv[0], args = argv[1:] (Falco's proc.exe and proc.args)."""
    return {"exe": argv[0], "exepath": exepath, "args": argv[1:], "args_truncated": False, "cwd": cwd, "tty": tty,
            "sid": 0, "pgid": 0, "vpid": 0, "start_ts": 0, "env": [], "container_id": "", "cap_permitted": 0,
            "cap_effective": 0, "cap_inheritable": 0, "exe_from_memfd": False, "exe_upper_layer": False,
            "exe_ino_ctime": 0, "exe_ino_mtime": 0}


def batch(host: str, first_seq: int, events: list[dict[str, Any]], batch_seq: int = 0) -> dict[str, Any]:
    return {"hostname": host, "sensor_id": f"{host}-test", "batch_seq": batch_seq, "first_seq": first_seq,
            "events": events}


# -- worker fleet helpers (processor tests) ----------------------------------------------------------------------

def metrics_samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A worker's /metrics as {(sample name, sorted labels): value}; empty when it does not answer."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=3).text
    except httpx.HTTPError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def metric_sum(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, lbl), v in samples.items() if n == name and all((k, x) in lbl for k, x in labels.items()))


def group_assignment(cfg: Config) -> dict[str, set[int]]:
    """Events-topic partitions per member of the workers' consumer group (member id -> partitions)."""
    from confluent_kafka.admin import AdminClient

    from settings.kafka_clients import admin_config

    admin = AdminClient(admin_config(cfg.kafka))
    desc = admin.describe_consumer_groups([cfg.worker.app_id])[cfg.worker.app_id].result(timeout=10)
    return {m.member_id: {tp.partition for tp in m.assignment.topic_partitions if tp.topic == cfg.kafka.topics.events}
            for m in desc.members}


def end_offsets(cfg: Config, topic: str) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    c = Consumer(consumer_config(cfg.kafka, group_id=f"probe-{uuid.uuid4().hex[:8]}"))
    try:
        meta = c.list_topics(topic, timeout=10)
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.topics[topic].partitions}
    finally:
        c.close()


def committed_offsets(cfg: Config) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    c = Consumer(consumer_config(cfg.kafka, group_id=cfg.worker.app_id))
    try:
        parts = [TopicPartition(cfg.kafka.topics.events, p) for p in range(cfg.kafka.events_partitions)]
        return {tp.partition: tp.offset for tp in c.committed(parts, timeout=10)}
    finally:
        c.close()


def read_topic(cfg: Config, topic: str, until: Any, timeout: float = 60.0) -> list[Any]:
    """Raw messages of a topic from the beginning until `until(messages)` or the timeout."""
    c = Consumer(consumer_config(cfg.kafka, group_id=f"test-{uuid.uuid4().hex[:8]}"))
    c.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(out):
            out += [m for m in c.consume(500, 0.5) if not m.error()]
    finally:
        c.close()
    return out
