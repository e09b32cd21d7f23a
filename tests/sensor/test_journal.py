"""The spill journal: order, bound, acknowledgement, restart replay, torn tails, in-flight batches put in front."""

from __future__ import annotations

from pathlib import Path

from sensor.batcher import SealedBatch
from sensor.journal import Journal


def batch(seq: int, size: int = 1000) -> SealedBatch:
    return SealedBatch(batch_seq=seq, first_seq=seq * 10, n_events=10, payload=bytes([seq % 251]) * size,
                       types={"openat": 7, "close": 3}, first_ts_ns=1_700_000_000_000_000_000 + seq)


def drain(journal: Journal, ack: bool = True) -> list[int]:
    seqs = []
    while (entry := journal.next_unsent()) is not None:
        seqs.append(entry.batch.batch_seq)
        if ack:
            journal.ack(entry)
    return seqs


def test_batches_come_back_in_order_with_their_content(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j", max_bytes=1 << 20, segment_bytes=4096)
    for seq in range(20):
        assert j.append(batch(seq))
    assert len(j.segments) > 3, "small segments roll"
    entry = j.next_unsent()
    assert entry is not None
    assert entry.batch == batch(0)
    j.ack(entry)
    assert drain(j) == list(range(1, 20))
    assert j.empty and j.pending_bytes == 0
    assert not list((tmp_path / "j").glob("*.seg")), "delivered segments are deleted"


def test_full_journal_refuses_new_batches_and_keeps_the_old(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j", max_bytes=10_000, segment_bytes=4096)
    accepted = [seq for seq in range(30) if j.append(batch(seq))]
    assert accepted == list(range(len(accepted))) and 0 < len(accepted) < 30
    assert j.pending_bytes <= 10_000
    assert drain(j) == accepted
    assert j.append(batch(100)), "space is free again once delivered"


def test_a_restart_replays_what_was_not_acknowledged(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j", max_bytes=1 << 20, segment_bytes=4096)
    for seq in range(12):
        j.append(batch(seq))
    for _ in range(5):  # 5 delivered, 2 more sent but unacknowledged when the sensor stops
        entry = j.next_unsent()
        assert entry is not None
        j.ack(entry)
    j.next_unsent()
    j.next_unsent()
    j.close()

    again = Journal(tmp_path / "j", max_bytes=1 << 20, segment_bytes=4096)
    assert drain(again, ack=False) == list(range(5, 12))
    again.rewind()
    assert drain(again) == list(range(5, 12))


def test_rewind_hands_out_unacknowledged_batches_again(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j", max_bytes=1 << 20)
    for seq in range(4):
        j.append(batch(seq))
    first = j.next_unsent()
    assert first is not None
    j.ack(first)
    assert drain(j, ack=False) == [1, 2, 3]
    j.rewind()
    assert drain(j) == [1, 2, 3]


def test_a_torn_tail_is_truncated_and_the_rest_replays(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j", max_bytes=1 << 20)
    for seq in range(3):
        j.append(batch(seq))
    j.close()
    seg = next((tmp_path / "j").glob("*.seg"))
    with open(seg, "ab") as f:
        f.write(b"PGJ1\x00\x01partial record from a power loss")
    assert drain(Journal(tmp_path / "j", max_bytes=1 << 20)) == [0, 1, 2]


def test_in_flight_batches_journaled_at_stop_replay_first(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j", max_bytes=1 << 20, segment_bytes=4096)
    for seq in range(10, 16):  # spilled while 5..9 were held by the producer
        j.append(batch(seq))
    assert j.next_unsent() is not None  # 10 handed to the producer, not acknowledged
    assert j.prepend([batch(s) for s in (7, 5, 9, 6, 8)]) == 5
    j.close()
    assert drain(Journal(tmp_path / "j", max_bytes=1 << 20)) == list(range(5, 16))


def test_partially_delivered_segment_and_front_segment_survive_restart(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j", max_bytes=1 << 20, segment_bytes=1 << 20)
    for seq in range(10, 14):
        j.append(batch(seq))
    entry = j.next_unsent()
    assert entry is not None
    j.ack(entry)  # 10 delivered
    # The cursor keeps a position per segment: a front segment does not make delivered records replay.
    j.prepend([batch(8), batch(9)])
    j.close()
    assert drain(Journal(tmp_path / "j", max_bytes=1 << 20)) == [8, 9, 11, 12, 13]


def test_unread_gives_back_only_the_batch_that_could_not_be_sent(tmp_path: Path) -> None:
    j = Journal(tmp_path / "j", max_bytes=1 << 20)
    for seq in range(4):
        j.append(batch(seq))
    assert j.next_unsent() is not None and j.next_unsent() is not None  # 0 and 1 in flight
    refused = j.next_unsent()
    assert refused is not None and refused.batch.batch_seq == 2
    j.unread(refused)
    assert drain(j, ack=False) == [2, 3]


def test_a_journal_written_before_timestamps_were_kept_still_replays(tmp_path: Path) -> None:
    """Upgrading a sensor with batches on disk: the old records (a bare types map as metadata) read back, and their
    Kafka timestamp falls back to the send time."""
    import zlib

    import orjson

    from sensor.journal import HEADER, MAGIC, SCHEMA_BEFORE_JOURNALED, segment_name

    old = batch(3)
    types = orjson.dumps(old.types)
    body = types + old.payload
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / segment_name(3)).write_bytes(
        HEADER.pack(MAGIC, len(old.payload), zlib.crc32(body), 3, 30, 10, len(types)) + body)
    entry = Journal(tmp_path / "j", max_bytes=1 << 20).next_unsent()
    assert entry is not None and entry.batch.types == old.types and entry.batch.payload == old.payload
    assert entry.batch.first_ts_ns == 0
    assert entry.batch.schema == SCHEMA_BEFORE_JOURNALED  # what every sensor wrote before the journal kept it
