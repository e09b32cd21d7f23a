"""Exponential backoff with jitter, so many connectors recovering at once do not hit a destination in step."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from outputs.config import RetryPolicy


@dataclass
class Backoff:
    policy: RetryPolicy
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int) -> float:
        """Equal jitter: half the capped exponential delay, plus a random half; never below half the cap."""
        cap = min(self.policy.max_backoff, self.policy.initial_backoff * (2 ** min(attempt, 32)))
        return cap / 2 + self.rng.uniform(0, cap / 2)
