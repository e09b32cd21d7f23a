"""Batching: no Kafka record above the cap, every event once and in order, numbers continuous across restarts."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from schemas.codec import decode_batch
from sensor.batcher import Batcher, BatchLimits, SealedBatch, SeqStore, record_cap
from settings.kafka_clients import EVENTHUBS_MAX_RECORD_BYTES


def make_event(i: int, *, path_len: int = 20, argv: int = 0, type_: str = "openat") -> dict[str, Any]:
    """A syscall event as the capture hands it over (contract fields), numbered by i through tid and ts."""
    proc = None
    if argv:
        proc = {"exe": "/bin/sh", "exepath": "/bin/sh", "args": [f"arg{j}-" + "x" * 40 for j in range(argv)],
                "args_truncated": False, "cwd": "/root", "tty": 0, "sid": 1, "pgid": 1, "vpgid": 1, "vpid": i,
                "start_ts": 0, "env": [], "container_id": "", "cap_permitted": 0, "cap_effective": 0, "cap_inheritable": 0,
                "exe_from_memfd": False, "exe_upper_layer": False, "exe_ino_ctime": 0, "exe_ino_mtime": 0}
    return {"ts": 1_700_000_000_000_000_000 + i, "type": type_, "tid": i, "pid": i, "ppid": 1, "uid": 0, "gid": 0,
            "euid": 0, "loginuid": -1, "comm": "worker", "res": 3,
            "args": {"name": "/tmp/" + "p" * path_len + f"/{i}", "flags": "524288", "fd": "3", "dirfd": "-100"},
            "proc": proc}


def decode_all(batches: list[SealedBatch]) -> list[dict[str, Any]]:
    return [decode_batch(b.payload) for b in batches]


def test_no_record_above_the_cap_and_every_event_once_in_order(tmp_path: Path) -> None:
    rng = random.Random(4)
    events = [make_event(i, path_len=rng.choice([5, 200, 3000]), argv=rng.choice([0, 0, 32])) for i in range(3000)]
    cap = 64 << 10
    batcher = Batcher("h1", "h1/boot", BatchLimits(max_events=4096, max_bytes=cap, linger_ms=100),
                      SeqStore(tmp_path / "seq.json"))
    sealed: list[SealedBatch] = []
    for start in range(0, len(events), 333):
        sealed += batcher.add(events[start:start + 333])
    sealed += batcher.flush()

    assert len(sealed) > 5, "the cap must have split the stream"
    assert max(len(b.payload) for b in sealed) <= cap
    decoded = decode_all(sealed)
    assert [e["tid"] for d in decoded for e in d["events"]] == list(range(3000))
    assert [d["events"] for d in decoded][0][0] == events[0]


def test_batch_size_limit_by_count(tmp_path: Path) -> None:
    batcher = Batcher("h1", "s", BatchLimits(max_events=100, max_bytes=900_000, linger_ms=100), SeqStore(tmp_path / "s"))
    sealed = batcher.add([make_event(i) for i in range(1050)]) + batcher.flush()
    assert [b.n_events for b in sealed] == [100] * 10 + [50]
    assert all(b.types == {"openat": b.n_events} for b in sealed)


def test_cap_stays_below_the_event_hubs_record_limit() -> None:
    assert record_cap(5_000_000, EVENTHUBS_MAX_RECORD_BYTES) < 1_046_528
    assert record_cap(900_000, 1_000_000) == 900_000


def test_sequence_numbers_are_continuous_and_survive_a_restart(tmp_path: Path) -> None:
    limits = BatchLimits(max_events=64, max_bytes=900_000, linger_ms=100)
    first = Batcher("h1", "s", limits, SeqStore(tmp_path / "seq.json"))
    a = first.add([make_event(i) for i in range(200)]) + first.flush()
    first.seq.close()
    second = Batcher("h1", "s", limits, SeqStore(tmp_path / "seq.json"))  # the sensor restarted
    b = second.add([make_event(i) for i in range(100)]) + second.flush()

    batches = decode_all(a + b)
    assert [d["batch_seq"] for d in batches] == list(range(len(batches)))
    expected_first = 0
    for d in batches:
        assert d["first_seq"] == expected_first
        expected_first += len(d["events"])
    assert expected_first == 300


def test_an_event_larger_than_the_cap_is_dropped_and_counted(tmp_path: Path) -> None:
    dropped: list[int] = []
    batcher = Batcher("h1", "s", BatchLimits(max_events=10, max_bytes=4096, linger_ms=100), SeqStore(tmp_path / "s"),
                      on_oversize=lambda event, size: dropped.append(event["tid"]))
    sealed = batcher.add([make_event(0), make_event(1, path_len=10_000), make_event(2)]) + batcher.flush()
    assert dropped == [1] and batcher.oversize_events == 1
    assert [e["tid"] for d in decode_all(sealed) for e in d["events"]] == [0, 2]
    assert [d["first_seq"] for d in decode_all(sealed)] == [0, 1], "a dropped event takes no sequence number"


def test_linger_seals_a_partial_batch(tmp_path: Path) -> None:
    batcher = Batcher("h1", "s", BatchLimits(max_events=4096, max_bytes=900_000, linger_ms=100), SeqStore(tmp_path / "s"))
    assert batcher.add([make_event(0)], now=10.0) == []
    assert not batcher.due(now=10.05)
    assert batcher.due(now=10.1)
    assert batcher.time_to_due_ms(now=10.04) == pytest.approx(60.0)
    assert [b.n_events for b in batcher.flush()] == [1]
    assert not batcher.due(now=99.0)


def test_sequence_numbers_survive_a_crash_a_torn_write_and_the_older_format(tmp_path: Path) -> None:
    limits = BatchLimits(max_events=10, max_bytes=900_000, linger_ms=100)
    crashed = Batcher("h1", "s", limits, SeqStore(tmp_path / "seq.state"))
    crashed.add([make_event(i) for i in range(35)])  # 3 batches sealed, then the process dies: no close()
    after_crash = SeqStore(tmp_path / "seq.state")
    assert (after_crash.next_batch_seq, after_crash.next_event_seq) == (3, 30)
    after_crash.advance(10)
    after_crash.advance(10)  # (5, 50) in one slot, (4, 40) in the other
    # A power cut tore the newest slot's write: the other slot, one batch older, is read.
    raw = bytearray((tmp_path / "seq.state").read_bytes())
    newest = max((0, 32), key=lambda off: SeqStore.SLOT.unpack_from(raw, off)[0])
    raw[newest + 10] ^= 0xFF
    (tmp_path / "seq.state").write_bytes(bytes(raw))
    torn = SeqStore(tmp_path / "seq.state")
    assert (torn.next_batch_seq, torn.next_event_seq) == (4, 40)
    torn.close()
    # A sensor upgraded in place finds the JSON file of the older release and carries on from it.
    (tmp_path / "seq.json").write_text('{"next_event_seq": 1234, "next_batch_seq": 56}')
    upgraded = SeqStore(tmp_path / "new.state", legacy=tmp_path / "seq.json")
    assert (upgraded.next_batch_seq, upgraded.next_event_seq) == (56, 1234) and not (tmp_path / "seq.json").exists()
    upgraded.advance(4)
    upgraded.close()
    assert (SeqStore(tmp_path / "new.state").next_batch_seq, SeqStore(tmp_path / "new.state").next_event_seq) == (57, 1238)


def test_a_slow_disk_sync_never_holds_up_sealing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fdatasync on ext4 can wait for other files' dirty data; it runs on the store's own thread, every interval."""
    import os
    import threading
    import time

    synced_on: list[str] = []
    real_fdatasync = os.fdatasync

    def slow_fdatasync(fd: int) -> None:
        synced_on.append(threading.current_thread().name)
        time.sleep(0.3)
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    store = SeqStore(tmp_path / "seq.state", fsync_interval_s=0.1)
    slowest = 0.0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        started = time.monotonic()
        store.advance(10)
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.005)
    store.close()
    assert slowest < 0.1, f"advance() waited {slowest:.2f} s"
    assert synced_on.count("peregrine-seq-sync") >= 2 and synced_on[-1] == "MainThread"  # and the last, at close
    assert SeqStore(tmp_path / "seq.state").next_batch_seq == store.next_batch_seq


def test_unreadable_sequence_state_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "seq.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"seq.json: unreadable sequence state"):
        SeqStore(tmp_path / "seq.json")
    (tmp_path / "seq.state").write_bytes(b"\x07" * 64)  # neither slot intact
    with pytest.raises(ValueError, match=r"seq.state: unreadable sequence state \(no intact slot\)"):
        SeqStore(tmp_path / "seq.state")
