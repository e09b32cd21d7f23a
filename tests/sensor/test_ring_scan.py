"""The ring buffer's record walk in C (sensor/ring_scan.c) finds the same records and the same consumer position
as the Python loop, over a ring laid out as the kernel's (the data area mapped twice, records wrapping, discarded
and still-busy records). tests/sensor/test_capture.py drains the real probe's ring through it."""

from __future__ import annotations

import random
import struct

import pytest

from sensor import ringbuf
from sensor.ringbuf import BUSY, DISCARD, scan_py

PAGE = 4096


def ring(size: int, records: list[tuple[int, int]], start: int) -> tuple[bytes, int, int]:
    """A producer page then the data area twice; records (payload length, flags) written from position `start`.
    Returns (mapping, cons, prod)."""
    data = bytearray(size)
    pos = start
    for length, flags in records:
        header = struct.pack("<II", length | flags, 0)
        for i, b in enumerate(header + bytes([length & 0xFF]) * length):
            data[(pos + i) % size] = b
        pos += (length + 15) & ~7
    return bytes(PAGE) + bytes(data) * 2, start, pos


def test_the_c_walk_is_built_here() -> None:
    assert ringbuf.c_scan is not None


@pytest.mark.parametrize("limit", [1, 3, 4096])
def test_same_records_and_position_as_the_python_loop(limit: int) -> None:
    size = 1 << 12
    rng = random.Random(limit)
    for _ in range(200):
        records = [(rng.randrange(1, 200), rng.choice([0, 0, 0, DISCARD])) for _ in range(rng.randrange(0, 12))]
        if records and rng.random() < 0.3:
            records[rng.randrange(len(records))] = (records[0][0], BUSY)
        mapping, cons, prod = ring(size, records, rng.randrange(0, 1 << 20) & ~7)
        assert ringbuf.c_scan is not None
        c = ringbuf.c_scan(mapping, PAGE, size - 1, cons, prod, limit)
        assert c == scan_py(mapping, PAGE, size - 1, cons, prod, limit)


def test_a_wrapping_record_is_found_whole_and_busy_stops_the_walk() -> None:
    size = 1 << 12
    mapping, cons, prod = ring(size, [(100, 0), (50, DISCARD), (300, 0), (20, BUSY), (20, 0)], size - 60)
    offsets, new_cons = ringbuf.scan(mapping, PAGE, size - 1, cons, prod, 4096)
    assert offsets == [PAGE + size - 60 + 8, PAGE + (size - 60 + 112 + 64) % size + 8]
    assert mapping[offsets[0]:offsets[0] + 100] == bytes([100]) * 100  # contiguous across the wrap
    assert new_cons == size - 60 + 112 + 64 + 312  # stopped at the busy record, past the discarded one


def test_a_header_outside_the_mapping_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside the mapping"):
        assert ringbuf.c_scan is not None
        ringbuf.c_scan(bytes(64), PAGE, (1 << 12) - 1, 0, 8, 10)
