"""The processor's C reader (schemas/batch_reader.c) returns exactly what fastavro's schemaless_reader returns,
key order and value types included, for every shape a batch can take; it is the reader in use here, it refuses
malformed input with a ValueError naming the byte offset, and whatever it refuses codec.decode_batch hands to
fastavro, whose answer stays the reference."""

from __future__ import annotations

import io
import random
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import pytest

from schemas import codec
from schemas.codec import DecodeError, _fastavro_encode_batch, batch_reader, decode_batch, event_batch_schema
from tests.schemas.test_batch_writer import (
    I64_MAX,
    I64_MIN,
    batch_of,
    ev,
    full_proc,
    random_events,
    random_long,
    random_text,
)

BENCH = Path(__file__).resolve().parents[2] / "bench"


def c_decode(data: bytes | bytearray | memoryview) -> dict[str, Any]:
    from schemas._batch_reader import decode_batch as dec  # type: ignore[attr-defined]
    return dec(data)  # type: ignore[no-any-return]


def fastavro_decode(data: bytes) -> dict[str, Any]:
    """The reference, as codec.decode_batch applies it: the whole record, nothing after it."""
    buf = io.BytesIO(data)
    out = fastavro.schemaless_reader(buf, event_batch_schema())
    if buf.tell() != len(data):
        raise ValueError(f"{len(data) - buf.tell()} trailing bytes")
    assert isinstance(out, dict)
    return out


def shape(x: Any) -> Any:
    """x with its key order and value types spelled out, so that == also compares those (True == 1, {a,b} ==
    {b,a})."""
    if isinstance(x, dict):
        return ["dict", [(k, shape(v)) for k, v in x.items()]]
    if isinstance(x, list):
        return ["list", [shape(v) for v in x]]
    return [type(x).__name__, x]


def assert_same(data: bytes) -> dict[str, Any]:
    got, want = c_decode(data), fastavro_decode(data)
    assert got == want
    assert shape(got) == shape(want)
    return got


# -- hand-written Avro, for what fastavro's writer never emits (several blocks, negative counts) ----------------

