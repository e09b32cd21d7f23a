"""One worker per output: its own consumer group, thread and event loop, so a slow destination delays nobody else.

Delivery is at-least-once: a record's offset is committed only after every alert built from it was acknowledged
by the destination or written to the output's dead-letter topic. While the destination fails, the worker pauses
its partitions (Kafka is the buffer) and retries with backoff; past `retry.give_up_after` the alerts are
dead-lettered with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from outputs import metrics
from outputs.aggregate import Aggregator
from outputs.config import OutputSpec, OutputsSpec
from outputs.deadletter import DeadLetter, DeadLetterQueue
from outputs.dedup import Deduplicator
from outputs.enrich import Enricher
from outputs.filters import AlertFilter
from outputs.model import DeliveryError, Pending, SourceOffset
from outputs.offsets import OffsetTracker
from outputs.registry import create
from outputs.retry import Backoff
from schemas.codec import decode_alert
from settings.config import Config
from settings.kafka_clients import consumer_config, producer_config

POLL_S = 0.5


class _Stopping(Exception):
    """Shutdown was asked for while a chunk waited to be retried: leave it uncommitted."""


@dataclass
class OutputWorker:
    cfg: Config
    spec: OutputSpec
    outputs: OutputsSpec
    stop: threading.Event
    error: BaseException | None = None
    _paused: bool = field(default=False, init=False)
    _failing_since: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.log = logging.getLogger(f"peregrine.outputs.{self.spec.name}")
        self.output = create(self.spec)
        self.filter = AlertFilter(self.spec)
        self.enricher = Enricher.from_spec(self.spec)
        self.dedup = Deduplicator(self.spec.dedup_window)
        self.aggregator = Aggregator(self.spec.aggregate)
        self.offsets = OffsetTracker()
        self.backoff = Backoff(self.spec.retry)
        self.topic = self.cfg.kafka.topics.alerts
        self.dlq_topic = self.spec.dlq_topic(self.topic)
        self.labels = (self.spec.name, self.spec.type)

    # -- thread entry ------------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by the supervisor, which stops the rest
            self.error = exc
            self.log.exception("output %s stopped: %s", self.spec.name, exc)
            self.stop.set()

    def _consumer_conf(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"auto.offset.reset": self.spec.start_from,
                                 "session.timeout.ms": self.outputs.session_timeout_ms,
                                 "heartbeat.interval.ms": max(1000, self.outputs.session_timeout_ms // 5)}
        if self.outputs.instance_id:
            extra["group.instance.id"] = self.outputs.instance_id.format(name=self.spec.name)
        return consumer_config(self.cfg.kafka, self.spec.consumer_group(), **extra)

    async def _main(self) -> None:
        self.consumer = Consumer(self._consumer_conf())
        self.dlq = DeadLetterQueue(producer_config(self.cfg.kafka), self.dlq_topic, *self.labels)
        self.consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        await self.output.start()
        try:
            while not self.stop.is_set():
                messages = self.consumer.consume(self.spec.batch_size, self._poll_timeout())
                ready = self._ingest(messages)
                ready += self.aggregator.due(time.monotonic())
                if ready:
                    await self._deliver(ready)
                self._commit()
            leftovers = self.aggregator.drain()
            if leftovers:
                await self._deliver(leftovers, final=True)
            self._commit()
        except _Stopping:
            self._commit()
        finally:
            await self.output.close()
            self.consumer.close()
            self.dlq.close()

    def _poll_timeout(self) -> float:
        deadline = self.aggregator.next_deadline()
        if deadline is None:
            return POLL_S
        return max(0.0, min(POLL_S, deadline - time.monotonic()))

    # -- rebalance ---------------------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.log.info("assigned %s", ", ".join(f"{p.topic}:{p.partition}" for p in partitions))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit()
        self.offsets.forget(partitions)

    # -- records -> alerts ---------------------------------------------------------------------------------------
    def _ingest(self, messages: list[Message]) -> list[Pending]:
        ready: list[Pending] = []
        undecodable: list[DeadLetter] = []
        now = time.monotonic()
        consumed = filtered = duplicates = aggregated = 0
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    self.log.warning("%s:%s: consumer error: %s", msg.topic(), msg.partition(), err)
                continue
            src = SourceOffset(msg.topic() or self.topic, msg.partition() or 0, msg.offset() or 0)
            self.offsets.track(src)
            consumed += 1
            raw = msg.value() or b""
            try:
                alert = decode_alert(raw)
            except ValueError as exc:
                self.log.warning("%s: undecodable alert, dead-lettered: %s", src, exc)
                undecodable.append(DeadLetter("undecodable", f"{src}: {exc}", [src], raw=raw))
                continue
            if not self.filter.admits(alert):
                filtered += 1
                self.offsets.done(src)
                continue
            if self.dedup.seen(str(alert.get("uuid") or ""), now):
                duplicates += 1
                self.offsets.done(src)
                continue
            pending = self.aggregator.add(Pending(self.enricher.apply(alert), [src]), now)
            if pending is None:
                aggregated += 1
            else:
                ready.append(pending)
        for counter, value in ((metrics.CONSUMED, consumed), (metrics.FILTERED, filtered),
                               (metrics.DEDUPLICATED, duplicates), (metrics.AGGREGATED, aggregated)):
            if value:
                counter.labels(self.spec.name).inc(value)
        if undecodable:
            self._dead_letter(undecodable)
        return ready

    # -- delivery ------------------------------------------------------------------------------------------------
    async def _deliver(self, ready: list[Pending], final: bool = False) -> None:
        step = max(1, self.output.batch_max)
        for i in range(0, len(ready), step):
            await self._deliver_chunk(ready[i:i + step], final)

    async def _deliver_chunk(self, chunk: list[Pending], final: bool) -> None:
        policy = self.spec.retry
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                await self.output.send([p.alert for p in chunk])
            except Exception as exc:
                error = exc if isinstance(exc, DeliveryError) else DeliveryError(f"{type(exc).__name__}: {exc}")
            else:
                metrics.LATENCY.labels(*self.labels).observe(time.monotonic() - started)
                metrics.SENT.labels(*self.labels).inc(len(chunk))
                metrics.OUTPUTS.labels(self.spec.name, "ok").inc(len(chunk))
                self._failing_since = None
                self._settle(chunk)
                return
            attempt += 1
            if error.delivered:
                got = [p for i, p in enumerate(chunk) if i in error.delivered]
                metrics.SENT.labels(*self.labels).inc(len(got))
                metrics.OUTPUTS.labels(self.spec.name, "ok").inc(len(got))
                self._settle(got, resume=False)
                chunk = [p for i, p in enumerate(chunk) if i not in error.delivered]
            metrics.FAILED.labels(*self.labels).inc(len(chunk))
            metrics.OUTPUTS.labels(self.spec.name, "error").inc(len(chunk))
            now = time.monotonic()
            # The destination's outage, not this chunk's: once past give-up, later alerts get one attempt each.
            self._failing_since = self._failing_since or now
            waited = now - self._failing_since
            if not error.retryable and error.rejected is not None:
                self._partially_delivered(chunk, error.rejected, attempt)
                return
            if not error.retryable or waited >= policy.give_up_after:
                kind = "rejected" if not error.retryable else "gave_up"
                self.log.error("%s: %d alert(s) dead-lettered to %s (%s after %d attempt(s), %.0fs): %s",
                               self.spec.name, len(chunk), self.dlq_topic, kind, attempt, waited, error.reason)
                self._dead_letter([DeadLetter(kind, error.reason, p.sources, alert=p.alert, attempts=attempt,
                                              failing_since=time.time() - waited) for p in chunk])
                self._settle(chunk)
                return
            if final or self.stop.is_set():
                for p in chunk:
                    self.dedup.forget(p.uuid)
                raise _Stopping()
            delay = min(self.backoff.delay(attempt - 1), policy.give_up_after - waited)
            self.log.warning("%s: attempt %d failed, retrying in %.1fs (consumption paused): %s",
                             self.spec.name, attempt, delay, error.reason)
            metrics.RETRIED.labels(*self.labels).inc(len(chunk))
            self._pause()
            self._wait_paused(max(0.0, delay))

    def _partially_delivered(self, chunk: list[Pending], rejected: dict[int, str], attempts: int) -> None:
        refused = [p for i, p in enumerate(chunk) if i in rejected]
        delivered = len(chunk) - len(refused)
        metrics.SENT.labels(*self.labels).inc(delivered)
        metrics.OUTPUTS.labels(self.spec.name, "ok").inc(delivered)
        self.log.error("%s: %d of %d alert(s) refused by the destination, dead-lettered to %s: %s", self.spec.name,
                       len(refused), len(chunk), self.dlq_topic, next(iter(rejected.values()), ""))
        self._dead_letter([DeadLetter("rejected", rejected[i], p.sources, alert=p.alert, attempts=attempts)
                           for i, p in enumerate(chunk) if i in rejected])
        self._settle(chunk)

    def _settle(self, chunk: list[Pending], resume: bool = True) -> None:
        for p in chunk:
            for src in p.sources:
                self.offsets.done(src)
        if resume:
            self._resume()

    def _dead_letter(self, letters: list[DeadLetter]) -> None:
        self.dlq.write(letters)
        for letter in letters:
            metrics.DEAD_LETTERED.labels(*self.labels, letter.reason).inc()
            for src in letter.source:
                self.offsets.done(src)

    # -- pause while the destination is down ----------------------------------------------------------------------
    def _pause(self) -> None:
        if not self._paused:
            self.consumer.pause(self.consumer.assignment())
            self._paused = True
            metrics.PAUSED.labels(self.spec.name).set(1)

    def _resume(self) -> None:
        if self._paused:
            self.consumer.resume(self.consumer.assignment())
            self._paused = False
            metrics.PAUSED.labels(self.spec.name).set(0)

    def _wait_paused(self, delay: float) -> None:
        """Keep polling (group membership, max.poll.interval) without taking records; records from partitions
        assigned during the pause are sought back and paused, to be read after recovery."""
        end = time.monotonic() + delay
        while not self.stop.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            stray = self.consumer.consume(100, min(left, POLL_S))
            firsts: dict[tuple[str, int], int] = {}
            for msg in stray:
                if msg.error() is None:
                    key = (msg.topic() or "", msg.partition() or 0)
                    firsts[key] = min(firsts.get(key, msg.offset() or 0), msg.offset() or 0)
            for (topic, part), offset in firsts.items():
                self.consumer.seek(TopicPartition(topic, part, offset))
            if firsts:
                self.consumer.pause(self.consumer.assignment())

    # -- commits -------------------------------------------------------------------------------------------------
    def _commit(self) -> None:
        points = self.offsets.commit_points()
        if not points:
            return
        try:
            self.consumer.commit(offsets=points, asynchronous=False)
        except KafkaException as exc:
            self.log.warning("%s: commit failed (will retry): %s", self.spec.name, exc)
            return
        self.offsets.committed(points)
