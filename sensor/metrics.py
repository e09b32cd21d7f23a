"""The sensor's Prometheus metrics and health endpoint, named like Falco's so existing dashboards read them.

Falco's kernel counters are `falcosecurity_scap_*`; what Falco does not have (shipping to Kafka, the journal)
is `peregrine_sensor_*`. Each sensor has its own registry, so several can run in one process (tests).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, make_wsgi_app
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

BATCH_EVENT_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 4096, 8192, 16384)
LOOP_TURN_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BYTES_BUCKETS = (1 << 10, 16 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 900_000, 1 << 20)


class SensorMetrics:
    """Every counter the sensor keeps, in one registry."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes: the sensor's own cost
        self.n_evts = Counter("falcosecurity_scap_n_evts_total", "Events captured by the sensor.", registry=r)
        self.n_drops = Counter("falcosecurity_scap_n_drops_total", "Events lost, by where they were lost.",
                               ["reason"], registry=r)
        self.captured = Counter("peregrine_sensor_events_captured_total", "Events captured, by type.", ["type"],
                                registry=r)
        self.state_only = Counter("peregrine_sensor_events_state_only_total",
                                  "Events traced for the sensor's own fd/process tables and not shipped (no loaded rule "
                                  "reads their type), by type.", ["type"], registry=r)
        self.published = Counter("peregrine_sensor_events_published_total",
                                 "Events acknowledged by Kafka, by type.", ["type"], registry=r)
        self.records = Counter("peregrine_sensor_records_published_total",
                               "Kafka records (event batches) acknowledged.", registry=r)
        self.delivery_failures = Counter("peregrine_sensor_delivery_failures_total",
                                         "Kafka deliveries that failed, by error.", ["error"], registry=r)
        self.batch_events = Histogram("peregrine_sensor_batch_events", "Events per Kafka record.",
                                      buckets=BATCH_EVENT_BUCKETS, registry=r)
        self.batch_bytes = Histogram("peregrine_sensor_batch_bytes", "Encoded bytes per Kafka record.",
                                     buckets=BATCH_BYTES_BUCKETS, registry=r)
        self.loop_turn = Histogram("peregrine_sensor_loop_turn_seconds",
                                   "A turn of the capture loop that had records (decode them, batch, encode, produce). The "
                                   "ring buffer holds what the probe writes meanwhile: turns near its span (about "
                                   "0.3 s at 300k events/s with 16 MiB) are where buffer drops come from.",
                                   buckets=LOOP_TURN_BUCKETS, registry=r)
        self.ring_deferred = Counter("peregrine_sensor_ringbuf_deferred_records_total",
                                     "Records the ring buffer refused with room to spare (a kernel quirk under load), kept on "
                                     "their CPU and sent ahead of its next record: late, not lost.", registry=r)
        self.journal_bytes = Gauge("peregrine_sensor_journal_bytes", "Bytes in the spill journal not yet delivered.",
                                   registry=r)
        self.journaled = Counter("peregrine_sensor_journaled_batches_total", "Batches spilled to the journal.",
                                 registry=r)
        self.producer_queue = Gauge("peregrine_sensor_producer_queue_length",
                                    "Records in the Kafka producer's queue (sent, not yet acknowledged).", registry=r)
        self.inflight_bytes = Gauge("peregrine_sensor_producer_inflight_bytes",
                                    "Bytes of records handed to the producer and not yet acknowledged.", registry=r)
        self.kafka_up = Gauge("peregrine_sensor_kafka_up", "1 while the Kafka brokers answer.", registry=r)
        self._drop_seen: dict[str, int] = {}

    def count_captured(self, types: Mapping[str, int]) -> None:
        total = 0
        for event_type, n in types.items():
            self.captured.labels(event_type).inc(n)
            total += n
        self.n_evts.inc(total)

    def count_state_only(self, types: Mapping[str, int]) -> None:
        for event_type, n in types.items():
            self.state_only.labels(event_type).inc(n)

    def count_published(self, types: Mapping[str, int], n_bytes: int) -> None:
        total = 0
        for event_type, n in types.items():
            self.published.labels(event_type).inc(n)
            total += n
        self.records.inc()
        self.batch_events.observe(total)
        self.batch_bytes.observe(n_bytes)

    def drop(self, reason: str, n: int) -> None:
        if n > 0:
            self.n_drops.labels(reason).inc(n)

    def sync_drops(self, totals: Mapping[str, int]) -> None:
        """Fold cumulative counters (from the capture) into the drop counter, by their increase."""
        for reason, total in totals.items():
            if reason == "n_deferred_buffer":
                delta = total - self._drop_seen.get(reason, 0)
                if delta > 0:
                    self.ring_deferred.inc(delta)
                    self._drop_seen[reason] = total
                continue
            if not reason.startswith("n_drops_"):
                continue  # information, not loss (e.g. n_args_truncated)
            delta = total - self._drop_seen.get(reason, 0)
            if delta > 0:
                self.drop(reason.removeprefix("n_drops_"), delta)
            self._drop_seen[reason] = max(total, self._drop_seen.get(reason, 0))


