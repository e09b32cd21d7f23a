"""Which offsets may be committed: per partition, up to (not past) the oldest record not yet delivered."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from outputs.model import SourceOffset


class OffsetTracker:
    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], set[int]] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}

    def track(self, src: SourceOffset) -> None:
        tp = (src.topic, src.partition)
        self._pending.setdefault(tp, set()).add(src.offset)
        self._next[tp] = max(self._next.get(tp, 0), src.offset + 1)

    def done(self, src: SourceOffset) -> None:
        pending = self._pending.get((src.topic, src.partition))
        if pending is not None:
            pending.discard(src.offset)

    def outstanding(self) -> int:
        return sum(len(p) for p in self._pending.values())

    def commit_points(self) -> list[TopicPartition]:
        """Offsets to commit now (next record to read), only where they moved since the last commit."""
        points = []
        for tp, nxt in self._next.items():
            pending = self._pending.get(tp)
            offset = min(pending) if pending else nxt
            if self._committed.get(tp) != offset:
                points.append(TopicPartition(tp[0], tp[1], offset))
        return points

    def committed(self, points: list[TopicPartition]) -> None:
        for p in points:
            self._committed[(p.topic, p.partition)] = p.offset

    def forget(self, partitions: list[TopicPartition]) -> None:
        """Partitions taken away by a rebalance: their new owner restarts from the committed offset."""
        for p in partitions:
            tp = (p.topic, p.partition)
            self._pending.pop(tp, None)
            self._next.pop(tp, None)
            self._committed.pop(tp, None)
