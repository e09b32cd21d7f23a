"""Retro-hunt: run rules over the events Kafka still retains, as the workers would have run them.

Reads the events topic from the offsets found by timestamp (`offsets_for_times`) up to the end offsets seen at
start, in a consumer group of its own (assigned partitions, nothing committed: the workers' group is untouched).
Process state is rebuilt from the snapshot and lifecycle events it reads, through the workers' own hot path
(`process_batch` over a fresh HostState of plain dicts). Reading starts one sensor snapshot interval (plus a
margin) before the window: the records there (the sensors' keyframe snapshot and the lifecycle events after it)
warm the state up without rules, so a process that never exec'd inside the window still has its name, parents and container.
Findings are Falco JSON alerts with the same deterministic ids the workers would give, written to the hunt
results topic.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from processor.dns_resolver import DnsResolver
from processor.pipeline import apply_state_only, process_batch
from processor.rules_source import build_engine, local_rule_texts
from processor.state import HostState
from schemas.codec import DecodeError, decode_batch, encode_alert, schema_fingerprint
from settings.config import Config

log = logging.getLogger("peregrine.hunt")


class HuntError(RuntimeError):
    """The hunt cannot run (rules refused, broker unreachable): one message saying why."""


@dataclass
class HuntPlan:
    """Where to read: per partition, [start, end) offsets."""

    topic: str
    ranges: dict[int, tuple[int, int]]

    @property
    def records(self) -> int:
        return sum(end - start for start, end in self.ranges.values())


@dataclass
class HuntSummary:
    records: int = 0
    events: int = 0
    skipped_hosts: int = 0
    undecodable: list[str] = field(default_factory=list)
    findings: int = 0
    engine_failures: int = 0
    warmup_events: int = 0  # read before the window: state only, no rules


WARMUP_MARGIN_S = 120  # a keyframe is taken, batched and produced within the sensor's linger: two minutes is ample


def warmup_seconds(cfg: Config) -> int:
    """How far before its window a hunt starts reading: one keyframe interval, or nothing without keyframes."""
    interval = cfg.sensor.snapshot_interval_s
    return interval + WARMUP_MARGIN_S if interval > 0 else 0


def parse_since(text: str) -> int:
    """`24h`, `30m`, `7d`, `90s`, `1w` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return int(float(text[:-1]) * units[text[-1]])
        return int(text)
    except ValueError:
        raise ValueError(f"--since {text!r}: expected a duration like 90s, 30m, 24h, 7d") from None


def _consumer(cfg: Config) -> Any:
    from confluent_kafka import Consumer

    from settings.kafka_clients import consumer_config

    return Consumer(consumer_config(cfg.kafka, group_id=f"{cfg.worker.app_id}-hunt-{uuid.uuid4().hex[:8]}",
                                    **{"enable.partition.eof": False}))


def plan(consumer: Any, topic: str, since_ms: int) -> HuntPlan:
    from confluent_kafka import TopicPartition

    meta = consumer.list_topics(topic, timeout=15)
    if topic not in meta.topics or meta.topics[topic].error is not None:
        raise HuntError(f"topic {topic} not found on the broker")
    parts = sorted(meta.topics[topic].partitions)
    found = consumer.offsets_for_times([TopicPartition(topic, p, since_ms) for p in parts], timeout=15)
    ranges: dict[int, tuple[int, int]] = {}
    for tp in found:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=15)
        start = tp.offset if tp.offset >= 0 else high  # -1: nothing at or after the timestamp
        if start < high:
            ranges[tp.partition] = (start, high)
    return HuntPlan(topic, ranges)


