"""Where a worker's rules come from: local rule files, overlaid by files published to the compacted rules topic
(keyed by file name; a tombstone removes one). A set that fails validation is refused and the running rules stay."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from settings.config import Config

log = logging.getLogger("peregrine.rules")


def default_rule_paths() -> list[Path]:
    from processor.rules import default_rules_files

    return list(default_rules_files())


def local_rule_texts(paths: list[str]) -> dict[str, str]:
    files = [Path(p) for p in paths] if paths else default_rule_paths()
    texts: dict[str, str] = {}
    for path in files:
        if path.is_dir():
            for child in sorted(list(path.glob("*.yaml")) + list(path.glob("*.yml"))):
                texts[str(child)] = child.read_text()
        else:
            texts[str(path)] = path.read_text()
    return texts


def engine_config(cfg: Config) -> Any:
    """The engine-relevant part of peregrine.yaml, in Falco's falco.yaml key names."""
    import dataclasses

    from processor.engine.engine import EngineConfig

    return EngineConfig.from_falco_yaml({
        "priority": cfg.priority, "rule_matching": cfg.rule_matching, "rules": cfg.rules,
        "time_format_iso_8601": cfg.time_format_iso_8601,
        "append_output": [dataclasses.asdict(a) for a in cfg.append_output],
    })


def build_engine(cfg: Config, texts: dict[str, str]) -> tuple[Any | None, Any]:
    """A fresh engine with these files, or (None, report) when they do not load."""
    from processor.engine.engine import RulesEngine

    engine = RulesEngine(engine_config(cfg))
    result = engine.load_rules_content(list(texts.items()))
    if not result.successful:
        return None, result.as_text()
    return engine, result


@dataclass
class RulesHolder:
    """The engine currently in force; swapped atomically by the rules-topic watcher."""

    cfg: Config
    local: dict[str, str]
    published: dict[str, str] = field(default_factory=dict)
    engine: Any = None
    loads_ok: int = 0
    loads_failed: int = 0
    last_error: str = ""
    reload_ts_ns: int = 0
    on_change: list[Callable[[Any], None]] = field(default_factory=list)
    on_refused: list[Callable[[str], None]] = field(default_factory=list)
    caught_up: threading.Event = field(default_factory=threading.Event)

    def texts(self) -> dict[str, str]:
        merged = dict(self.local)
        by_base = {Path(k).name: k for k in merged}
        for name, text in self.published.items():
            merged.pop(by_base.get(Path(name).name, ""), None)
            merged[name] = text
        return merged

    def load(self) -> bool:
        engine, result = build_engine(self.cfg, self.texts())
        if engine is None:
            self.loads_failed += 1
            self.last_error = _report_text(result)
            log.error("rules refused, previous rules stay in force:\n%s", self.last_error)
            for refused in self.on_refused:
                refused(self.last_error)
            return False
        self.engine = engine
        self.loads_ok += 1
        self.reload_ts_ns = time.time_ns()
        for cb in self.on_change:
            cb(engine)
        return True

    def publish_update(self, name: str, text: str | None) -> bool:
        previous = dict(self.published)
        if text is None:
            self.published.pop(name, None)
        else:
            self.published[name] = text
        if self.load():
            return True
        self.published = previous  # a refused file is not kept: the next good update starts from the good set
        return False


def _report_text(result: Any) -> str:
    return result if isinstance(result, str) else str(result)


def watch_rules_topic(holder: RulesHolder, stop: threading.Event) -> threading.Thread:
    """Every worker reads the whole rules topic (assigned, never committed): each needs every file.

    `holder.caught_up` is set once everything published before start-up is read, so a worker can wait for the
    rules in force before it evaluates its first event."""
    from confluent_kafka import Consumer, TopicPartition

    from settings.kafka_clients import consumer_config

    def read(consumer: Any, topic: str) -> None:
        meta = consumer.list_topics(topic, timeout=10)
        parts = list(meta.topics[topic].partitions) if topic in meta.topics else [0]
        pending = {}
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                pending[p] = high
        if not pending:
            holder.caught_up.set()
        consumer.assign([TopicPartition(topic, p, -2) for p in parts])  # -2: OFFSET_BEGINNING
        while not stop.is_set():
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                log.warning("rules topic %s: %s", topic, msg.error())
                continue
            name = (msg.key() or b"").decode("utf-8", "replace")
            value = msg.value()
            text = None if value is None else value.decode("utf-8", "replace")
            ok = holder.publish_update(name, text)
            log.warning("rules file %s from %s:%s:%s %s", name, topic, msg.partition(), msg.offset(),
                        "loaded" if ok else "REFUSED (validation failed); previous rules stay")
            if pending and (msg.offset() or 0) + 1 >= pending.get(msg.partition(), 0):
                pending.pop(msg.partition(), None)
                if not pending:
                    holder.caught_up.set()

    def run() -> None:
        # A broker that is slow or away (start-up under load, a restart) must not end the watch: a worker whose
        # watcher died would keep its rules frozen without a word. Each retry re-reads the topic from its start,
        # which is idempotent (a file's latest version wins).
        topic = holder.cfg.kafka.topics.rules
        delay = 1.0
        while not stop.is_set():
            consumer = Consumer(consumer_config(holder.cfg.kafka, group_id=f"{holder.cfg.worker.app_id}-rules-watch"))
            try:
                read(consumer, topic)
            except Exception as exc:
                log.error("rules topic %s: reading failed, retrying in %.0fs: %s", topic, delay, exc)
                stop.wait(delay)
                delay = min(delay * 2, 30.0)
            finally:
                consumer.close()

    thread = threading.Thread(target=run, name="rules-watch", daemon=True)
    thread.start()
    return thread


def validate_for_publish(cfg: Config, paths: list[str], base: list[str] | None = None) -> tuple[bool, str]:
    """What a worker would do with these files: overlay them on its local rules (`base`, default: the configured or
    default rules) and load the lot. (ok, Falco's report)."""
    holder = RulesHolder(cfg, local_rule_texts(base if base is not None else cfg.rules_files))
    holder.published = {Path(p).name: Path(p).read_text() for p in paths}
    engine, result = build_engine(cfg, holder.texts())
    return engine is not None, _report_text(result)


def publish_rules(cfg: Config, paths: list[str]) -> list[str]:
    """Send each file to the compacted rules topic keyed by its base name; no validation (callers validate first)."""
    from confluent_kafka import Producer

    from settings.kafka_clients import producer_config

    producer = Producer(producer_config(cfg.kafka))
    sent: list[str] = []
    errors: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            errors.append(f"{msg.key().decode()}: {err}")

    for p in paths:
        path = Path(p)
        producer.produce(cfg.kafka.topics.rules, key=path.name.encode(), value=path.read_bytes(), on_delivery=on_delivery)
        sent.append(path.name)
    if producer.flush(30) > 0:
        errors.append("timed out waiting for the broker")
    if errors:
        raise RuntimeError("; ".join(errors))
    return sent
