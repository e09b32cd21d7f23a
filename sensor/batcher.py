"""Events -> EventBatch records: one Kafka record per batch, never above the record cap, numbered without gaps.

Event Hubs bills and limits per record (~1,000 records/s per throughput unit, 1,046,528 bytes each), so the
sensor packs many events into one record. The cap is checked on the encoded bytes, not estimated: a batch is
cut by count (batch_max_events), by an encoded-size estimate learnt from earlier batches, and by linger_ms;
each batch is encoded once; if the bytes are still too large it is split in two and re-encoded (rare, since
the estimate adapts). A single event larger than the cap is dropped and counted (reason "oversize").

Sequence numbers (`first_seq` for events, `batch_seq` for records) are per sensor and monotonic across
restarts: the next numbers are written to <state_dir>/sensor/seq.state (SeqStore: two slots written in place,
alternately) each time a batch is sealed, and fsynced at most once a second and at close. After a power loss the numbers may repeat the last
second's; after a crash or a restart they continue without a gap.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from schemas.codec import encode_batch, event_batch_fingerprint

log = logging.getLogger(__name__)

# Bytes a Kafka record adds around our value (key, header "peregrine.schema", record framing), kept free.
RECORD_OVERHEAD_BYTES = 1024
_type_of = itemgetter("type")


def sensor_identity(hostname: str) -> str:
    """Hostname + boot id: stable for one boot of one host, as the schema documents."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot_id = "unknown-boot"
    return f"{hostname or socket.gethostname()}/{boot_id}"


@dataclass
class SealedBatch:
    """One encoded EventBatch, ready to be a Kafka record (or a journal entry)."""

    batch_seq: int
    first_seq: int
    n_events: int
    payload: bytes
    types: dict[str, int] = field(default_factory=dict)
    first_ts_ns: int = 0  # the first event's time: the Kafka record's timestamp (a hunt's window is event time)
    # the schema the payload was encoded with (its fingerprint): a journal can outlive a sensor upgrade
    schema: str = field(default_factory=event_batch_fingerprint)

    @property
    def last_seq(self) -> int:
        return self.first_seq + self.n_events - 1


class SeqStore:
    """The next event and batch sequence numbers, persisted so they stay monotonic across restarts.

    Written after every batch, so a crashed sensor continues where it stopped; the file is two fixed 32-byte slots
    (generation, next event seq, next batch seq, CRC-32) written alternately in place: one small pwrite per batch
    instead of a new file and a rename (which was ~8 % of the sensor's CPU at 300k events/s), and a write torn by a
    power cut leaves the other slot, one batch older. fdatasync every fsync_interval_s on a thread of its own: on
    ext4 a sync can wait for other files' dirty data (the broker's, on a shared disk) for hundreds of milliseconds,
    which the capture loop must not. A file of the older format (JSON, replaced by rename) is read once and
    rewritten in the new one."""

    SLOT = struct.Struct("<QQQI4x")

    def __init__(self, path: Path, fsync_interval_s: float = 1.0, legacy: Path | None = None) -> None:
        self.path = path
        self.fsync_interval_s = fsync_interval_s
        self.next_event_seq = 0
        self.next_batch_seq = 0
        self._generation = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        old = path if path.exists() else legacy if legacy is not None and legacy.exists() else None
        if old is not None:
            self._load(old, old.read_bytes())
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if old is not None and (old != path or self._generation == 0):  # the older format: rewritten in the new
            os.ftruncate(self._fd, 0)
            self._write()
            os.fdatasync(self._fd)
            if old != path:
                old.unlink()
        self._unsynced = False
        self._closing = threading.Event()
        self._syncer = threading.Thread(target=self._sync_loop, name="peregrine-seq-sync", daemon=True)
        self._syncer.start()

    def _load(self, path: Path, data: bytes) -> None:
        try:
            if data[:1] == b"{":  # the older format
                state = orjson.loads(data)
                self.next_event_seq = int(state["next_event_seq"])
                self.next_batch_seq = int(state["next_batch_seq"])
                return
            slots = [self.SLOT.unpack_from(data, off) for off in (0, self.SLOT.size)
                     if len(data) >= off + self.SLOT.size]
            valid = [s for s in slots if zlib.crc32(self.SLOT.pack(*s[:3], 0)[:24]) == s[3] and s[0] > 0]
            if not valid:
                raise ValueError("no intact slot")
            self._generation, self.next_event_seq, self.next_batch_seq, _ = max(valid)
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            raise ValueError(f"{path}: unreadable sequence state ({exc}); move it away to restart at 0") from exc

    def advance(self, n_events: int) -> tuple[int, int]:
        """Reserve one batch of n_events: returns (batch_seq, first_seq) and persists the next numbers."""
        batch_seq, first_seq = self.next_batch_seq, self.next_event_seq
        self.next_batch_seq += 1
        self.next_event_seq += n_events
        self._write()
        self._unsynced = True
        return batch_seq, first_seq

    def _write(self) -> None:
        self._generation += 1
        record = self.SLOT.pack(self._generation, self.next_event_seq, self.next_batch_seq, 0)
        record = self.SLOT.pack(self._generation, self.next_event_seq, self.next_batch_seq, zlib.crc32(record[:24]))
        os.pwrite(self._fd, record, (self._generation % 2) * self.SLOT.size)

    def _sync_loop(self) -> None:
        while not self._closing.wait(self.fsync_interval_s):
            if self._unsynced:
                self._unsynced = False
                try:
                    os.fdatasync(self._fd)
                except OSError as exc:  # the next second tries again; a crash in between is the power-cut case
                    log.warning("%s: fdatasync failed: %s", self.path, exc)
                    self._unsynced = True

    def close(self) -> None:
        if self._fd >= 0:
            self._closing.set()
            self._syncer.join()
            self._write()
            os.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = -1


