"""Consumer side of a BPF ring buffer map, read straight from its mmap'ed pages.

bcc's ring_buffer__poll calls back into Python once per record through ctypes; here Python reads the
producer position once, walks every committed record in place (struct unpacks from the mapping) and frees the
whole batch with one store of the consumer position: the buffer is touched once per batch.
Layout (kernel/bpf/ringbuf.c): page 0 = consumer position (rw), page 1 = producer position, then the data
area mapped twice so a record that wraps is contiguous. Each record: u32 len (bit 31 busy, bit 30 discard),
u32 page offset, data padded to 8 bytes.
"""

from __future__ import annotations

import mmap
import select
import struct
from collections.abc import Callable

BUSY = 1 << 31
DISCARD = 1 << 30
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


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
        view, base, mask, unpack = self._prod, self.data_base, self.mask, _U32.unpack_from
        total = 0
        while cons < prod and total < max_records:
            offsets: list[int] = []
            limit = min(chunk, max_records - total)
            while cons < prod and len(offsets) < limit:
                off = base + (cons & mask)
                hlen = unpack(view, off)[0]
                if hlen & BUSY:
                    break
                if not hlen & DISCARD:
                    offsets.append(off + 8)
                cons += ((hlen & ~(BUSY | DISCARD)) + 15) & ~7
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
