"""What travels between the framework's stages: an alert and the Kafka records it answers for."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Alert = dict[str, Any]


@dataclass(frozen=True, order=True)
class SourceOffset:
    """A record on the alerts topic; committed only once every alert built from it is delivered."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass
class Pending:
    """One alert to deliver, and every record it stands for (several once aggregated)."""

    alert: Alert
    sources: list[SourceOffset] = field(default_factory=list)

    @property
    def uuid(self) -> str:
        return str(self.alert.get("uuid", ""))


class DeliveryError(Exception):
    """A destination refused or did not answer; `retryable=False` sends the alert straight to the dead-letter topic."""

    def __init__(self, reason: str, retryable: bool = True, rejected: dict[int, str] | None = None,
                 delivered: set[int] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        # Concurrent sends: the indexes that did reach the destination; only the others are retried.
        self.delivered = delivered or set()
        # Bulk APIs answer per item: the indexes (in the batch sent) the destination refused for good, and why.
        # With retryable=False and `rejected` set, every other alert of the batch counts as delivered.
        self.rejected = rejected
