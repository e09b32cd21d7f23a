"""The UI's own consumer of the alerts topic: batches go into the store in one transaction, then offsets commit.

At-least-once: a crash between insert and commit re-reads the batch, and the store drops the repeats by uuid.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from outputs.ui.alert_row import AlertRow, alert_to_row
from outputs.ui.store import AlertStore
from schemas.codec import DecodeError, decode_alert
from settings.config import Config
from settings.kafka_clients import consumer_config

log = logging.getLogger("peregrine.ui.ingest")


def group_id_for(cfg: Config) -> str:
    """The UI's own consumer group, so it never shares offsets with an output connector."""
    return f"peregrine-ui.{cfg.kafka.topics.alerts}"


@dataclass
class IngestStats:
    consumed: int = 0
    inserted: int = 0
    duplicates: int = 0
    rejected: int = 0
    pruned: int = 0
    last_error: str = ""
    last_batch_at: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {k: getattr(self, k) for k in ("consumed", "inserted", "duplicates", "rejected", "pruned",
                                                  "last_error", "last_batch_at")}


class AlertIngestor:
    """Consume → decode → insert → commit, and apply retention once a minute; runs until `stop` is set."""

    def __init__(self, cfg: Config, store: AlertStore, batch_size: int = 2000, prune_every_s: float = 60.0) -> None:
        self.cfg = cfg
        self.store = store
        self.batch_size = batch_size
        self.prune_every_s = prune_every_s
        self.stats = IngestStats()

    def run(self, stop: threading.Event) -> None:
        from confluent_kafka import Consumer

        topic = self.cfg.kafka.topics.alerts
        consumer = Consumer(consumer_config(self.cfg.kafka, group_id_for(self.cfg)))
        consumer.subscribe([topic])
        next_prune = 0.0
        try:
            while not stop.is_set():
                messages = consumer.consume(num_messages=self.batch_size, timeout=0.5)
                rows = self._decode(messages)
                if messages:
                    result = self.store.insert(rows)
                    consumer.commit(asynchronous=False)
                    with self.stats.lock:  # after the commit: a reader never sees a half-counted batch
                        self.stats.consumed += sum(1 for m in messages if m.error() is None)
                        self.stats.inserted += result.inserted
                        self.stats.duplicates += result.received - result.inserted
                        self.stats.last_batch_at = time.time()
                if time.monotonic() >= next_prune:
                    pruned = self.store.prune()
                    with self.stats.lock:
                        self.stats.pruned += pruned
                    next_prune = time.monotonic() + self.prune_every_s
        except Exception as exc:
            with self.stats.lock:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("UI ingest from %s stopped", topic)
            raise
        finally:
            consumer.close()

    def _decode(self, messages: list[Any]) -> list[AlertRow]:
        rows = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if not err.retriable() and err.fatal():
                    raise RuntimeError(f"{msg.topic()}:{msg.partition()}: {err}")
                log.warning("%s:%s: %s", msg.topic(), msg.partition(), err)
                continue
            try:
                rows.append(alert_to_row(decode_alert(msg.value() or b"")))
            except (DecodeError, ValueError) as exc:
                where = f"{msg.topic()}:{msg.partition()}:{msg.offset()}"
                log.warning("%s: skipping alert: %s", where, exc)
                with self.stats.lock:
                    self.stats.rejected += 1
                    self.stats.last_error = f"{where}: {exc}"
        return rows
