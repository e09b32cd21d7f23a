"""Runs every configured output side by side and stops them together (signal, or one output failing)."""

from __future__ import annotations

import logging
import threading

from confluent_kafka.admin import AdminClient, NewTopic

from outputs import metrics
from outputs.config import OutputsSpec
from outputs.registry import create
from outputs.runner import OutputWorker
from settings.config import Config
from settings.kafka_clients import admin_config

log = logging.getLogger("peregrine.outputs")


class OutputsError(RuntimeError):
    """A start-up problem, phrased as what is wrong and what to do."""


def check_kafka(cfg: Config, timeout: float = 10.0) -> None:
    admin = AdminClient(admin_config(cfg.kafka))
    try:
        topics = admin.list_topics(timeout=timeout).topics
    except Exception as exc:
        raise OutputsError(f"Kafka unreachable at {cfg.kafka.bootstrap_servers}: start it with "
                           f"`peregrine kafka start` or set kafka.bootstrap_servers ({exc})") from exc
    if cfg.kafka.topics.alerts not in topics:
        raise OutputsError(f"the alerts topic '{cfg.kafka.topics.alerts}' does not exist on "
                           f"{cfg.kafka.bootstrap_servers}: run `peregrine kafka start` to create the topics")


def ensure_dead_letter_topics(cfg: Config, spec: OutputsSpec) -> None:
    """Create missing DLQ topics on brokers that let us (Event Hubs needs them declared in its template)."""
    if cfg.kafka.profile == "eventhubs":
        return
    admin = AdminClient(admin_config(cfg.kafka))
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = {o.dlq_topic(cfg.kafka.topics.alerts) for o in spec.outputs} - existing
    if not wanted:
        return
    futures = admin.create_topics([NewTopic(t, 1, cfg.kafka.replication_factor,
                                            config={"retention.ms": str(14 * 86_400_000)}) for t in sorted(wanted)])
    for name, fut in futures.items():
        try:
            fut.result(30)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise OutputsError(f"creating dead-letter topic {name} failed: {exc}") from exc


def validate(spec: OutputsSpec) -> None:
    """Build every output once before touching Kafka, so configuration errors come first."""
    for out in spec.outputs:
        create(out)


def run_outputs(cfg: Config, spec: OutputsSpec, stop: threading.Event) -> int:
    if not spec.outputs:
        raise OutputsError("no output is enabled: add one under 'outputs:'")
    validate(spec)
    check_kafka(cfg)
    ensure_dead_letter_topics(cfg, spec)
    if spec.metrics.port:
        try:
            metrics.serve(spec.metrics.address, spec.metrics.port)
        except OSError as exc:
            raise OutputsError(f"/metrics cannot listen on {spec.metrics.address}:{spec.metrics.port}: "
                               f"{exc.strerror}; set metrics.port (0 disables it)") from exc
        log.info("metrics on http://%s:%d/metrics", spec.metrics.address, spec.metrics.port)
    workers = [OutputWorker(cfg, out, spec, stop) for out in spec.outputs]
    threads = [threading.Thread(target=w.run, name=f"output-{w.spec.name}", daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    failed = [w for w in workers if w.error is not None]
    for w in failed:
        log.error("output %s failed: %s", w.spec.name, w.error)
    return 1 if failed else 0
