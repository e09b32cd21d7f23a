"""The worker's own offset bookkeeping: only contiguous, fully processed records are ever committed; a record past
skipped ones makes it fetch those first; a replay of a processed record is dropped. (The fleet test and the two-worker
benchmark show it on the broker: Faust skips records around rebalances.)"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from processor.offset_guard import ACCEPT, GAP, REPLAY, OffsetGuard


class TP(NamedTuple):
    topic: str
    partition: int


def guard_with(committed: int) -> tuple[OffsetGuard, list[tuple[str, Any]]]:
    calls: list[tuple[str, Any]] = []

    async def get_committed(tp: TP) -> int:
        calls.append(("committed", tp))
        return committed

    async def fetch(tp: TP, start: int, end: int) -> list[int]:
        calls.append(("fetch", (tp, start, end)))
        return list(range(start, end))

    async def commit(offsets: dict[TP, int]) -> bool:
        calls.append(("commit", dict(offsets)))
        return True

    return OffsetGuard(get_committed, fetch, commit), calls


def finish(guard: OffsetGuard, tp: TP, offset: int) -> None:
    guard.processed(tp, offset)
    guard.done(tp, offset)


def test_skipped_records_are_reread_before_anything_past_them_commits() -> None:
    tp = TP("events", 3)

    async def scenario() -> list[tuple[str, Any]]:
        guard, calls = guard_with(committed=10)
        assert await guard.admit(tp, 10) == ACCEPT
        finish(guard, tp, 10)
        await guard.flush()
        # Faust hands us 13: 11 and 12 were skipped (acked unprocessed around a rebalance).
        assert await guard.admit(tp, 13) == GAP
        await guard.flush()  # nothing new is processed yet: nothing past 11 commits
        for offset in await guard.missing(tp, 13):
            finish(guard, tp, offset)
        finish(guard, tp, 13)
        assert await guard.admit(tp, 12) == REPLAY  # Faust re-delivering later changes nothing
        assert await guard.admit(tp, 14) == ACCEPT
        await guard.flush()
        return calls

    calls = asyncio.run(scenario())
    assert [c for c in calls if c[0] == "fetch"] == [("fetch", (tp, 11, 13))]
    assert [c[1] for c in calls if c[0] == "commit"] == [{tp: 11}, {tp: 14}]


def test_after_a_revocation_the_next_record_starts_from_the_groups_committed_offset() -> None:
    tp = TP("events", 0)

    async def scenario() -> list[tuple[str, Any]]:
        guard, calls = guard_with(committed=5)
        assert await guard.admit(tp, 5) == ACCEPT
        finish(guard, tp, 5)
        guard.forget()
        assert await guard.admit(tp, 5) == ACCEPT  # re-asked: the committed offset is still 5
        await guard.flush()  # nothing done since the revocation: nothing to commit
        return calls

    calls = asyncio.run(scenario())
    assert [c[0] for c in calls] == ["committed", "committed"]


def test_processed_but_unacknowledged_records_do_not_commit() -> None:
    tp = TP("events", 1)

    async def scenario() -> list[tuple[str, Any]]:
        guard, calls = guard_with(committed=0)
        for offset in range(3):
            assert await guard.admit(tp, offset) == ACCEPT
            guard.processed(tp, offset)
        await guard.flush()  # in flight: nothing to commit
        guard.done(tp, 0)
        guard.done(tp, 1)
        await guard.flush()
        return calls

    calls = asyncio.run(scenario())
    assert [c[1] for c in calls if c[0] == "commit"] == [{tp: 2}]


def test_a_frozen_guard_commits_nothing_more() -> None:
    tp = TP("events", 2)

    async def scenario() -> list[tuple[str, Any]]:
        guard, calls = guard_with(committed=0)
        assert await guard.admit(tp, 0) == ACCEPT
        guard.processed(tp, 0)
        guard.freeze()  # the send of record 0's alerts failed
        assert await guard.admit(tp, 1) == ACCEPT
        finish(guard, tp, 1)
        await guard.flush()
        return calls

    assert [c for c in asyncio.run(scenario()) if c[0] == "commit"] == []
