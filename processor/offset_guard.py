"""Our own offset bookkeeping for the events topic, because Faust's cannot be trusted around rebalances.

Observed on the real broker (tests/pipeline/test_worker_fleet.py, kill -9 of one worker then a new one joining
while records flow): with Faust committing the events topic itself, every offset ended up committed yet the alerts
of one record never existed. faust-streaming acks a buffered message it skips after a generation change
(`streams.py`: "Skipping message ... generation_id", then `event.ack()` because `value is skipped_value`), so the
commit can move past a record nobody processed (the family of faust-streaming #596/#606/#502).

So the events topic is declared with `acks=False` (Faust never commits it) and this guard does, per partition:
  * knows the next offset to process (from the group's committed offset when the partition arrives);
  * drops a record below it (a replay already processed: a duplicate would only repeat the same alert ids);
  * on a record above it (a gap: something was skipped) fetches the missing records itself, with a plain
    client assigned to that partition, so the caller processes them first, in order. (Seeking Faust's consumer
    back does not work: its fetch loop drops records below the last offset it handed out, `_read_offset`.)
  * commits `next offset` only for records whose effects are acknowledged (`done`, after the worker's producer
    flush covering their alerts and changelog writes), once a second. Processing runs ahead of acknowledgement
    (`processed`), so the worker never waits for the broker between records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("peregrine.offsets")

ACCEPT, REPLAY, GAP = "accept", "replay", "gap"


@dataclass
class OffsetGuard:
    committed: Callable[[Any], Awaitable[int]]  # the group's committed offset (or the start) for a partition
    fetch: Callable[[Any, int, int], Awaitable[list[Any]]]  # records [start, end) of a partition, read directly
    commit: Callable[[dict[Any, int]], Awaitable[bool]]
    highwater: Callable[[Any], Awaitable[int]] | None = None  # a partition's end offset, asked of the broker
    next_offset: dict[Any, int] = field(default_factory=dict)  # next offset to process
    committable: dict[Any, int] = field(default_factory=dict)  # next offset whose predecessors are acknowledged
    dirty: set[Any] = field(default_factory=set)
    gaps: int = 0
    replays: int = 0
    frozen: bool = False
    epoch: int = 0  # bumped by every revocation: work started before it belongs to the next owner


    def freeze(self) -> None:
        """A send failed: nothing may commit any more (a later offset would cover the lost record)."""
        self.frozen = True
        self.dirty.clear()

    def forget(self) -> None:
        """On revocation: whatever we own next starts again from its committed offset."""
        self.next_offset.clear()
        self.committable.clear()
        self.dirty.clear()
        self.epoch += 1

    async def admit(self, tp: Any, offset: int) -> str:
        expected = self.next_offset.get(tp)
        if expected is None:
            expected = self.next_offset[tp] = await self.committed(tp)
        if offset == expected:
            return ACCEPT
        if offset < expected:
            self.replays += 1
            return REPLAY
        self.gaps += offset - expected
        log.warning("%s:%s: got offset %s, expected %s: %s records were skipped by the consumer, fetching them",
                    tp.topic, tp.partition, offset, expected, offset - expected)
        return GAP

    async def missing(self, tp: Any, offset: int) -> list[Any]:
        """After GAP: the skipped records, [next offset, offset), to process (in order) before this one."""
        return await self.fetch(tp, self.next_offset[tp], offset)

    def processed(self, tp: Any, offset: int, epoch: int | None = None) -> None:
        """The record at `offset` went through state and rules (in `epoch`); its sends may still be in flight."""
        if epoch is None or epoch == self.epoch:
            self.next_offset[tp] = offset + 1

    def done(self, tp: Any, offset: int, epoch: int | None = None) -> None:
        """The record at `offset` is fully processed: its alerts and state changes are acknowledged."""
        if (epoch is None or epoch == self.epoch) and tp in self.next_offset and not self.frozen:
            self.committable[tp] = offset + 1
            self.dirty.add(tp)

    async def flush(self) -> None:
        if not self.dirty or self.frozen:
            return
        offsets = {tp: self.committable[tp] for tp in self.dirty if tp in self.committable}
        self.dirty.clear()
        try:
            ok = await self.commit(offsets)
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except Exception:
            log.warning("committing %s failed; retried next time", offsets, exc_info=True)
            ok = False
        if not ok:
            log.warning("commit of %s refused (rebalancing?); retried next time", offsets)
            self.dirty.update(tp for tp in offsets if tp in self.committable)
        else:
            log.info("committed %s", {f"{tp.topic}:{tp.partition}": o for tp, o in offsets.items()})