def read(consumer: Any, hunt_plan: HuntPlan, idle_timeout: float = 30.0) -> Iterator[Any]:
    """Every record of the plan once (per partition in order), then stop."""
    from confluent_kafka import TopicPartition

    if not hunt_plan.ranges:
        return
    consumer.assign([TopicPartition(hunt_plan.topic, p, start) for p, (start, _end) in hunt_plan.ranges.items()])
    remaining = {p: end for p, (_start, end) in hunt_plan.ranges.items()}
    last_seen = time.monotonic()
    while remaining:
        msgs = consumer.consume(500, 0.5)
        if not msgs:
            if time.monotonic() - last_seen > idle_timeout:
                raise HuntError(f"{hunt_plan.topic}: no records for {idle_timeout:.0f}s with partitions "
                                f"{sorted(remaining)} unfinished")
            continue
        last_seen = time.monotonic()
        for msg in msgs:
            if msg.error():
                log.warning("%s: %s", hunt_plan.topic, msg.error())
                continue
            p = msg.partition()
            end = remaining.get(p)
            if end is None or msg.offset() >= end:
                continue
            yield msg
            if msg.offset() + 1 >= end:
                del remaining[p]
                consumer.incremental_unassign([TopicPartition(hunt_plan.topic, p)])


def run_hunt(cfg: Config, rules_files: list[str], since_s: int, hosts: set[str] | None = None,
             on_finding: Callable[[dict[str, Any]], None] | None = None,
             on_plan: Callable[[HuntPlan], None] | None = None,
             on_progress: Callable[[int], None] | None = None) -> HuntSummary:
    from confluent_kafka import Producer

    from settings.kafka_clients import producer_config

    try:
        texts = local_rule_texts(rules_files)
    except OSError as exc:
        raise HuntError(f"cannot read rules file {exc.filename}: {exc.strerror}") from exc
    engine, report = build_engine(cfg, texts)
    if engine is None:
        raise HuntError(f"rules refused:\n{report}")
    consumer = _consumer(cfg)
    producer = Producer(producer_config(cfg.kafka))
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    summary = HuntSummary()
    state = HostState(procs={}, users={}, containers={},
                      max_procs_per_host=cfg.worker.proc_table_max_per_host,
                      purge_grace_ns=cfg.worker.proc_purge_grace_s * 10**9)
    DnsResolver(engine.dns_names, state.dns).resolve_now()  # fd.sip.name & co.: the names' addresses of today
    try:
        since_ms = int((time.time() - since_s) * 1000)
        hunt_plan = plan(consumer, cfg.kafka.topics.events, since_ms - warmup_seconds(cfg) * 1000)
        if on_plan is not None:
            on_plan(hunt_plan)
        for msg in read(consumer, hunt_plan):
            summary.records += 1
            if on_progress is not None:
                on_progress(1)
            where = f"{msg.topic()}:{msg.partition()}:{msg.offset()}"
            key = (msg.key() or b"").decode("utf-8", "replace")
            if hosts and key and key not in hosts:
                summary.skipped_hosts += 1
                continue
            try:
                batch = decode_batch(msg.value(), schema_fingerprint(msg.headers()))
            except DecodeError as exc:
                summary.undecodable.append(f"{where}: {exc}")
                continue
            if hosts and batch["hostname"] not in hosts:
                summary.skipped_hosts += 1
                continue
            if msg.timestamp()[1] < since_ms:  # the window is in Kafka's record time, as offsets_for_times'
                summary.warmup_events += apply_state_only(batch, state)
                continue
            result = process_batch(batch, state, engine)
            summary.events += result.events
            summary.engine_failures += len(result.failures)
            for alert in result.alerts:
                if alert.get("source") == "internal":
                    continue  # drop reports are the workers' business, not a hunt finding
                summary.findings += 1
                producer.produce(cfg.kafka.topics.hunt, key=alert["hostname"].encode(), value=encode_alert(alert),
                                 on_delivery=delivered)
                producer.poll(0)
                if on_finding is not None:
                    on_finding(alert)
        if producer.flush(30) > 0:
            errors.append("timed out waiting for the broker")
        if errors:
            raise HuntError(f"writing findings to {cfg.kafka.topics.hunt} failed: {'; '.join(errors[:3])}")
    finally:
        consumer.close()
    return summary