class ContainerLookupCollector(Collector):
    """Container metadata lookups and CRI calls, read from the live objects at scrape time (they count in the
    capture loop, which must not pay for Prometheus updates per lookup)."""

    def __init__(self, metadata: Any) -> None:
        self.metadata = metadata

    def collect(self) -> Any:
        lookups = CounterMetricFamily("peregrine_sensor_container_lookups",
                                      "Container metadata lookups (runtime files, then CRI), by result.",
                                      labels=["result"])
        meta = self.metadata
        lookups.add_metric(["ok"], meta.lookups - meta.failures)
        lookups.add_metric(["failed"], meta.failures)
        yield lookups
        cri = meta.cri
        if cri is not None:
            calls = CounterMetricFamily("peregrine_sensor_cri_calls",
                                        "CRI calls to the container runtime, by outcome (skipped: the socket was "
                                        "resting after a deadline passed or it was unavailable).", labels=["outcome"])
            calls.add_metric(["answered"], cri.calls - cri.failures)
            calls.add_metric(["failed"], cri.failures)
            calls.add_metric(["skipped"], cri.skipped)
            yield calls
            late = CounterMetricFamily("peregrine_sensor_cri_late_answers",
                                       "CRI answers that came after the capture stopped waiting for them "
                                       "(ContainerMetadata.cri_wait_s) and went out as a second container meta event.")
            late.add_metric([], meta.cri_late)
            yield late


@dataclass
class Health:
    """What /healthz reports: the loop is alive (heartbeat) and, as detail, how shipping goes."""

    max_silence_s: float = 10.0
    last_beat: float = field(default_factory=time.monotonic)
    detail: Callable[[], dict[str, Any]] = field(default=lambda: {})

    def beat(self) -> None:
        self.last_beat = time.monotonic()

    def status(self) -> tuple[bool, dict[str, Any]]:
        silent = time.monotonic() - self.last_beat
        ok = silent < self.max_silence_s
        return ok, {"status": "ok" if ok else "stalled", "loop_silent_s": round(silent, 3), **self.detail()}


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        pass


class _ThreadingServer(WSGIServer):
    daemon_threads = True

    def process_request(self, request: Any, client_address: Any) -> None:
        threading.Thread(target=self._serve_one, args=(request, client_address), daemon=True).start()

    def _serve_one(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        finally:
            self.shutdown_request(request)


class MetricsServer:
    """/metrics (Prometheus text) and /healthz (JSON, 503 when the loop stalls) on one port."""

    def __init__(self, metrics: SensorMetrics, health: Health, port: int, host: str = "0.0.0.0") -> None:
        prometheus = make_wsgi_app(metrics.registry)

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO") == "/healthz":
                ok, body = health.status()
                start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "application/json")])
                return [orjson.dumps(body)]
            return prometheus(environ, start_response)

        self._server = make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sensor-metrics", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
