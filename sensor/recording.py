"""Capture files: `--record FILE` writes what the sensor captures as an Avro object container file of Event
records; `--replay FILE` reads one back and feeds it to the sensor as if it were live (Falco's capture
files and replay engine). Replays are how tests run on machines without eBPF.

A recording is self-describing (the schema is in the file header) and carries metadata: the host and
sensor it came from and when it started. Files of EventBatch records (e.g. copied off the events topic)
replay too: their events are fed in order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import IO, Any

import fastavro

from schemas.codec import SCHEMA_DIR

EVENT_SCHEMA_NAME = "io.peregrine.events.Event"
BATCH_SCHEMA_NAME = "io.peregrine.events.EventBatch"


class RecordingError(ValueError):
    """A capture file that cannot be read or written, named by its path."""


@cache
def event_schema() -> Any:
    """The Event record of the wire contract, on its own (a recording is a stream of events)."""
    batch = json.loads((SCHEMA_DIR / "event_batch.avsc").read_text())
    events = next(f for f in batch["fields"] if f["name"] == "events")
    schema = dict(events["type"]["items"])
    schema["namespace"] = batch["namespace"]
    return fastavro.parse_schema(schema)


class Recorder:
    """Appends captured events to an Avro container file; blocks are flushed as they fill (and at close)."""

    def __init__(self, path: Path, hostname: str, sensor_id: str, codec: str = "deflate") -> None:
        self.path = path
        self.events = 0
        try:
            self._file: IO[bytes] = open(path, "wb")
        except OSError as exc:
            raise RecordingError(f"{path}: cannot write the recording: {exc.strerror}") from exc
        metadata = {"peregrine.hostname": hostname, "peregrine.sensor_id": sensor_id,
                    "peregrine.started_ns": str(time.time_ns())}
        self._writer = fastavro.write.Writer(self._file, event_schema(), codec=codec, metadata=metadata,
                                             sync_interval=1 << 20)

    def write(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self._writer.write(event)
        self.events += len(events)

    def close(self) -> None:
        self._writer.flush()
        self._file.close()


def recording_metadata(path: Path) -> dict[str, str]:
    with _open(path) as f:
        reader = fastavro.reader(f)
        return {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in reader.metadata.items()
                if k.startswith("peregrine.")}


def read_recording(path: Path, chunk: int = 4096) -> Iterator[list[dict[str, Any]]]:
    """Events of a recording in capture order, in lists of up to `chunk`."""
    with _open(path) as f:
        try:
            reader = fastavro.reader(f)
        except Exception as exc:  # fastavro raises ValueError and others on a non-Avro file
            raise RecordingError(f"{path}: not an Avro capture file ({exc})") from exc
        name = reader.writer_schema.get("name", "") if isinstance(reader.writer_schema, dict) else ""
        out: list[dict[str, Any]] = []
        position = 0
        try:
            for record in reader:
                position += 1
                if name.endswith("EventBatch"):
                    out.extend(record["events"])  # type: ignore[index, call-overload, arg-type]
                elif isinstance(record, dict):
                    out.append(record)
                if len(out) >= chunk:
                    yield out
                    out = []
        except (EOFError, ValueError) as exc:
            raise RecordingError(f"{path}: record {position}: truncated or corrupt capture file ({exc})") from exc
        if out:
            yield out


def _open(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read the recording: {exc.strerror}") from exc
