"""The C decoder of openat/close records (sensor/record_decoder.c) gives exactly what the Python decoder gives:
the same events in the same order (meta events included), the same fd tables, the same truncation count, for
probe records built byte for byte as the probe writes them. No eBPF here: tests/sensor/test_capture.py runs the
real probe through it."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sensor import decode
from sensor.decode import HDR, KIND_EXIT, Decoder
from sensor.proctable import FdInfo, ProcState, ProcTable
from sensor.syscalls import SYSCALLS

OPENAT, CLOSE, OPEN = SYSCALLS["openat"], SYSCALLS["close"], SYSCALLS["open"]
AT_FDCWD = -100
NO_PID = 4_100_000  # above pid_max: ProcTable finds no /proc entry, on every machine
UNSET = 0xFFFFFFFF


def record(kind: int, pid: int, res: int = 0, a: tuple[int, ...] = (), blobs: tuple[bytes, ...] = (),
           comm: bytes = b"cat", uid: int = 0, gid: int = 0, flags: int = 0, loginuid: int = UNSET,
           ts: int = 1_000_000) -> bytes:
    args = [x & 0xFFFFFFFFFFFFFFFF for x in (list(a) + [0] * 6)[:6]]
    lens = [len(b) for b in blobs] + [0] * (8 - len(blobs))
    return HDR.pack(ts, res, *args, 0, kind, flags, pid, pid, 1, uid, gid, uid, loginuid, *lens, 0,
                    comm.ljust(16, b"\0")[:16]) + b"".join(blobs)


def openat(pid: int, path: bytes, res: int, dirfd: int = AT_FDCWD, **kw: Any) -> bytes:
    return record(OPENAT, pid, res, (dirfd, 0, 0o2000000 | 0o100, 0o644), (path + b"\0",), **kw)


def close(pid: int, fd: int, res: int = 0, **kw: Any) -> bytes:
    return record(CLOSE, pid, res, (fd,), **kw)


def table() -> ProcTable:
    procs = ProcTable(max_fds_per_proc=8)
    procs.procs[NO_PID] = ProcState(cwd="/srv/app", fds={4: FdInfo("/etc")})
    procs.procs[NO_PID + 1] = ProcState(cwd="/")
    return procs


def both(records: list[bytes]) -> tuple[Decoder, Decoder]:
    """The same records through the C path and the Python path, each with its own fresh state."""
    buf = bytearray()
    offsets = []
    for r in records:
        offsets.append(len(buf))
        buf += r + b"\0" * (-len(r) % 8)
    decoders = (Decoder(table()), Decoder(table()))
    for d, fn in zip(decoders, ("decode_many", "decode_many_py"), strict=True):
        d.epoch = 1_700_000_000_000_000_000
        d.out = []
        getattr(d, fn)(bytes(buf), offsets)
    return decoders


def assert_same(c: Decoder, py: Decoder) -> None:
    assert c.out == py.out
    assert [list(e) for e in c.out] == [list(e) for e in py.out]  # key order too: the Avro map's bytes follow it
    assert [list(e["args"]) for e in c.out] == [list(e["args"]) for e in py.out]
    fds = lambda d: {pid: {fd: i.name for fd, i in st.fds.items()} for pid, st in d.procs.procs.items()}  # noqa: E731
    assert fds(c) == fds(py)
    assert c.truncated == py.truncated
    assert c._comm == py._comm and c.known_uids == py.known_uids and c.known_gids == py.known_gids


def test_the_c_decoder_is_built_here() -> None:
    assert decode._record_decoder is not None


def test_openat_and_close_as_the_python_decoder_sees_them() -> None:
    p = NO_PID
    records = [
        openat(p, b"/etc/shadow", 3),
        openat(p, b"config/app.yaml", 5),  # relative to the cwd
        openat(p, b"passwd", 6, dirfd=4),  # relative to an open directory
        openat(p, b"/var/log/../log//syslog", 7),  # normalised, nameraw kept
        openat(p, b"/nonexistent", -2),  # failed: no fd
        openat(p, b"", -2),
        close(p, 3),  # fd.name from the table
        close(p, 99),  # unknown fd
        close(p, 5, res=-9),  # failed close keeps the fd
        openat(p + 1, b"tmp/x", 3, uid=4242, gid=4343),  # a new user and group: meta events first
        record(KIND_EXIT, p + 1, 0, (0, 1)),  # another kind, through Python, in order
        record(OPEN, p, 8, (0o100, 0o600), (b"/tmp/o\0",)),
        openat(p, b"/tmp/\xff\xfe-bad-utf8", 9, comm=b"\xffweird\xc3"),
        openat(p, b"/tmp/long", 10, flags=1, comm=b"sixteen-chars-xx"),  # truncated, comm without NUL
        close(p, 10, loginuid=1000),
        openat(NO_PID + 2, b"rel", 3),  # a process the table does not know: no cwd, path left relative
    ]
    c, py = both(records)
    assert_same(c, py)
    kinds = [e["type"] for e in c.out]
    assert kinds[:11] == ["user", "group"] + ["openat"] * 6 + ["close"] * 3  # uid 0 / gid 0 announced first
    assert kinds[11:16] == ["user", "group", "openat", "procexit", "open"]
    assert c.out[11]["args"]["uid"] == "4242" and c.out[12]["args"]["gid"] == "4343"
    evs = [e for e in c.out if e["type"] not in ("user", "group")]
    assert evs[1]["args"]["name"] == "/srv/app/config/app.yaml"
    assert evs[2]["args"]["name"] == "/etc/passwd" and evs[2]["args"]["nameraw"] == "passwd"
    assert evs[3]["args"] == {"name": "/var/log/syslog", "flags": str(0o2000100), "mode": str(0o644),
                                "fd": "7", "dirfd": "-100", "nameraw": "/var/log/../log//syslog"}
    assert evs[6]["args"] == {"fd": "3", "fd.name": "/etc/shadow"}
    assert evs[-4]["comm"] == "\ufffdweird\ufffd" and evs[-3]["comm"] == "sixteen-chars-xx"
    assert evs[-1]["args"]["name"] == "rel"
    assert c.truncated == 1
    assert c.procs.procs[NO_PID].fds[5].name == "/srv/app/config/app.yaml"  # the failed close kept it


def test_random_records_decode_the_same() -> None:
    rng = random.Random(1129)
    parts = [b"etc", b"..", b".", b"", b"proc", b"self", b"\xff", "é".encode(), b"a" * 40]
    for _ in range(30):
        records = []
        for _ in range(200):
            pid = NO_PID + rng.randrange(3)
            choice = rng.random()
            if choice < 0.5:
                path = (b"/" if rng.random() < 0.6 else b"") + b"/".join(rng.choice(parts) for _ in range(4))
                records.append(openat(pid, path, rng.choice([3, 4, 5, 6, 7, 8, 9, 10, -2, -13]),
                                      dirfd=rng.choice([AT_FDCWD, 4, 5, 77]), uid=rng.choice([0, 0, 1, 4242]),
                                      flags=rng.choice([0, 0, 0, 1]), comm=rng.choice([b"cat", b"sh", b"\xe2\x82"])))
            elif choice < 0.9:
                records.append(close(pid, rng.randrange(3, 11), res=rng.choice([0, 0, -9])))
            else:
                records.append(record(KIND_EXIT, pid, 0, (0, 0)))
        assert_same(*both(records))


def test_fd_tables_stay_within_their_bound() -> None:
    c, py = both([openat(NO_PID, f"/f{i}".encode(), 10 + i) for i in range(20)])
    assert_same(c, py)
    assert len(c.procs.procs[NO_PID].fds) == 8


def test_a_record_outside_the_buffer_is_an_error_and_a_short_one_is_cut() -> None:
    d = Decoder(table())
    d.out = []
    rec = openat(NO_PID, b"/etc/passwd", 3)
    with pytest.raises(ValueError, match="outside the buffer"):
        d.decode_many(rec, [len(rec) - 10])
    # A path longer than what is left of the buffer (never from the probe) is cut where the buffer ends, as the
    # Python decoder's slice cuts it: no read past the end, no crash of the capture.
    c, py = Decoder(table()), Decoder(table())
    for dec, fn in ((c, "decode_many"), (py, "decode_many_py")):
        dec.out, dec.epoch = [], 0
        getattr(dec, fn)(rec[:-5], [0])
    assert c.out == py.out and c.out[-1]["args"]["name"] == "/etc/pa"


def test_garbage_records_decode_as_in_python_and_never_crash() -> None:
    """Random header bytes and path lengths (only the kind and pid forced; records end where the buffer does):
    whatever the C decoder makes of them, the Python decoder makes the same."""
    rng = random.Random(20261129)
    for _ in range(20):
        records = []
        for _ in range(50):
            raw = bytearray(rng.randbytes(HDR.size + rng.randrange(0, 300)))
            struct_fields = list(HDR.unpack_from(raw))
            struct_fields[9] = rng.choice([OPENAT, CLOSE])
            struct_fields[12] = NO_PID + rng.randrange(3)
            struct_fields[14] = struct_fields[15] = 0  # uid/gid: not the host's user database under test
            struct_fields[18] = rng.choice([rng.randrange(0, len(raw) - HDR.size + 1), rng.randrange(0, 1 << 16)])
            raw[:HDR.size] = HDR.pack(*struct_fields)
            records.append(bytes(raw))
        assert_same(*both(records))
