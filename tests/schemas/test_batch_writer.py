"""The sensor's C writer (schemas/batch_writer.c) writes exactly the bytes fastavro writes, for every shape an
event can take; it is the writer in use here, and a batch it refuses still gets fastavro's error."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from schemas import codec
from schemas.codec import _fastavro_encode_batch, batch_writer, decode_batch, encode_batch

I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1


def c_encode(batch: dict[str, Any]) -> bytes:
    from schemas._batch_writer import encode_batch as enc  # type: ignore[attr-defined]
    return bytes(enc(batch))


def full_proc(rng: random.Random | None = None) -> dict[str, Any]:
    r = rng or random.Random(0)
    return {
        "exe": "bash", "exepath": "/usr/bin/bash", "args": ["-c", "cat /etc/shadow; echo 'é€😀'"],
        "args_truncated": r.random() < 0.5, "cwd": "/root", "tty": 34816, "sid": 1, "pgid": 200, "vpid": 1,
        "start_ts": 1_700_000_000_123_456_789, "env": ["PATH=/usr/bin", "LD_PRELOAD=/tmp/x.so"],
        "container_id": "0123456789ab", "cap_permitted": (1 << 41) - 1, "cap_effective": (1 << 41) - 1,
        "cap_inheritable": 0, "exe_from_memfd": r.random() < 0.5, "exe_upper_layer": r.random() < 0.5,
        "exe_ino_ctime": 1_600_000_000_000_000_000, "exe_ino_mtime": -1, "vpgid": 200,
    }


def ev(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"ts": 1_700_000_000_000_000_001, "type": "openat", "tid": 201, "pid": 200, "ppid": 1,
                            "uid": 0, "gid": 0, "euid": 0, "loginuid": -1, "comm": "cat", "res": 3,
                            "args": {"name": "/etc/shadow", "flags": "524288", "fd": "3"}, "proc": None}
    base.update(over)
    return base


def batch_of(events: list[Any], **over: Any) -> dict[str, Any]:
    b: dict[str, Any] = {"hostname": "node-a", "sensor_id": "node-a:1f2e", "batch_seq": 7, "first_seq": 7000,
                         "events": events}
    b.update(over)
    return b


def random_text(rng: random.Random) -> str:
    alphabet = "abc/._- \t\n\"'<>&|;\\%\x00\x7féü€中😀"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))


def random_long(rng: random.Random) -> int:
    return rng.choice([0, -1, 1, 63, 64, -64, -65, 127, 128, 8191, 8192, 1 << 31, -(1 << 31), 1 << 62, I64_MIN,
                       I64_MAX, rng.randrange(I64_MIN, I64_MAX)])


def random_events(rng: random.Random, n: int) -> Iterator[dict[str, Any]]:
    longs = ("ts", "tid", "pid", "ppid", "uid", "gid", "euid", "loginuid", "res")
    for _ in range(n):
        e: dict[str, Any] = {k: random_long(rng) for k in longs}
        e["type"] = rng.choice(["openat", "execve", "connect", "clone", "procexit", "snapshot", "drops"])
        e["comm"] = random_text(rng)
        e["args"] = {random_text(rng): random_text(rng) for _ in range(rng.randrange(0, 6))}
        if rng.random() < 0.3:
            p = full_proc(rng)
            p["args"] = [random_text(rng) for _ in range(rng.randrange(0, 5))]
            p["cwd"] = random_text(rng)
            for k in ("tty", "sid", "pgid", "vpid", "start_ts", "cap_permitted", "vpgid"):
                p[k] = random_long(rng)
            e["proc"] = p
        else:
            e["proc"] = None
        for k in ("ppid", "uid", "gid", "euid", "loginuid", "comm", "res", "args", "proc"):  # fields with defaults
            if rng.random() < 0.1:
                del e[k]
        yield e


def test_the_c_writer_is_the_one_in_use_for_the_current_schema() -> None:
    """Fails when the extension did not build (the sensor would silently be 10x slower to encode) or when
    event_batch.avsc changed without batch_writer.c: update both, and SCHEMA_FINGERPRINT in event_batch_keys.h."""
    assert batch_writer() == "c"


@pytest.mark.parametrize("events", [
    [],
    [ev()],
    [ev(args={})],
    [ev(type="execve", args={"filename": "/usr/bin/bash"}, proc=full_proc())],
    [ev(proc={"exe": "sh"})],  # ProcInfo fields missing: their defaults
    [{"ts": 1, "type": "drops", "tid": 0, "pid": 0}],  # every field with a default missing
    [ev(comm="", res=I64_MIN, ts=I64_MAX, loginuid=4294967295)],
    [ev(args={"name": "/tmp/\x1b[31mred\x00nul é 中 😀", "fd.name": ""})],
    [ev(proc=dict(full_proc(), args=[], env=[]))],
    [ev(uid=True, euid=False)],  # a bool is an int to both
], ids=["empty", "openat", "no-args", "execve", "partial-proc", "defaults", "extremes", "hostile-text",
        "empty-lists", "bool-like"])
def test_same_bytes_as_fastavro(events: list[dict[str, Any]]) -> None:
    b = batch_of(events)
    data = c_encode(b)
    assert data == _fastavro_encode_batch(b)
    assert decode_batch(data)["events"] == decode_batch(_fastavro_encode_batch(b))["events"]


def test_same_bytes_as_fastavro_for_random_batches() -> None:
    rng = random.Random(20261129)
    for i in range(200):
        b = batch_of(list(random_events(rng, rng.randrange(0, 40))), batch_seq=random_long(rng),
                     first_seq=random_long(rng), hostname=random_text(rng))
        assert c_encode(b) == _fastavro_encode_batch(b), f"batch {i}"


def test_mappings_that_are_not_dicts_are_written_too() -> None:
    class Frozen(Mapping[str, Any]):
        def __init__(self, d: dict[str, Any]) -> None:
            self.d = d

        def __getitem__(self, k: str) -> Any:
            return self.d[k]

        def __iter__(self) -> Iterator[str]:
            return iter(self.d)

        def __len__(self) -> int:
            return len(self.d)

    plain = ev(type="execve", proc=full_proc())
    odd = Frozen(dict(plain, proc=Frozen(full_proc())))
    assert c_encode(batch_of([odd])) == _fastavro_encode_batch(batch_of([plain]))


@pytest.mark.parametrize("bad, where", [
    (ev(pid=None), "pid"),
    ({"ts": 1, "type": "openat", "tid": 1}, "pid"),
    (ev(comm=5), "comm"),
    (ev(args={"fd": 3}), "args"),
    (ev(res=1 << 64), "res"),
    (ev(proc="yes"), "proc"),
    (ev(proc=dict(full_proc(), exe_from_memfd=1)), "exe_from_memfd"),
    (ev(proc=dict(full_proc(), env="PATH=/bin")), "env"),
    (ev(comm="\udcff"), "comm"),  # a lone surrogate is not UTF-8
], ids=["none-long", "missing-required", "int-as-str", "int-in-map", "overflow", "proc-not-mapping",
        "int-as-bool", "str-as-list", "surrogate"])
def test_bad_events_are_refused_naming_the_event_and_field(bad: dict[str, Any], where: str) -> None:
    with pytest.raises(ValueError, match=rf"events\[1\]: .*{where}"):
        c_encode(batch_of([ev(), bad]))
    # encode_batch hands a refused batch to fastavro, so the caller gets the reference writer's error
    with pytest.raises((ValueError, TypeError, AttributeError, OverflowError, UnicodeEncodeError)):
        encode_batch(batch_of([ev(), bad]))


def test_encode_batch_falls_back_to_fastavro_when_the_writer_is_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    b = batch_of([ev(type="execve", proc=full_proc())])
    fast = encode_batch(b)
    monkeypatch.setattr(codec, "batch_writer", lambda: "fastavro")
    assert encode_batch(b) == fast