def zz(v: int) -> bytes:
    n = ((v << 1) ^ (v >> 63)) & ((1 << 64) - 1)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def st(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return zz(len(b)) + b


def blocks(items: list[bytes], sizes: list[int], negative: bool = False) -> bytes:
    """items in blocks of the given sizes (the rest in one more block), then the 0 that ends them; a negative
    block count is followed by the block's byte size, as Avro specifies."""
    out, i = bytearray(), 0
    for size in [*sizes, len(items)]:
        chunk = items[i:i + size]
        i += len(chunk)
        if not chunk:
            continue
        body = b"".join(chunk)
        out += zz(-len(chunk)) + zz(len(body)) if negative else zz(len(chunk))
        out += body
    return bytes(out + zz(0))


def enc_proc(p: dict[str, Any], sizes: list[int], negative: bool) -> bytes:
    out = st(p["exe"]) + st(p["exepath"]) + blocks([st(a) for a in p["args"]], sizes, negative)
    out += bytes([p["args_truncated"]]) + st(p["cwd"])
    out += b"".join(zz(p[k]) for k in ("tty", "sid", "pgid", "vpid", "start_ts"))
    out += blocks([st(a) for a in p["env"]], sizes, negative) + st(p["container_id"])
    out += b"".join(zz(p[k]) for k in ("cap_permitted", "cap_effective", "cap_inheritable"))
    out += bytes([p["exe_from_memfd"], p["exe_upper_layer"]])
    return out + b"".join(zz(p[k]) for k in ("exe_ino_ctime", "exe_ino_mtime", "vpgid"))


def enc_event(e: dict[str, Any], sizes: list[int], negative: bool) -> bytes:
    out = zz(e["ts"]) + st(e["type"]) + b"".join(zz(e[k]) for k in ("tid", "pid", "ppid", "uid", "gid", "euid",
                                                                       "loginuid"))
    out += st(e["comm"]) + zz(e["res"]) + blocks([st(k) + st(v) for k, v in e["args"].items()], sizes, negative)
    return out + (zz(0) if e["proc"] is None else zz(1) + enc_proc(e["proc"], sizes, negative))


def enc_batch(b: dict[str, Any], sizes: list[int], negative: bool = False) -> bytes:
    head = st(b["hostname"]) + st(b["sensor_id"]) + zz(b["batch_seq"]) + zz(b["first_seq"])
    return head + blocks([enc_event(e, sizes, negative) for e in b["events"]], sizes, negative)


EXECVE = ev(type="execve", args={"filename": "/usr/bin/bash", "argv": "-c id", "envp": "", "cwd": "/",
                                 "flags": "0"},
            proc=dict(full_proc(), args=["-c", "id", "x", "y", "z"], env=["A=1", "B=2", "C=3"]))


# -- the tests ---------------------------------------------------------------------------------------------------

def test_the_c_reader_is_the_one_in_use_for_the_current_schema() -> None:
    """Fails when the extension did not build (the processor would silently be 10x slower to decode) or when
    event_batch.avsc changed without batch_reader.c: update both, and SCHEMA_FINGERPRINT in event_batch_keys.h."""
    assert batch_reader() == "c"


@pytest.mark.parametrize("batch", [
    batch_of([]),
    batch_of([ev()]),
    batch_of([ev(args={})]),
    batch_of([ev(proc=None)]),
    batch_of([EXECVE]),
    batch_of([ev(proc={"exe": "sh"})]),  # written with ProcInfo's defaults
    batch_of([{"ts": 1, "type": "drops", "tid": 0, "pid": 0}]),  # every field with a default missing
    batch_of([ev(ts=I64_MAX, res=I64_MIN, tid=I64_MIN, pid=I64_MAX, loginuid=4294967295, uid=-1)],
             batch_seq=I64_MIN, first_seq=I64_MAX),
    batch_of([ev(proc=dict(full_proc(), tty=I64_MIN, start_ts=I64_MAX, cap_permitted=I64_MAX,
                           exe_ino_mtime=I64_MIN, args_truncated=True, exe_from_memfd=True,
                           exe_upper_layer=True))]),
    batch_of([ev(comm="", args={"": "", "name": ""}, proc=dict(full_proc(), exe="", args=[""], env=[]))],
             hostname="", sensor_id=""),
    batch_of([ev(comm="q\"'`\\\n\r\t\x00", args={
        "name": "/tmp/\x1b[31mred\x00nul é 中 😀\U0010ffff", "target": "\u202eexe.txt\u202c", "مسار": "ملف",
        "fd.name": "a\nb\"c'd", "\x00": "\x7f"})],
             hostname="héllo-\u05d0\u05d1", sensor_id="😀" * 20),
    batch_of([ev(args={f"k{i}": str(i) * i for i in range(40)})]),
    batch_of([ev(tid=i, comm=f"c{i % 7}") for i in range(300)]),
], ids=["empty", "openat", "empty-args", "proc-none", "proc-full", "proc-defaults", "event-defaults",
        "int64-limits", "proc-int64-limits", "empty-strings", "hostile-text", "big-map", "many-events"])
def test_edge_cases_read_as_fastavro_reads_them(batch: dict[str, Any]) -> None:
    data = _fastavro_encode_batch(batch)
    got = assert_same(data)
    assert decode_batch(data) == got


@pytest.mark.parametrize("negative", [False, True], ids=["positive-counts", "negative-counts"])
@pytest.mark.parametrize("sizes", [[1], [2, 1], [1, 1, 1, 1], [3]], ids=str)
def test_arrays_and_maps_in_several_blocks(sizes: list[int], negative: bool) -> None:
    events = [EXECVE, ev(), ev(args={}), ev(type="connect", args={"fd": "3", "dip": "10.0.0.1", "dport": "443"}),
              dict(EXECVE, args={"a": "1", "b": "2", "a2": "3"})]
    data = enc_batch(batch_of(events), sizes, negative)
    assert data != _fastavro_encode_batch(batch_of(events))
    got = assert_same(data)
    assert got == decode_batch(_fastavro_encode_batch(batch_of(events)))
    assert decode_batch(data) == got


def test_a_repeated_map_key_keeps_its_first_place_and_its_last_value() -> None:
    head = st("h") + st("s") + zz(1) + zz(2)
    e = zz(1) + st("openat") + zz(3) * 7 + st("c") + zz(0)
    args = zz(2) + st("a") + st("1") + st("b") + st("2") + zz(-1) + zz(4) + st("a") + st("3") + zz(0)
    got = assert_same(head + zz(1) + e + args + zz(0) + zz(0))
    assert list(got["events"][0]["args"].items()) == [("a", "3"), ("b", "2")]


def test_any_nonzero_byte_is_true_as_fastavro_reads_it() -> None:
    p = dict(full_proc(), args_truncated=0x80, exe_from_memfd=2, exe_upper_layer=0)
    got = assert_same(enc_batch(batch_of([ev(proc=p)]), []))
    assert got["events"][0]["proc"]["args_truncated"] is True and got["events"][0]["proc"]["exe_from_memfd"] is True
    assert got["events"][0]["proc"]["exe_upper_layer"] is False


def test_random_batches_read_as_fastavro_reads_them() -> None:
    rng = random.Random(20261130)
    for i in range(200):
        b = batch_of(list(random_events(rng, rng.randrange(0, 40))), batch_seq=random_long(rng),
                     first_seq=random_long(rng), hostname=random_text(rng), sensor_id=random_text(rng))
        data = _fastavro_encode_batch(b)
        got, want = c_decode(data), fastavro_decode(data)
        assert got == want, f"batch {i}"
        assert shape(got) == shape(want), f"batch {i}"


def test_bytes_like_objects_are_read_without_a_copy() -> None:
    data = _fastavro_encode_batch(batch_of([EXECVE, ev()]))
    want = fastavro_decode(data)
    assert c_decode(bytearray(data)) == want
    assert c_decode(memoryview(data)) == want
    assert c_decode(memoryview(b"xx" + data + b"yy")[2:-2]) == want
    with pytest.raises(TypeError):
        c_decode("not bytes")  # type: ignore[arg-type]


def test_a_realistic_record_from_the_processor_bench() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from processor_bench import build_records  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(BENCH))
    records = build_records(2, 1000, 2)
    for _host, data in records:
        got = assert_same(data)
        assert len(got["events"]) >= 1000
        assert decode_batch(data) == got
    assert any(e["proc"] for _host, data in records for e in c_decode(data)["events"])


