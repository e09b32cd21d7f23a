"""Consumer side of a BPF ring buffer map, read straight from its mmap'ed pages.

bcc's ring_buffer__poll calls back into Python once per record through ctypes; here Python reads the
producer position once, has every committed record's offset found in place (ring_scan.c walks the headers) and
frees the whole batch with one store of the consumer position: the buffer is touched once per batch.
Layout (kernel/bpf/ringbuf.c): page 0 = consumer position (rw), page 1 = producer position, then the data
area mapped twice so a record that wraps is contiguous. Each record: u32 len (bit 31 busy, bit 30 discard),
u32 page offset, data padded to 8 bytes.
"""

from __future__ import annotations

import mmap
import select
import struct
from collections.abc import Callable

try:  # the per-record walk in C (sensor/ring_scan.c), built by `pip install`; the Python loop below otherwise
    from sensor._ring_scan import scan as c_scan  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - the test suite asserts it is built here
    c_scan = None

BUSY = 1 << 31
DISCARD = 1 << 30
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def scan(view: mmap.mmap | bytes, base: int, mask: int, cons: int, prod: int, limit: int) -> tuple[list[int], int]:
    """The data offsets of up to `limit` committed, not discarded records from `cons` towards `prod`, and the
    consumer position after them (past discarded ones too); stops at a record still being written."""
    if c_scan is not None:
        return c_scan(view, base, mask, cons, prod, limit)  # type: ignore[no-any-return]
    return scan_py(view, base, mask, cons, prod, limit)


def scan_py(view: mmap.mmap | bytes, base: int, mask: int, cons: int, prod: int,
            limit: int) -> tuple[list[int], int]:
    unpack = _U32.unpack_from
    offsets: list[int] = []
    while cons < prod and len(offsets) < limit:
        off = base + (cons & mask)
        hlen = unpack(view, off)[0]
        if hlen & BUSY:
            break
        if not hlen & DISCARD:
            offsets.append(off + 8)
        cons += ((hlen & ~(BUSY | DISCARD)) + 15) & ~7
    return offsets, cons


class RingReader:
    def __init__(self, map_fd: int, size: int) -> None:
        page = mmap.PAGESIZE
        self.size = size
        self.mask = size - 1
        self._cons = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._prod = mmap.mmap(map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        self.view = memoryview(self._prod)
        self.data_base = page
        self._epoll = select.epoll()
        self._epoll.register(map_fd, select.EPOLLIN)

    def wait(self, timeout_ms: int) -> None:
        """Block until the kernel signals new data (or the timeout)."""
        self._epoll.poll(max(timeout_ms, 0) / 1000.0 if timeout_ms >= 0 else -1, 1)

    def pending_bytes(self) -> int:
        return _U64.unpack_from(self._prod, 0)[0] - _U64.unpack_from(self._cons, 0)[0]

    def drain(self, handle: Callable[[mmap.mmap, list[int]], None], max_records: int = 1 << 20,
              chunk: int = 4096) -> int:
        """Calls handle(mapping, offsets) with the data offsets of committed records, `chunk` at a time, and
        frees each chunk's space right after. Returns the number of records."""
        cons = _U64.unpack_from(self._cons, 0)[0]
        prod = _U64.unpack_from(self._prod, 0)[0]
        # The mmap itself, not a memoryview: struct unpacks from it in place and its slices are bytes,
        # which decode faster than memoryview slices.
        view, base, mask = self._prod, self.data_base, self.mask
        total = 0
        while cons < prod and total < max_records:
            limit = min(chunk, max_records - total)
            offsets, cons = scan(view, base, mask, cons, prod, limit)
            if not offsets:
                _U64.pack_into(self._cons, 0, cons)
                break
            handle(view, offsets)
            total += len(offsets)
            _U64.pack_into(self._cons, 0, cons)  # the chunk is decoded (copied out): its space is free again
            if len(offsets) < limit:
                break
        return total

    def close(self) -> None:
        self._epoll.close()
        self.view.release()
        self._prod.close()
        self._cons.close()
