"""processor/open_fields.c seeds an open event's fields exactly as the Python functions it replaces on the hot path
(`open_fields` + `name_and_container`), and hands every shape it does not handle back to them untouched."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from processor import event_fields
from processor.event_fields import EventFields, _open_flags_seen, c_seed_open, name_and_container, open_fields
from processor.state import HostState, proc_key

NAMES: list[Any] = ["/etc/shadow", "", "/", "a", "/a", "a/", "//x", "/tmp/dir/", "rel/path/f", "/é/ü\u2603",
                    "/x\x00y", "/" + "d/" * 300 + "f", None, 0, b"/x", 5, ["x"]]
NAMERAWS: list[Any] = [..., None, "", "/raw/../name", 7]
FLAGS: list[Any] = [..., None, "0", "524288", "65", "O_RDONLY", "577", 5, ["unhashable"]]
RESULTS: list[Any] = [..., 0, 3, -2, 2**70, -(2**70), True, 3.0, "4"]
PROCS: list[Any] = [None, {}, {"exepath": "/usr/bin/cat", "container_id": "abc123"}, {"exe": "cat"},
                    {"exepath": "", "exe": "", "comm": "kworker"}, {"comm": ""}, {"exepath": 5},
                    {"exepath": "", "exe": b"/x"}, {"exepath": "/bin/sh", "container_id": ""},
                    {"exepath": "noslash", "container_id": None}, {"exepath": 0, "exe": "/sbin/init", "comm": "x"}]
TYPES = sorted(event_fields.flags.OPEN_TYPES)


def event(etype: str, name: Any = ..., nameraw: Any = ..., flags: Any = ..., res: Any = ..., args: Any = ...) -> Any:
    a: dict[str, Any] = {}
    for key, value in (("name", name), ("nameraw", nameraw), ("flags", flags)):
        if value is not ...:
            a[key] = value
    ev: dict[str, Any] = {"ts": 1, "type": etype, "tid": 7, "pid": 7, "args": a if args is ... else args}
    if res is not ...:
        ev["res"] = res
    return ev


def python_seed(ev: dict[str, Any], p: Any) -> tuple[str, Any]:
    out: dict[str, Any] = {}
    try:
        open_fields(ev, ev["type"], out)
    except Exception as exc:  # noqa: BLE001 - the comparison is of what each path raises
        return "raises", type(exc)
    if p:
        try:
            name_and_container(p, out)
        except Exception:  # noqa: BLE001 - as EventFields does
            pass
    return "fields", [(k, v, type(v)) for k, v in out.items()]


def c_seed(ev: dict[str, Any], p: Any) -> tuple[str, Any] | None:
    """The C path's fields, or None when it hands the event back (and then it must not have written anything)."""
    assert c_seed_open is not None
    out: dict[str, Any] = {}
    asked: list[str] = []

    def procs_get(key: str) -> Any:
        asked.append(key)
        return p

    got = c_seed_open(out, ev, ev["type"], _open_flags_seen, procs_get, "node-1")
    if got is False:
        assert out == {}
        return None
    assert got is p and asked == [f"node-1|{ev['pid']}"]
    return "fields", [(k, v, type(v)) for k, v in out.items()]


def check(ev: dict[str, Any], p: Any) -> bool:
    """True when the C path took the event."""
    want = python_seed(ev, p)  # (also puts the flags combination into the cache the C path reads)
    got = c_seed(ev, p)
    if got is not None:
        assert got == want, (ev, p)
    return got is not None


def test_the_c_path_is_built_here() -> None:
    assert c_seed_open is not None, "processor/open_fields.c did not build (setup.py): the processor runs slower"


@pytest.mark.parametrize("etype", TYPES)
def test_ordinary_opens_are_seeded_in_c_as_in_python(etype: str) -> None:
    for name, flags, res in itertools.product(NAMES[:12], FLAGS[2:7], [0, 3, -2, ...]):
        for p in PROCS:
            assert check(event(etype, name=name, flags=flags, res=res), p) or name is None