def test_trailing_bytes_are_refused_naming_how_many() -> None:
    data = _fastavro_encode_batch(batch_of([ev()]))
    with pytest.raises(ValueError, match=rf"3 trailing bytes from byte {len(data)}"):
        c_decode(data + b"\x00\x01\x02")
    with pytest.raises(DecodeError, match="3 trailing bytes"):
        decode_batch(data + b"\x00\x01\x02")


def _event_bytes() -> tuple[bytes, int]:
    """A one-event batch written by hand up to the event's proc union index, and that index's offset."""
    head = st("node-a") + st("s") + zz(1) + zz(2) + zz(1)
    e = zz(1) + st("openat") + zz(3) * 7 + st("cat") + zz(0) + zz(0)
    return head + e, len(head + e)


@pytest.mark.parametrize("data, message", [
    (st("node-a")[:4], r"hostname at byte 0: string of 6 bytes, 3 left"),
    (st("node-a") + st("s") + b"\x80", r"batch_seq at byte 9: truncated long"),
    (st("node-a") + st("s") + b"\xff" * 10 + b"\x01", r"batch_seq at byte 9: varint longer than 10 bytes"),
    (st("node-a") + zz(-3) + b"abc", r"sensor_id at byte 7: string of -3 bytes"),
    (st("h") + st("s") + zz(1) + zz(2) + zz(1 << 40), r"events at byte 6: block of 1099511627776 items, 0 bytes"),
    (st("h") + st("s") + zz(1) + zz(2) + zz(-2) + zz(1 << 30) + b"\x00" * 40, r"events at byte 7: block of "
     r"1073741824 bytes, 40 left"),
    (st("h") + st("s") + zz(1) + zz(2) + zz(I64_MIN), r"events at byte 6: block count -9223372036854775808"),
    (_event_bytes()[0] + zz(2), rf"events\[0\]\.proc at byte {_event_bytes()[1]}: union branch 2"),
    (_event_bytes()[0] + zz(-1), rf"events\[0\]\.proc at byte {_event_bytes()[1]}: union branch -1"),
    (_event_bytes()[0] + zz(1) + st("sh") + st("/bin/sh") + zz(0),
     rf"events\[0\]\.proc\.args_truncated at byte {_event_bytes()[1] + 13}: truncated boolean"),
    (st("h") + st("s") + zz(1) + zz(2) + zz(1) + zz(1) + st(b"op\xffen") + bytes(20),
     r"events\[0\]\.type at byte 8: invalid UTF-8 .*0xff in position 2"),
    (st(b"\xed\xa0\x80"), r"hostname at byte 0: invalid UTF-8"),  # a surrogate: bytes.decode() refuses it too
], ids=["truncated-string", "truncated-long", "long-varint", "negative-length", "oversized-count",
        "oversized-block-size", "min-count", "union-2", "union-minus-1", "truncated-bool", "bad-utf8",
        "surrogate"])
