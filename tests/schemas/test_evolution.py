"""Rolling upgrades: a processor reads what every released sensor writes, by the schema its header names."""

from __future__ import annotations

import io
import json

import fastavro
import pytest

from schemas.codec import (
    HISTORY_DIR,
    SCHEMA_DIR,
    DecodeError,
    decode_batch,
    encode_batch,
    event_batch_fingerprint,
    schema_fingerprint,
    writer_schemas,
)
from tests.pipeline.helpers import batch, event, proc_info

T0 = 1_700_000_000_000_000_000
BEFORE_VPGID = "EventBatch:0dad8f6712675cfe"  # the last release without ProcInfo.vpgid


def a_batch() -> dict:
    return batch("node-a", 1, [
        event(T0, "execve", 200, ppid=100, comm="cat", proc=proc_info("/usr/bin/cat", ["cat", "/etc/shadow"])),
        event(T0 + 1, "openat", 200, comm="cat", res=3, args={"name": "/etc/shadow", "fd": "3"}),
    ])


def test_every_released_schema_is_kept_under_its_fingerprint() -> None:
    files = sorted(HISTORY_DIR.glob("event_batch-*.avsc"))
    assert len(files) >= 2
    for path in files:
        assert f"EventBatch:{path.stem.split('-', 1)[1]}" in writer_schemas(), path.name
    current = json.loads((SCHEMA_DIR / "event_batch.avsc").read_text())
    archived = HISTORY_DIR / f"event_batch-{event_batch_fingerprint().split(':')[1]}.avsc"
    assert archived.exists(), "event_batch.avsc changed: copy it to history/ under its new fingerprint"
    assert json.loads(archived.read_text()) == current


def test_a_batch_from_a_sensor_before_vpgid_decodes_with_the_default() -> None:
    old = writer_schemas()[BEFORE_VPGID]
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, old, a_batch())
    got = decode_batch(buf.getvalue(), BEFORE_VPGID)
    execve, opened = got["events"]
    assert execve["proc"]["vpgid"] == 0 and execve["proc"]["exepath"] == "/usr/bin/cat"
    assert opened["args"] == {"name": "/etc/shadow", "fd": "3"} and opened["proc"] is None


def test_every_released_schema_reads_into_the_current_one() -> None:
    for fingerprint, schema in writer_schemas().items():
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, schema, a_batch())
        assert [e["type"] for e in decode_batch(buf.getvalue(), fingerprint)["events"]] == ["execve", "openat"]


def test_an_unknown_schema_is_a_decode_error_that_names_it() -> None:
    with pytest.raises(DecodeError, match="unknown schema EventBatch:ffffffffffffffff"):
        decode_batch(encode_batch(a_batch()), "EventBatch:ffffffffffffffff")


def test_the_fingerprint_header_is_found_in_each_clients_form() -> None:
    fp = event_batch_fingerprint().encode()
    assert schema_fingerprint([("other", b"x"), ("peregrine.schema", fp)]) == fp.decode()  # confluent, aiokafka
    assert schema_fingerprint({"peregrine.schema": fp}) == fp.decode()
    assert schema_fingerprint(None) is None and schema_fingerprint([("other", b"x")]) is None