def test_odd_shapes_match_or_are_handed_back() -> None:
    took = handed_back = 0
    for name, nameraw, flags, res, p in itertools.product(NAMES, NAMERAWS, FLAGS, RESULTS, PROCS[:4]):
        if check(event("openat", name=name, nameraw=nameraw, flags=flags, res=res), p):
            took += 1
        else:
            handed_back += 1
    for args in (..., None, {}, [], "x", ["a"], 0):
        for p in PROCS:
            check(event("open", args=args), p)
    assert took and handed_back


def test_values_the_wire_never_sends_go_to_python() -> None:
    assert c_seed(event("openat", name=b"/x", flags="0"), None) is None  # not a str
    assert c_seed(event("openat", name="/x", flags="0", res=True), None) is None  # not an exact int
    assert c_seed(event("openat", name="/x", flags=["unhashable"]), None) is None
    assert c_seed(event("openat", name="/x", flags="0", args=["a"]), None) is None
    assert c_seed(event("openat", name="/x", flags="0"), {"exepath": "/x"}.items()) is None  # not a dict record
    assert c_seed({**event("openat", name="/x", flags="0"), "pid": None}, None) is None


def test_the_process_key_is_the_tables() -> None:
    assert c_seed_open is not None
    for host, pid in (("node-1", 7), ("né", 12), ("h", 2**70), ("h", -3), ("", 0)):
        asked: list[str] = []
        ev = {**event("openat", name="/x", flags="0"), "pid": pid}
        open_fields(ev, "openat")
        c_seed_open({}, ev, "openat", _open_flags_seen, lambda k: asked.append(k), host)  # noqa: B023
        assert asked == [proc_key(host, pid)]


def test_a_failing_lookup_raises_as_in_python() -> None:
    assert c_seed_open is not None
    ev = event("openat", name="/x", flags="0")
    open_fields(ev, "openat")
    out: dict[str, Any] = {}

    def broken(_key: str) -> Any:
        raise RuntimeError("table gone")

    with pytest.raises(RuntimeError, match="table gone"):
        c_seed_open(out, ev, "openat", _open_flags_seen, broken, "h")
    assert out == {}


def test_a_new_flags_combination_is_handed_back_once_then_seeded_in_c() -> None:
    ev = event("openat", name="/etc/passwd", flags="1052737", res=4)
    _open_flags_seen.pop(("openat", "1052737"), None)
    assert c_seed(ev, None) is None
    assert check(ev, None)


def test_random_events_match() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        ev = event(rng.choice(TYPES), name=rng.choice(NAMES), nameraw=rng.choice(NAMERAWS), flags=rng.choice(FLAGS),
                   res=rng.choice(RESULTS))
        check(ev, rng.choice(PROCS))


def state_with(p: Any) -> HostState:
    state = HostState(procs={}, users={}, containers={})
    if p is not None:
        state.procs["h|7"] = p
    return state


@pytest.mark.parametrize("p", PROCS)
def test_event_fields_are_the_same_with_and_without_the_c_path(p: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    events = [event(t, name=n, flags=f, res=r) for t, n, f, r in
              itertools.product(["openat", "creat"], NAMES, FLAGS[:7], [4, -2, ...])]
    events.append({"ts": 1, "type": "openat", "tid": 7, "args": {"name": "/x", "flags": "0"}})  # no pid

    def read(f: EventFields, key: str) -> Any:
        try:
            return f.get(key)
        except Exception as exc:  # noqa: BLE001 - compared below (a pid-less event has no process to read)
            return ("raises", type(exc))

    def build() -> list[Any]:
        out = []
        for ev in events:
            try:
                f = EventFields(ev, "h", state_with(p), 3)
            except Exception as exc:  # noqa: BLE001 - compared below
                out.append(("raises", type(exc)))
                continue
            proc = "missing" if f._proc is event_fields._MISSING else f._proc
            out.append(([(k, v, type(v)) for k, v in dict.items(f)], proc, read(f, "proc.name"), read(f, "fd.name")))
        return out

    with_c = build()
    monkeypatch.setattr(event_fields, "c_seed_open", None)
    assert build() == with_c