def test_malformed_input_is_refused_naming_the_byte_offset(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=rf"^EventBatch: {message}"):
        c_decode(data)
    with pytest.raises(DecodeError):
        decode_batch(data)


def test_what_the_c_reader_refuses_but_fastavro_reads_is_read_by_fastavro() -> None:
    """fastavro takes union indexes -1 and -2 as Python list indexes (ProcInfo, null) and shifts varints over 10
    bytes past 64 bits; the C reader refuses both, and decode_batch gives fastavro's answer."""
    data, _ = _event_bytes()
    for odd in (data + zz(-2) + zz(0), st("h") + st("s") + b"\x80" * 10 + b"\x02" + zz(2) + zz(0)):
        with pytest.raises(ValueError):
            c_decode(odd)
        assert decode_batch(odd) == fastavro_decode(odd)


def test_decode_batch_falls_back_to_fastavro_when_the_reader_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _fastavro_encode_batch(batch_of([EXECVE, ev()]))
    fast = decode_batch(data)
    monkeypatch.setattr(codec, "batch_reader", lambda: "fastavro")
    assert decode_batch(data) == fast
    assert decode_batch(data, codec.event_batch_fingerprint()) == fast


def _mutants(rng: random.Random, n: int) -> list[bytes]:
    seeds = [_fastavro_encode_batch(batch_of(list(random_events(rng, rng.randrange(1, 6))))) for _ in range(30)]
    seeds += [_fastavro_encode_batch(batch_of([EXECVE, ev()])), enc_batch(batch_of([EXECVE, ev()]), [1], True)]
    out: list[bytes] = []
    for _ in range(n):
        data = bytearray(rng.choice(seeds))
        kind = rng.randrange(4)
        if kind == 0:  # truncation
            del data[rng.randrange(0, len(data)):]
        elif kind == 1:  # byte flips
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == 2:  # a varint byte, a block count or a union index turned into something else
            i = rng.randrange(len(data))
            data[i:i + 1] = rng.choice([b"\x7f", b"\x80", b"\x01", b"\x03", b"\xff" * 11, zz(-1) + zz(1 << 40)])
        else:  # random bytes
            data = bytearray(rng.randbytes(rng.randrange(1, 200)))
        out.append(bytes(data))
    return out


def _outcome(f: Callable[[bytes], dict[str, Any]], data: bytes) -> Any:
    try:
        return ("ok", shape(f(data)))
    except DecodeError:
        return ("DecodeError",)
    except (ValueError, TypeError) as exc:
        return ("ValueError", str(exc))
    except Exception as exc:
        return ("fastavro raised", type(exc).__name__)


def test_fuzz_truncations_flips_and_random_bytes() -> None:
    """Either fastavro's result or a DecodeError exactly where fastavro fails; the C reader only ever returns what
    fastavro returns, and refuses the rest with a ValueError."""
    rng = random.Random(20261201)
    refused = 0
    for i, data in enumerate(_mutants(rng, 2000)):
        want = _outcome(fastavro_decode, data)
        got = _outcome(decode_batch, data)
        if want[0] == "ok":
            assert got == want, f"mutant {i}: {data.hex()}"
        else:
            assert got == ("DecodeError",), f"mutant {i}: {data.hex()}"
        direct = _outcome(c_decode, data)
        if direct[0] == "ok":
            assert direct == want, f"mutant {i}: {data.hex()}"
        else:
            assert direct[0] == "ValueError" and direct[1].startswith("EventBatch: "), direct
            assert " at byte " in direct[1] or " trailing bytes from byte " in direct[1], direct
            refused += 1
    assert refused > 1000  # the mutants do exercise the error paths


def test_no_memory_is_kept_across_errors_and_results() -> None:
    """A reference leaked on any path (a dict, a str, a list per call) shows as traced memory growing."""
    inputs = _mutants(random.Random(7), 500) + [_fastavro_encode_batch(batch_of([EXECVE, ev()]))] * 50

    def run() -> None:
        for data in inputs:
            try:
                c_decode(data)
            except ValueError:
                pass

    run()  # warm the string cache
    tracemalloc.start()
    try:
        run()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            run()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, grown