@dataclass
class BatchLimits:
    max_events: int
    max_bytes: int
    linger_ms: int


class Batcher:
    """Accumulates events in capture order and seals them into EventBatch records within the limits."""

    def __init__(self, hostname: str, sensor_id: str, limits: BatchLimits, seq: SeqStore,
                 on_oversize: Callable[[dict[str, Any], int], None] | None = None) -> None:
        if limits.max_bytes <= 0 or limits.max_events <= 0:
            raise ValueError("batch limits must be positive")
        self.hostname = hostname
        self.sensor_id = sensor_id
        self.limits = limits
        self.seq = seq
        self.on_oversize = on_oversize
        self._pending: list[dict[str, Any]] = []
        self._opened_at: float | None = None
        # Learnt encoded bytes per event (starts pessimistic); cuts batches before they are encoded too large.
        self._bytes_per_event = 256.0
        self.oversize_events = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _cut_size(self) -> int:
        by_bytes = int(self.limits.max_bytes * 0.9 / max(self._bytes_per_event, 1.0))
        return max(1, min(self.limits.max_events, by_bytes))

    def add(self, events: list[dict[str, Any]], now: float | None = None) -> list[SealedBatch]:
        """Queue events; returns the batches that became full."""
        if not events:
            return []
        if not self._pending:
            self._opened_at = time.monotonic() if now is None else now
        self._pending.extend(events)
        sealed: list[SealedBatch] = []
        cut = self._cut_size()
        while len(self._pending) >= cut:
            chunk, self._pending = self._pending[:cut], self._pending[cut:]
            sealed.extend(self._seal(chunk))
            cut = self._cut_size()
        if self._pending and sealed:
            self._opened_at = time.monotonic() if now is None else now
        return sealed

    def due(self, now: float | None = None) -> bool:
        """True when the oldest pending event has waited linger_ms."""
        if not self._pending or self._opened_at is None:
            return False
        now = time.monotonic() if now is None else now
        return (now - self._opened_at) * 1000.0 >= self.limits.linger_ms - 1e-6

    def time_to_due_ms(self, now: float | None = None) -> float:
        if not self._pending or self._opened_at is None:
            return float(self.limits.linger_ms)
        now = time.monotonic() if now is None else now
        return max(0.0, self.limits.linger_ms - (now - self._opened_at) * 1000.0)

    def flush(self) -> list[SealedBatch]:
        """Seal everything pending (linger expired, or stopping)."""
        chunk, self._pending, self._opened_at = self._pending, [], None
        return self._seal(chunk) if chunk else []

    # -- sealing -------------------------------------------------------------------------------------------
    def _encode(self, events: list[dict[str, Any]], batch_seq: int, first_seq: int) -> bytes:
        return encode_batch({"hostname": self.hostname, "sensor_id": self.sensor_id, "batch_seq": batch_seq,
                             "first_seq": first_seq, "events": events})

    def _seal(self, events: list[dict[str, Any]]) -> list[SealedBatch]:
        """Encode once with the next numbers; split in two and retry only if the bytes exceed the cap."""
        out: list[SealedBatch] = []
        stack = [events]
        while stack:
            chunk = stack.pop()
            payload = self._encode(chunk, self.seq.next_batch_seq, self.seq.next_event_seq)
            if len(payload) > self.limits.max_bytes:
                if len(chunk) == 1:
                    self._oversize(chunk[0], len(payload))
                    continue
                half = len(chunk) // 2
                stack.append(chunk[half:])
                stack.append(chunk[:half])
                continue
            self._bytes_per_event = 0.7 * self._bytes_per_event + 0.3 * (len(payload) / len(chunk))
            batch_seq, first_seq = self.seq.advance(len(chunk))
            out.append(SealedBatch(batch_seq, first_seq, len(chunk), payload, dict(Counter(map(_type_of, chunk))),
                                   int(chunk[0].get("ts") or 0)))
        return out

    def _oversize(self, event: dict[str, Any], size: int) -> None:
        self.oversize_events += 1
        log.warning("dropping one %s event of pid %s: %d bytes encoded, above the record cap of %d bytes",
                    event.get("type"), event.get("pid"), size, self.limits.max_bytes)
        if self.on_oversize is not None:
            self.on_oversize(event, size)


def record_cap(batch_max_bytes: int, max_record_bytes: int) -> int:
    """The encoded-batch cap: the configured batch size, but always below the Kafka record limit."""
    return max(1024, min(batch_max_bytes, max_record_bytes - RECORD_OVERHEAD_BYTES))
