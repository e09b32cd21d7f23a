"""Shared pieces of the sensor tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sensor.capture import Capture, CaptureError


def started_capture(event_types: set[str] | None, argv_max: int = 8, **options: Any) -> Iterator[Capture]:
    """A started capture for a module's tests (skipped where eBPF is unavailable), closed after them."""
    c = Capture(event_types, argv_max=argv_max, **options)
    try:
        c.start()
    except CaptureError as exc:
        pytest.skip(f"eBPF unavailable: {exc}")
    try:
        yield c
    finally:
        c.close()
