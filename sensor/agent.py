"""The sensor's loop: snapshot, then capture -> batches -> Kafka (or the journal), with drop reports and metrics.

Order is the invariant everything here keeps: batches leave in batch_seq order. A batch goes straight to the
producer only while the journal is empty and the producer's window has room; otherwise it is journaled
behind what is already there, and the journal is drained into the producer, oldest first, as room appears.
The producer never expires a record, so what it holds is delivered in order once the broker is back.
At a stop, records the producer still holds are purged and written to the front of the journal, so the
next start replays them first.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol

from confluent_kafka import KafkaError

from schemas.event_types import ALWAYS_SHIPPED
from sensor.batcher import Batcher, BatchLimits, SealedBatch, SeqStore, record_cap, sensor_identity
from sensor.drops import DropReporter
from sensor.journal import Journal
from sensor.metrics import ContainerLookupCollector, Health, MetricsServer, SensorMetrics
from sensor.publisher import InFlight, Publisher
from sensor.recording import Recorder, read_recording
from settings.config import PROJECT_ROOT, Config
from settings.kafka_clients import resolve

log = logging.getLogger(__name__)
_type_of = itemgetter("type")

DEFAULT_RULES = PROJECT_ROOT / "processor" / "rules" / "peregrine_rules.yaml"


class SensorError(RuntimeError):
    """A reason the sensor cannot start, phrased for the person starting it."""


# -- sources ---------------------------------------------------------------------------------------------------
class EventSource(Protocol):
    finished: bool

    def start(self) -> None: ...
    def poll(self, timeout_ms: int) -> list[dict[str, Any]]: ...
    def drops(self) -> dict[str, int]: ...
    def close(self) -> None: ...


@dataclass
class LiveSource:
    """Real eBPF capture; the /proc snapshot (processes, users, groups) comes first."""

    event_types: set[str] | None
    argv_max: int = 32
    ring_buffer_pages: int = 4096
    container_state_roots: dict[str, str] = field(default_factory=dict)  # sensor.container_state_roots
    cri_sockets: list[str] = field(default_factory=list)  # sensor.cri_sockets
    snapshot_interval_s: float = 3600.0  # keyframe snapshots for retro-hunts; 0: only the start-up snapshot
    finished: bool = False
    _capture: Any = None
    _snapshot: list[dict[str, Any]] = field(default_factory=list)
    metadata: Any = None  # the runtimes view (ContainerMetadata), once started
    _next_snapshot: float = 0.0

    def start(self) -> None:
        from sensor.capture import Capture
        from sensor.container_runtime import ContainerMetadata, StateRoots
        from sensor.snapshot import snapshot_events

        cri = None
        if self.cri_sockets:
            from sensor.cri import CriClient

            cri = CriClient(self.cri_sockets)
        metadata = ContainerMetadata(StateRoots.from_mapping(self.container_state_roots), cri=cri)
        self._capture = Capture(self.event_types, argv_max=self.argv_max, ring_buffer_pages=self.ring_buffer_pages)
        self._capture.decoder.containers = metadata  # one view of the runtimes for live events and the snapshot
        self._capture.start()
        self._snapshot = list(snapshot_events(metadata))
        self.metadata = metadata
        self._next_snapshot = time.monotonic() + self.snapshot_interval_s

    def poll(self, timeout_ms: int) -> list[dict[str, Any]]:
        if self._snapshot:
            events, self._snapshot = self._snapshot, []
            return events
        if self.snapshot_interval_s > 0 and time.monotonic() >= self._next_snapshot:
            from sensor.snapshot import snapshot_events

            self._next_snapshot = time.monotonic() + self.snapshot_interval_s
            return snapshot_events(self.metadata, periodic=True) + list(self._capture.poll(0))
        return list(self._capture.poll(timeout_ms))

    def drops(self) -> dict[str, int]:
        return dict(self._capture.drops()) if self._capture is not None else {}

    def close(self) -> None:
        if self._capture is not None:
            self._capture.close()
        if self.metadata is not None:
            self.metadata.close()


@dataclass
class ReplaySource:
    """A recording fed as if live: events unchanged, as fast as the pipeline takes them, or, with `speed`,
    at the recorded pace (speed 1.0 = the original timing, from the events' timestamps)."""

    path: Path
    chunk: int = 4096
    speed: float | None = None
    finished: bool = False
    _chunks: Iterator[list[dict[str, Any]]] | None = None
    _held: list[dict[str, Any]] = field(default_factory=list)
    _origin: tuple[int, float] | None = None  # (first event ts, wall clock at start)

    def start(self) -> None:
        self._chunks = read_recording(self.path, self.chunk)

    def _next_chunk(self) -> list[dict[str, Any]]:
        assert self._chunks is not None
        try:
            return next(self._chunks)
        except StopIteration:
            return []

    def poll(self, timeout_ms: int) -> list[dict[str, Any]]:
        if not self._held:
            self._held = self._next_chunk()
            if not self._held:
                self.finished = True
                return []
        if self.speed is None:
            events, self._held = self._held, []
            return events
        if self._origin is None:
            self._origin = (int(self._held[0]["ts"]), time.monotonic())
        first_ts, wall0 = self._origin
        due_ts = first_ts + int((time.monotonic() - wall0) * self.speed * 1e9)
        n = next((i for i, e in enumerate(self._held) if e["ts"] > due_ts), len(self._held))
        if n == 0:
            wait_s = (self._held[0]["ts"] - due_ts) / 1e9 / self.speed
            time.sleep(min(wait_s, timeout_ms / 1000.0))
            return []
        events, self._held = self._held[:n], self._held[n:]
        return events

    def drops(self) -> dict[str, int]:
        return {}

    def close(self) -> None:
        self._chunks = None


# -- shipping in order -------------------------------------------------------------------------------------------
class Shipper:
    """Routes sealed batches to the producer or the journal so that they leave in batch_seq order."""

    def __init__(self, publisher: Publisher, journal: Journal, metrics: SensorMetrics) -> None:
        self.publisher = publisher
        self.journal = journal
        self.metrics = metrics
        self.drops: Counter[str] = Counter()
        self._warned_full = False
        publisher.on_delivered = self._delivered
        publisher.on_failed = self._failed

    def submit(self, batch: SealedBatch) -> None:
        if self.journal.empty and self.publisher.produce(batch):
            return
        if self.journal.append(batch):
            self.metrics.journaled.inc()
            self._warned_full = False
            return
        self.drops["n_drops_journal"] += batch.n_events
        self.metrics.drop("journal", batch.n_events)
        if not self._warned_full:
            log.error("journal %s is full (%d bytes): dropping events until Kafka takes them (counted as "
                      "n_drops_journal)", self.journal.dir, self.journal.max_bytes)
            self._warned_full = True

    def pump(self) -> None:
        """Serve delivery reports, then move journaled batches to the producer while it has room."""
        self.publisher.poll(0)
        if self.publisher.stalled():
            self.restart_producer()
        while not self.journal.empty:
            entry = self.journal.next_unsent()
            if entry is None:
                break
            if not self.publisher.produce(entry.batch, entry):
                self.journal.unread(entry)
                break
        self.journal.maybe_sync()
        self.metrics.journal_bytes.set(self.journal.pending_bytes)

    def restart_producer(self) -> None:
        """A stuck producer is replaced; its records go back to the journal in order and are sent again."""
        held = self.publisher.restart()
        log.warning("Kafka acknowledged nothing of %d records in flight although a broker is up: producer "
                    "restarted, records sent again from the journal (duplicates possible, same batch_seq)", len(held))
        direct = [item.batch for item in held if item.entry is None]
        if direct:
            self.journal.prepend(direct)
        self.journal.rewind()

    @property
    def idle(self) -> bool:
        return self.journal.empty and not self.publisher.inflight

    def _delivered(self, item: InFlight) -> None:
        if item.entry is not None:
            self.journal.ack(item.entry)

    def _failed(self, item: InFlight, err: KafkaError) -> None:
        """A permanent failure (librdkafka never expires records here): the batch is lost, counted as such."""
        self.drops["n_drops_kafka"] += item.batch.n_events
        self.metrics.drop("kafka", item.batch.n_events)
        if item.entry is not None:
            self.journal.ack(item.entry)

    def stop(self, timeout_s: float) -> None:
        """Deliver what can be delivered within timeout_s; journal the rest (in-flight records to the front)."""
        deadline = time.monotonic() + timeout_s
        while not self.idle and time.monotonic() < deadline:
            self.pump()
            self.publisher.poll(0.05)
        leftovers = self.publisher.abandon()
        direct = [item.batch for item in leftovers if item.entry is None]
        if direct:
            self.journal.prepend(direct)
            log.warning("stopped with %d batches unacknowledged by Kafka: journaled, sent at the next start",
                        len(direct))
        self.journal.close()


# -- the agent ---------------------------------------------------------------------------------------------------
@dataclass
class AgentOptions:
    kafka: bool = True
    record: Path | None = None
    stop_timeout_s: float = 15.0
    metrics: bool = True
    drop_interval_s: float = 1.0
    max_inflight_records: int = 64
    # Event types shipped to Kafka (sensor_ship_types); None ships everything captured. The rest were traced for the
    # sensor's own fd/process tables only: counted as state-only, recorded by --record, never shipped.
    ship_types: frozenset[str] | None = None


class Agent:
    """One sensor: a source, the batcher, the shipper, drop reports and the metrics endpoint."""

    def __init__(self, cfg: Config, source: EventSource, options: AgentOptions | None = None) -> None:
        self.cfg = cfg
        self.source = source
        self.options = options or AgentOptions()
        self.hostname = cfg.host
        self.sensor_id = sensor_identity(self.hostname)
        self.state_dir = cfg.state_path / "sensor"
        self.metrics = SensorMetrics()
        self.health = Health(detail=self._health_detail)
        cap = record_cap(cfg.sensor.batch_max_bytes, resolve(cfg.kafka).max_record_bytes)
        self.seq = SeqStore(self.state_dir / "seq.state", legacy=self.state_dir / "seq.json")
        self.batcher = Batcher(self.hostname, self.sensor_id,
                               BatchLimits(cfg.sensor.batch_max_events, cap, cfg.sensor.linger_ms), self.seq,
                               on_oversize=lambda _e, _n: self._own_drop("max_event_size", 1))
        self.reporter = DropReporter(self.options.drop_interval_s)
        self.own_drops: Counter[str] = Counter()
        self.shipper: Shipper | None = None
        self.recorder: Recorder | None = None
        self.server: MetricsServer | None = None
        self.n_evts = 0
        self.n_state_only = 0  # captured for the sensor's own tables, not shipped (AgentOptions.ship_types)
        self._started = False
        self._stop = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        self._stop.set()

    def start(self) -> None:
        """Start the source first (a capture that cannot start is the likeliest failure), then the rest."""
        self.source.start()
        self._started = True
        metadata = getattr(self.source, "metadata", None)
        if metadata is not None:
            self.metrics.registry.register(ContainerLookupCollector(metadata))
        try:
            if self.options.kafka:
                journal = Journal(self.state_dir / "journal", self.cfg.sensor.journal_max_bytes)
                publisher = Publisher(self.cfg.kafka, self.hostname, self.metrics,
                                      max_inflight_records=self.options.max_inflight_records)
                self.shipper = Shipper(publisher, journal, self.metrics)
            if self.options.record is not None:
                self.recorder = Recorder(self.options.record, self.hostname, self.sensor_id)
            if self.options.metrics:
                try:
                    self.server = MetricsServer(self.metrics, self.health, self.cfg.sensor.metrics_port)
                except OSError as exc:
                    raise SensorError(f"metrics port {self.cfg.sensor.metrics_port} is unavailable ({exc.strerror}):"
                                      " set sensor.metrics_port") from exc
        except BaseException:
            self.source.close()
            raise

    def run(self, install_signals: bool = True) -> int:
        """Start (unless started), loop until stopped (signal, or the end of a replay), then flush everything."""
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self.request_stop)
            signal.signal(signal.SIGTERM, self.request_stop)
        if not self._started:
            self.start()
        try:
            while not self._stop.is_set() and not self.source.finished:
                self.step()
        finally:
            self.close()
        return 0

    def step(self) -> None:
        """One turn: poll the source, batch, ship, report drops, update health."""
        timeout = int(min(100.0, self.batcher.time_to_due_ms()))
        started = time.monotonic()  # (a poll that returns records waited at most a 10 ms slice for them)
        events = self.source.poll(timeout)
        if events:
            self._take(events)
        now = time.monotonic()
        if self.reporter.due(now):
            self._report_drops(now)
        if self.batcher.due(now):
            self._ship(self.batcher.flush())
        if self.shipper is not None:
            self.shipper.pump()
        self.health.beat()
        if events:
            self.metrics.loop_turn.observe(time.monotonic() - started)

    def _take(self, events: list[dict[str, Any]]) -> None:
        types = Counter(map(_type_of, events))
        self.metrics.count_captured(types)
        self.n_evts += len(events)
        if self.recorder is not None:
            self.recorder.write(events)
        ship = self.options.ship_types
        if ship is not None and not ship.issuperset(types):
            events = [e for e in events if e["type"] in ship]
            state_only = {t: n for t, n in types.items() if t not in ship}
            self.metrics.count_state_only(state_only)
            self.n_state_only += sum(state_only.values())
        if self.shipper is not None:
            self._ship(self.batcher.add(events))

    def _ship(self, batches: Iterable[SealedBatch]) -> None:
        assert self.shipper is not None or not batches
        for batch in batches:
            if self.shipper is not None:
                self.shipper.submit(batch)

    def _own_drop(self, reason: str, n: int) -> None:
        self.own_drops[f"n_drops_{reason}"] += n
        self.metrics.drop(reason, n)

    def drops(self) -> dict[str, int]:
        """Every loss counter, cumulative: the capture's and ours (journal full, oversize, Kafka)."""
        totals = dict(self.source.drops())
        totals.update(self.own_drops)
        if self.shipper is not None:
            totals.update(self.shipper.drops)
        return totals

    def _report_drops(self, now: float) -> None:
        capture_drops = self.source.drops()
        self.metrics.sync_drops(capture_drops)
        event = self.reporter.report(self.n_evts, self.drops(), now)
        if event is not None:
            log.warning("events dropped: %s", {k: v for k, v in event["args"].items() if not k.endswith("_total")})
            if self.shipper is not None:
                self._ship(self.batcher.add([event], now))

    def close(self) -> None:
        self._stop.set()
        try:
            for _ in range(100):  # drain what the capture still holds, bounded
                events = self.source.poll(0)
                if not events:
                    break
                self._take(events)
            self._report_drops(time.monotonic())
        finally:
            self.source.close()
        if self.shipper is not None:
            self._ship(self.batcher.flush())
            timeout = self.options.stop_timeout_s if self.shipper.publisher.broker_up else min(
                2.0, self.options.stop_timeout_s)
            self.shipper.stop(timeout)
        self.seq.close()
        if self.recorder is not None:
            self.recorder.close()
        if self.server is not None:
            self.server.close()

    def _health_detail(self) -> dict[str, Any]:
        detail: dict[str, Any] = {"hostname": self.hostname, "events": self.n_evts, "drops": self.drops()}
        if self.shipper is not None:
            p = self.shipper.publisher
            detail.update({"kafka_up": p.broker_up, "journal_bytes": self.shipper.journal.pending_bytes,
                           "inflight_records": len(p.inflight), "records_published": p.delivered_records})
        return detail


