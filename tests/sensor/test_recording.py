"""Capture files: what is recorded replays identically, in order; bad files fail with their path named."""

from __future__ import annotations

import time
from pathlib import Path

import fastavro
import pytest

from schemas.codec import event_batch_schema
from sensor.agent import ReplaySource
from sensor.recording import Recorder, RecordingError, read_recording, recording_metadata
from tests.sensor.test_batcher import make_event


def record(path: Path, events: list[dict]) -> None:
    rec = Recorder(path, "rec-host", "rec-host/boot")
    for start in range(0, len(events), 100):
        rec.write(events[start:start + 100])
    rec.close()


def test_a_recording_replays_every_event_unchanged_and_in_order(tmp_path: Path) -> None:
    events = [make_event(i, argv=3 if i % 7 == 0 else 0, type_="execve" if i % 7 == 0 else "openat")
              for i in range(1000)]
    record(tmp_path / "cap.avro", events)
    replayed = [e for chunk in read_recording(tmp_path / "cap.avro", chunk=256) for e in chunk]
    assert replayed == events
    meta = recording_metadata(tmp_path / "cap.avro")
    assert meta["peregrine.hostname"] == "rec-host"


def test_files_of_event_batches_replay_their_events(tmp_path: Path) -> None:
    batches = [{"hostname": "h", "sensor_id": "s", "batch_seq": b, "first_seq": b * 10,
                "events": [make_event(b * 10 + i) for i in range(10)]} for b in range(5)]
    with open(tmp_path / "topic.avro", "wb") as f:
        fastavro.writer(f, event_batch_schema(), batches)
    replayed = [e["tid"] for chunk in read_recording(tmp_path / "topic.avro") for e in chunk]
    assert replayed == list(range(50))


def test_not_a_capture_file_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    with pytest.raises(RecordingError, match="notes.txt: not an Avro capture file"):
        list(read_recording(bad))
    with pytest.raises(RecordingError, match="missing.avro: cannot read"):
        list(read_recording(tmp_path / "missing.avro"))


def test_paced_replay_keeps_the_recorded_timing(tmp_path: Path) -> None:
    base = time.time_ns()
    events = [dict(make_event(i), ts=base + i * 50_000_000) for i in range(5)]  # 50 ms apart
    record(tmp_path / "cap.avro", events)
    source = ReplaySource(tmp_path / "cap.avro", speed=1.0)
    source.start()
    first = source.poll(0)
    assert [e["tid"] for e in first] == [0], "later events are not due yet"
    got = list(first)
    while not source.finished:
        got += source.poll(100)
    assert [e["tid"] for e in got] == [0, 1, 2, 3, 4]
