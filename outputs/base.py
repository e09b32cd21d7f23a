"""The contract every output implements; the framework owns filtering, retries, offsets and dead letters."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from outputs.model import Alert


@dataclass
class NoOptions:
    pass


class Output(ABC):
    """`send` returns once the destination acknowledged every alert, or raises DeliveryError (none counted sent)."""

    type_name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    # Alerts per `send` call: bulk APIs take a batch; per-alert APIs as many as they send concurrently.
    batch_max: int = 1

    def __init__(self, name: str, options: Any) -> None:
        self.name = name
        self.options = options

    async def start(self) -> None:
        """Open connections; called in the output's own event loop."""
        return None

    @abstractmethod
    async def send(self, alerts: list[Alert]) -> None: ...

    async def close(self) -> None:
        """Release connections and files."""
        return None