# -- the adaptive event-type set ----------------------------------------------------------------------------------
def rules_event_types(rules_files: list[str]) -> set[str] | None:
    """Event types the given rules need (None = everything), from the rules engine; None if it cannot tell."""
    found = _rules_event_types(tuple(rules_files))
    return None if found is None else set(found)


@functools.lru_cache(maxsize=4)  # the capture set and the ship set both need it: load the rules once
def _rules_event_types(rules_files: tuple[str, ...]) -> frozenset[str] | None:
    try:
        from processor.engine.engine import RulesEngine
    except ImportError:
        log.warning("the rules engine is not available: tracing the full syscall set")
        return None
    engine = RulesEngine()
    try:
        result = engine.load_rules_files(list(rules_files))
    except Exception as exc:  # a rules problem must not stop capture: trace everything, say why
        log.warning("loading %s for the syscall set failed (%s): tracing the full syscall set",
                    ", ".join(rules_files), exc)
        return None
    if not result.successful:
        log.warning("rules did not load (%s): tracing the full syscall set", str(result).strip().splitlines()[0]
                    if str(result).strip() else "errors")
        return None
    if engine.matches_all_event_types():
        return None
    return frozenset(engine.required_event_types())


def sensor_ship_types(cfg: Config, rules_files: list[str] | None) -> frozenset[str] | None:
    """What the sensor ships: the rules' event types, sensor.syscalls, lifecycle and meta events; None = all."""
    wanted = rules_event_types(rules_files or cfg.rules_files or [str(DEFAULT_RULES)])
    if wanted is None:
        return None
    return frozenset(wanted | set(cfg.sensor.syscalls) | ALWAYS_SHIPPED)


def sensor_event_types(cfg: Config, rules_files: list[str] | None) -> set[str] | None:
    """The rules' event types, the state set (process/fd tables) and sensor.syscalls; None = the full set."""
    files = rules_files or cfg.rules_files or [str(DEFAULT_RULES)]
    wanted = rules_event_types(files)
    if wanted is None:
        return None
    wanted |= set(cfg.sensor.syscalls)
    try:
        from sensor.syscalls import adaptive_set
    except ImportError:
        return wanted
    return set(adaptive_set(wanted))


def require_root() -> None:
    if os.geteuid() != 0:
        raise SensorError("the sensor loads eBPF programs: run it as root (sudo peregrine sensor), or use --replay FILE")
