"""The on-disk spill journal: what the sensor captured while Kafka was away, kept in order until it is delivered.

Layout, under <state_dir>/sensor/journal/:
  <batch_seq:020d>.seg   segment files, named by the batch_seq of their first record; replayed in name order,
                         which is batch order. A segment rolls at `segment_bytes` (1/8 of the bound, 1-64 MiB).
  cursor.json            {"acked": {segment: offset}}: bytes of each segment delivered (acknowledged by Kafka).
Record: 36-byte header (magic "PGJ1", payload length, CRC32, batch_seq, first_seq, n_events, types length),
then JSON metadata (per-type event counts for metrics after a restart, the first event's time for the Kafka
timestamp, the schema fingerprint the batch was encoded with), then the encoded EventBatch.

Bound: appends that would take the unacknowledged bytes above `max_bytes` are refused; the caller drops the
batch and counts its events (reason "journal"). Nothing already journaled is ever dropped.

fsync policy (group commit): appends go straight to the kernel (no user-space buffer, so a sensor crash loses
nothing written); the active segment and the cursor are fsynced at most once per `fsync_interval_s` (1 s) and
at close. A power loss can lose up to that last second; a torn or corrupt tail is detected by the CRC at open,
logged, and truncated. Delivery is at-least-once: records sent but not yet acknowledged when the sensor stops
are sent again after a restart; consumers can drop duplicates by (sensor_id, batch_seq).
"""

from __future__ import annotations

import logging
import os
import struct
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import orjson

from sensor.batcher import SealedBatch

log = logging.getLogger(__name__)

MAGIC = b"PGJ1"
HEADER = struct.Struct("<4sIIQQII")
SEGMENT_SUFFIX = ".seg"
CURSOR_NAME = "cursor.json"
# The schema of every batch journaled before the journal kept each batch's own (EventBatch, schemas/history/)
SCHEMA_BEFORE_JOURNALED = "EventBatch:0dad8f6712675cfe"


class JournalError(RuntimeError):
    """The journal directory cannot be used (permissions, disk)."""


@dataclass(frozen=True)
class JournalEntry:
    """A batch read back from the journal, with the position that acknowledges it."""

    batch: SealedBatch
    segment: str
    offset: int
    end_offset: int


def segment_name(batch_seq: int) -> str:
    return f"{batch_seq:020d}{SEGMENT_SUFFIX}"


def _encode_record(batch: SealedBatch) -> bytes:
    types = orjson.dumps({"types": batch.types, "ts": batch.first_ts_ns, "schema": batch.schema})
    body = types + batch.payload
    header = HEADER.pack(MAGIC, len(batch.payload), zlib.crc32(body), batch.batch_seq, batch.first_seq,
                         batch.n_events, len(types))
    return header + body


