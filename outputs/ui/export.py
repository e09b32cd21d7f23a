"""Export of the current filter as JSON or CSV, streamed; CSV cells are made safe for spreadsheets."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

CSV_COLUMNS = ("time", "priority", "rule", "hostname", "source", "tags", "output", "uuid", "output_fields")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str:
    """OWASP CSV-injection rule: a cell a spreadsheet would read as a formula is prefixed with a quote."""
    if isinstance(value, (list, dict)):
        text = orjson.dumps(value).decode() if isinstance(value, dict) else ",".join(map(str, value))
    else:
        text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_chunks(alerts: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for n, alert in enumerate(alerts, 1):
        writer.writerow([csv_cell(alert.get(col)) for col in CSV_COLUMNS])
        if n % 500 == 0:
            yield buf.getvalue().encode()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode()


def json_chunks(alerts: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    """A JSON array, one alert per line, so large exports stream instead of building one document."""
    yield b"["
    for n, alert in enumerate(alerts):
        yield (b",\n" if n else b"\n") + orjson.dumps(alert)
    yield b"\n]\n"
