"""The wire contract: Avro event batches (fastavro, schemaless + fingerprint header) and JSON alerts (orjson)."""

from __future__ import annotations

import hashlib
import io
import json
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import orjson

SCHEMA_DIR = Path(__file__).resolve().parent
SCHEMA_HEADER = "peregrine.schema"


class DecodeError(ValueError):
    """A record that does not decode; the caller names topic:partition:offset and dead-letters it."""


@cache
def event_batch_schema() -> Any:
    raw = json.loads((SCHEMA_DIR / "event_batch.avsc").read_text())
    return fastavro.parse_schema(raw)


@cache
def event_batch_fingerprint() -> str:
    canonical = json.dumps(json.loads((SCHEMA_DIR / "event_batch.avsc").read_text()), sort_keys=True)
    return "EventBatch:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


@cache
def alert_json_schema() -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / "falco_alert.schema.json").read_text())


def encode_batch(batch: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, event_batch_schema(), batch)
    return buf.getvalue()


def decode_batch(data: bytes) -> dict[str, Any]:
    if not data:
        raise DecodeError("empty record")
    try:
        buf = io.BytesIO(data)
        batch = fastavro.schemaless_reader(buf, event_batch_schema(), event_batch_schema())
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