class Journal:
    """Bounded, ordered, restart-safe spill queue of sealed batches."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int | None = None,
                 fsync_interval_s: float = 1.0) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes or max(1 << 20, min(64 << 20, max_bytes // 8))
        self.fsync_interval_s = fsync_interval_s
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"{self.dir}: cannot create the journal directory: {exc.strerror}") from exc
        self._sizes: dict[str, int] = {}  # segment -> valid bytes, kept in name (= batch) order
        self._acked: dict[str, int] = {}  # segment -> bytes delivered from its start
        self._read: tuple[str, int] | None = None  # next record to hand out; None: the first unacknowledged
        self._write_fd: int | None = None
        self._write_seg = ""
        self._dirty = False
        self._cursor_dirty = False
        self._last_fsync = time.monotonic()
        self._open_existing()

    # -- opening -------------------------------------------------------------------------------------------
    def _open_existing(self) -> None:
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
        for name in sorted(p.name for p in self.dir.glob("*" + SEGMENT_SUFFIX)):
            self._sizes[name] = self._validate(self.dir / name)
        cursor = self.dir / CURSOR_NAME
        if cursor.exists():
            try:
                acked = orjson.loads(cursor.read_bytes())["acked"]
                self._acked = {str(k): min(int(v), self._sizes[k]) for k, v in acked.items() if k in self._sizes}
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("%s: unreadable cursor, replaying the whole journal (duplicates possible)", cursor)
        self._collect()
        if self._sizes:
            log.info("journal %s: %d segment(s), %d bytes to replay", self.dir, len(self._sizes), self.pending_bytes)

    def _validate(self, path: Path) -> int:
        """Length of the valid prefix; a torn or corrupt tail is truncated (and said so)."""
        size = path.stat().st_size
        good = 0
        with open(path, "rb") as f:
            while good < size:
                header = f.read(HEADER.size)
                if len(header) < HEADER.size:
                    break
                magic, plen, crc, _bseq, _fseq, _n, tlen = HEADER.unpack(header)
                body = f.read(tlen + plen)
                if magic != MAGIC or len(body) < tlen + plen or zlib.crc32(body) != crc:
                    break
                good += HEADER.size + tlen + plen
        if good < size:
            log.warning("%s: %d bytes of torn or corrupt records at offset %d truncated", path, size - good, good)
            with open(path, "r+b") as f:
                f.truncate(good)
        return good

    # -- state ---------------------------------------------------------------------------------------------
    @property
    def pending_bytes(self) -> int:
        """Bytes on disk not yet acknowledged by Kafka: what counts against the bound."""
        return sum(size - self._acked.get(name, 0) for name, size in self._sizes.items())

    @property
    def empty(self) -> bool:
        return self.pending_bytes == 0

    @property
    def segments(self) -> list[str]:
        return list(self._sizes)

    # -- writing -------------------------------------------------------------------------------------------
    def append(self, batch: SealedBatch) -> bool:
        """Journal one batch after everything already in it; False (nothing written) when that would overflow."""
        record = _encode_record(batch)
        if self.pending_bytes + len(record) > self.max_bytes:
            return False
        if self._write_fd is None or self._sizes.get(self._write_seg, 0) + len(record) > self.segment_bytes:
            self._roll(batch.batch_seq)
        assert self._write_fd is not None
        self._write_all(self._write_fd, record)
        self._sizes[self._write_seg] += len(record)
        self._dirty = True
        self.maybe_sync()
        return True

    def prepend(self, batches: Iterable[SealedBatch]) -> int:
        """Journal batches OLDER than everything in the journal (in flight when the sensor stopped).

        They go to a front segment named by their first batch_seq, so it sorts, and replays, first.
        Returns the number of batches written.
        """
        batches = sorted(batches, key=lambda b: b.batch_seq)
        if not batches:
            return 0
        name = segment_name(batches[0].batch_seq)
        if self._sizes and name >= next(iter(self._sizes)):
            raise JournalError(f"{self.dir}: prepend of batch {batches[0].batch_seq} is not older than the journal")
        data = b"".join(_encode_record(b) for b in batches)
        path = self.dir / name
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self._sizes = {name: len(data), **self._sizes}
        self._read = None
        self._write_cursor(fsync=True)
        self._fsync_dir()
        return len(batches)

    def _roll(self, batch_seq: int) -> None:
        self._close_writer()
        name = segment_name(batch_seq)
        if self._sizes and name <= next(reversed(self._sizes)):
            # After a restart the next batch_seq can be below a replayed tail only if seq state was lost:
            # keep name order = batch order by appending to the last segment.
            name = next(reversed(self._sizes))
        path = self.dir / name
        try:
            self._write_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise JournalError(f"{path}: cannot write the journal: {exc.strerror}") from exc
        self._write_seg = name
        self._sizes.setdefault(name, 0)
        self._fsync_dir()

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    # -- reading and acknowledging ---------------------------------------------------------------------------
    def next_unsent(self) -> JournalEntry | None:
        """The next record to send, in order (does not acknowledge it)."""
        for name, size in self._sizes.items():
            start = self._acked.get(name, 0)
            if self._read is not None:
                if name < self._read[0]:
                    continue
                if name == self._read[0]:
                    start = max(start, self._read[1])
            if start < size:
                return self._read_at(name, start)
        return None

    def _read_at(self, seg: str, off: int) -> JournalEntry:
        with open(self.dir / seg, "rb") as f:
            f.seek(off)
            header = f.read(HEADER.size)
            magic, plen, _crc, batch_seq, first_seq, n_events, tlen = HEADER.unpack(header)
            body = f.read(tlen + plen)
        if magic != MAGIC or len(body) != tlen + plen:
            raise JournalError(f"{self.dir / seg}:{off}: journal record unreadable")
        end = off + HEADER.size + tlen + plen
        meta = orjson.loads(body[:tlen]) if tlen else {}
        if isinstance(meta.get("types"), dict):
            types, first_ts = meta["types"], int(meta.get("ts") or 0)
        else:  # a journal written before the timestamp was kept: the metadata is the types map itself
            types, first_ts = meta, 0
        schema = meta.get("schema") or SCHEMA_BEFORE_JOURNALED  # older records were all written with that one
        self._read = (seg, end)
        return JournalEntry(SealedBatch(batch_seq, first_seq, n_events, body[tlen:], types, first_ts, schema),
                            seg, off, end)

    def ack(self, entry: JournalEntry) -> None:
        """Kafka has the record (deliveries arrive in order): everything up to it is delivered."""
        for name in self._sizes:
            if name >= entry.segment:
                break
            self._acked[name] = self._sizes[name]
        self._acked[entry.segment] = max(self._acked.get(entry.segment, 0), entry.end_offset)
        self._cursor_dirty = True
        self._collect()
        self.maybe_sync()

    def unread(self, entry: JournalEntry) -> None:
        """Hand out `entry` again next (it could not be sent); what was handed out before it stays handed out."""
        self._read = (entry.segment, entry.offset)

    def rewind(self) -> None:
        """Hand out again everything not acknowledged (after sends were abandoned)."""
        self._read = None

    def _collect(self) -> None:
        """Delete fully delivered segments; when all is delivered, start clean so the next spill is well named."""
        if self._sizes and self.pending_bytes == 0:
            self._close_writer()
            for name in list(self._sizes):
                (self.dir / name).unlink(missing_ok=True)
            self._sizes.clear()
            self._acked.clear()
            self._read = None
            (self.dir / CURSOR_NAME).unlink(missing_ok=True)
            self._cursor_dirty = False
            return
        for name in list(self._sizes):
            if name != self._write_seg and self._acked.get(name, 0) >= self._sizes[name]:
                (self.dir / name).unlink(missing_ok=True)
                del self._sizes[name]
                self._acked.pop(name, None)

    # -- durability ------------------------------------------------------------------------------------------
    def maybe_sync(self) -> None:
        if (self._dirty or self._cursor_dirty) and time.monotonic() - self._last_fsync >= self.fsync_interval_s:
            self.sync()

    def sync(self) -> None:
        if self._write_fd is not None and self._dirty:
            os.fsync(self._write_fd)
        self._dirty = False
        if self._cursor_dirty:
            self._write_cursor(fsync=True)
        self._last_fsync = time.monotonic()

    def _write_cursor(self, fsync: bool) -> None:
        path = self.dir / CURSOR_NAME
        tmp = path.with_suffix(".tmp")
        acked = {name: off for name, off in self._acked.items() if name in self._sizes and off > 0}
        with open(tmp, "wb") as f:
            f.write(orjson.dumps({"acked": acked}))
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        self._cursor_dirty = False

    def _fsync_dir(self) -> None:
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _close_writer(self) -> None:
        if self._write_fd is not None:
            if self._dirty:
                os.fsync(self._write_fd)
                self._dirty = False
            os.close(self._write_fd)
        self._write_fd = None
        self._write_seg = ""

    def close(self) -> None:
        self.sync()
        self._close_writer()
