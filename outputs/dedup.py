"""Alerts already handled (same uuid) within a window are not sent again: replays and producer retries."""

from __future__ import annotations

from collections import OrderedDict


class Deduplicator:
    """Bounded memory: the oldest ids go first once the window passes or `max_entries` is reached."""

    def __init__(self, window_s: float, max_entries: int = 1_000_000) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen(self, uuid: str, now: float) -> bool:
        """True when `uuid` was recorded within the window; records it otherwise."""
        if self.window_s <= 0 or not uuid:
            return False
        self._expire(now)
        if uuid in self._seen:
            return True
        self._seen[uuid] = now
        return False

    def forget(self, uuid: str) -> None:
        """An alert that was not delivered after all (shutdown mid-retry) may come again."""
        self._seen.pop(uuid, None)

    def _expire(self, now: float) -> None:
        while self._seen:
            uuid, at = next(iter(self._seen.items()))
            if now - at < self.window_s and len(self._seen) < self.max_entries:
                break
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)
