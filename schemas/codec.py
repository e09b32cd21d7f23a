"""The wire contract: Avro event batches (schemaless + fingerprint header) and JSON alerts (orjson).

Batches are written and read by C code specialised for the current schema (batch_writer.c, batch_reader.c) where
it was built, and by fastavro otherwise: for records written with older schemas (history/), for anything the C
code refuses (fastavro's error is the reference), and where no compiler was at hand."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import orjson

SCHEMA_DIR = Path(__file__).resolve().parent
HISTORY_DIR = SCHEMA_DIR / "history"  # every EventBatch schema ever released, named by fingerprint
SCHEMA_HEADER = "peregrine.schema"


class DecodeError(ValueError):
    """A record that does not decode; the caller names topic:partition:offset and dead-letters it."""


@cache
def event_batch_schema() -> Any:
    raw = json.loads((SCHEMA_DIR / "event_batch.avsc").read_text())
    return fastavro.parse_schema(raw)


def _fingerprint(raw: Any) -> str:
    canonical = json.dumps(raw, sort_keys=True)
    return "EventBatch:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


@cache
def event_batch_fingerprint() -> str:
    return _fingerprint(json.loads((SCHEMA_DIR / "event_batch.avsc").read_text()))


@cache
def writer_schemas() -> dict[str, Any]:
    """Every EventBatch schema a sensor may still be writing, by fingerprint: this one and those in history/.

    During a rolling upgrade old sensors keep producing; their records decode against the current schema by Avro's
    resolution rules (EVOLUTION.md), which needs the schema they were written with."""
    out: dict[str, Any] = {}
    for path in sorted(HISTORY_DIR.glob("event_batch-*.avsc")):
        raw = json.loads(path.read_text())
        out[_fingerprint(raw)] = fastavro.parse_schema(raw)
    out[event_batch_fingerprint()] = event_batch_schema()
    return out


def schema_fingerprint(headers: Any) -> str | None:
    """The `peregrine.schema` header among a record's headers: confluent-kafka's list of (key, bytes) pairs,
    aiokafka's (as Faust hands them over) or a mapping; None when the record has none."""
    if not headers:
        return None
    items = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in items:
        if key == SCHEMA_HEADER and value is not None:
            return value.decode("ascii", "replace") if isinstance(value, bytes | bytearray) else str(value)
    return None


@cache
def alert_json_schema() -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / "falco_alert.schema.json").read_text())


def _fastavro_encode_batch(batch: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, event_batch_schema(), batch)
    return buf.getvalue()


@cache
def batch_writer() -> str:
    """Which writer encode_batch uses: "c" (schemas/batch_writer.c, built for this very schema) or "fastavro"."""
    try:
        from schemas import _batch_writer  # type: ignore[attr-defined]
    except ImportError:
        return "fastavro"
    return "c" if _batch_writer.SCHEMA_FINGERPRINT == event_batch_fingerprint() else "fastavro"


def encode_batch(batch: dict[str, Any]) -> bytes:
    """One EventBatch, schemaless. The sensor's hot path: the C writer where it was built, else fastavro (same
    bytes); a batch the C writer refuses is written by fastavro, whose error is the reference."""
    if batch_writer() == "c":
        from schemas._batch_writer import encode_batch as c_encode  # type: ignore[attr-defined]
        try:
            return bytes(c_encode(batch))
        except (ValueError, TypeError):
            pass
    return _fastavro_encode_batch(batch)


@cache
def batch_reader() -> str:
    """Which reader decode_batch uses for the current schema: "c" (schemas/batch_reader.c, built for this very
    schema) or "fastavro"."""
    try:
        from schemas import _batch_reader  # type: ignore[attr-defined]
    except ImportError:
        return "fastavro"
    return "c" if _batch_reader.SCHEMA_FINGERPRINT == event_batch_fingerprint() else "fastavro"


def decode_batch(data: bytes, fingerprint: str | None = None) -> dict[str, Any]:
    """One record's batch. `fingerprint` (its `peregrine.schema` header) names the schema it was written with;
    None means the current one (records written by our own tools and tests carry it too).

    The processor's hot path: a record in the current schema is read by the C reader where it was built, else by
    fastavro (same result); a record the C reader refuses is read by fastavro, whose answer (its error, or what
    it makes of input the C reader finds malformed) is the reference. Older schemas go through fastavro's schema
    resolution."""
    if not data:
        raise DecodeError("empty record")
    reader = event_batch_schema()
    if fingerprint is None or fingerprint == event_batch_fingerprint():
        if batch_reader() == "c":
            from schemas._batch_reader import decode_batch as c_decode  # type: ignore[attr-defined]
            try:
                return c_decode(data)
            except (ValueError, TypeError):
                pass
        writer = reader
    else:
        writer = writer_schemas().get(fingerprint)
    if writer is None:
        raise DecodeError(f"unknown schema {fingerprint} (a sensor newer than this processor, or a foreign producer);"
                          f" this processor reads {', '.join(writer_schemas())}")
    try:
        buf = io.BytesIO(data)
        batch = fastavro.schemaless_reader(buf, writer, reader)
        if buf.tell() != len(data):
            raise DecodeError(f"{len(data) - buf.tell()} trailing bytes after EventBatch")
    except DecodeError:
        raise
    except Exception as exc:  # fastavro raises many types on garbage input
        raise DecodeError(f"not an EventBatch: {type(exc).__name__}: {exc}") from exc
    if not isinstance(batch, dict):
        raise DecodeError("not an EventBatch record")
    return batch


def encode_alert(alert: dict[str, Any]) -> bytes:
    return orjson.dumps(alert, option=orjson.OPT_SORT_KEYS)


def decode_alert(data: bytes) -> dict[str, Any]:
    value = orjson.loads(data)
    if not isinstance(value, dict):
        raise DecodeError("alert is not a JSON object")
    return value
