"""The thread table stays bounded: exited processes go after the grace period, a full host table counts what it
cannot track, and a worker that inherits hosts after a rebalance recounts them from the table."""

from __future__ import annotations

import logging

import pytest

from processor.state import HostState
from tests.pipeline.helpers import event, proc_info

T0 = 1_700_000_000_000_000_000
S = 10**9


def snapshot(pid: int, ts: int = T0) -> dict:  # type: ignore[type-arg]
    return event(ts, "snapshot", pid, ppid=1, comm="sleep", proc=proc_info("/usr/bin/sleep", ["sleep", "9"]))


def test_exited_process_is_kept_for_the_grace_period_then_purged() -> None:
    state = HostState(procs={}, users={}, containers={}, purge_grace_ns=5 * S)
    state.apply("h", snapshot(1))
    state.apply("h", snapshot(42))
    state.apply("h", event(T0 + S, "procexit", 42, comm="sleep"))
    assert state.proc("h", 42) is not None  # late events of pid 42 still resolve it
    state.apply("h", event(T0 + 4 * S, "procexit", 7, comm="other"))
    assert state.proc("h", 42) is not None
    state.apply("h", event(T0 + 7 * S, "procexit", 8, comm="other"))
    assert state.proc("h", 42) is None and state.purged == 1
    assert state.proc_counts["h"] == 1


def test_a_full_host_table_counts_the_processes_it_cannot_track(caplog: pytest.LogCaptureFixture) -> None:
    state = HostState(procs={}, users={}, containers={}, max_procs_per_host=3)
    with caplog.at_level(logging.WARNING, logger="peregrine.state"):
        for pid in range(10, 15):
            state.apply("h", snapshot(pid))
        state.apply("other", snapshot(10))
    assert state.proc_counts == {"h": 3, "other": 1}
    assert state.evicted == 2
    assert state.proc("h", 13) is None and state.proc("other", 10) is not None
    full = [r.getMessage() for r in caplog.records if "thread table full" in r.getMessage()]
    assert len(full) == 1 and full[0].startswith("h: thread table full (3 processes)")  # once, naming the host


def test_recount_after_a_rebalance_includes_recovered_hosts_and_their_exits() -> None:
    procs: dict = {}  # type: ignore[type-arg]
    first = HostState(procs=procs, users={}, containers={}, purge_grace_ns=5 * S)
    first.apply("moved", snapshot(1))
    first.apply("moved", snapshot(2))
    first.apply("moved", event(T0 + S, "procexit", 2, comm="sleep"))
    # Another worker's state over the same (recovered) table: it never saw these events.
    second = HostState(procs=procs, users={}, containers={}, purge_grace_ns=5 * S, max_procs_per_host=3)
    second.forget_counts()
    second.apply("moved", snapshot(3))
    assert second.proc_counts["moved"] == 3
    second.apply("moved", snapshot(4))
    assert second.evicted == 1
    second.apply("moved", event(T0 + 10 * S, "procexit", 9, comm="x"))
    assert second.proc("moved", 2) is None and second.proc_counts["moved"] == 2


class CountingTable(dict):  # type: ignore[type-arg]
    """Stands for a Faust table: every write or delete would be one changelog record."""

    def __init__(self) -> None:
        super().__init__()
        self.records = 0

    def __setitem__(self, key: str, value: object) -> None:
        self.records += 1
        super().__setitem__(key, value)

    def pop(self, key: str, default: object = None) -> object:
        self.records += 1
        return super().pop(key, default)


def test_write_back_store_writes_each_changed_process_once_per_record() -> None:
    from processor.state import WriteBackStore

    table = CountingTable()
    store = WriteBackStore(table)
    state = HostState(procs=store, users={}, containers={}, purge_grace_ns=0)
    state.apply("h", snapshot(100))
    state.apply("h", event(T0 + 1, "clone", 100, res=200, args={"child_pid": "200"}))
    state.apply("h", event(T0 + 2, "execve", 200, comm="cat", proc=proc_info("/usr/bin/cat", ["cat", "x"])))
    assert table.records == 0 and state.proc("h", 200)["exe"] == "cat"  # type: ignore[index]
    assert store.flush() == 2 and table.records == 2  # pid 100 and pid 200, once each
    state.apply("h", event(T0 + 3, "procexit", 200, comm="cat"))  # grace 0: purged at once
    assert state.proc("h", 200) is None
    assert store.flush() == 1 and "h|200" not in table and "h|100" in table
    assert "h|200" not in store.cache  # a purged process leaves nothing behind in the worker's memory
    store.forget()
    assert store.get("h|100") == table["h|100"]


def test_a_keyframe_snapshot_fills_gaps_but_keeps_what_the_stream_built() -> None:
    """A periodic snapshot reads argv from /proc, which a process may have rewritten since its exec (nginx's
    "nginx: worker process"): the exec-time record stays; unknown and exited pids are filled."""
    state = HostState(procs={}, users={}, containers={})
    state.apply("h", snapshot(1))
    state.apply("h", event(T0 + 1, "clone", 1, comm="sleep", res=42, args={"child_pid": "42"}))
    state.apply("h", event(T0 + 2, "execve", 42, ppid=1, comm="nginx",
                           proc=proc_info("/usr/sbin/nginx", ["nginx", "-g", "daemon off;"])))
    state.apply("h", snapshot(77))
    state.apply("h", event(T0 + 3, "procexit", 77, comm="sleep"))

    def keyframe(pid: int, argv: list[str]) -> dict:  # type: ignore[type-arg]
        return {**event(T0 + 10 * S, "snapshot", pid, ppid=1, comm=argv[0][:15],
                        proc=proc_info("/usr/sbin/" + argv[0], argv)), "args": {"periodic": "true"}}

    state.apply("h", keyframe(42, ["nginx: worker process"]))
    state.apply("h", keyframe(77, ["reused", "pid"]))  # pid 77 exited; the keyframe's 77 is a new process
    state.apply("h", keyframe(300, ["unknown", "before"]))
    assert state.proc("h", 42)["args"] == ["-g", "daemon off;"]  # type: ignore[index]
    assert state.proc("h", 77)["args"] == ["pid"] and not state.proc("h", 77).get("exit_ts")  # type: ignore[index,union-attr]
    assert state.proc("h", 300)["exe"] == "unknown"  # type: ignore[index]
    assert state.proc_counts["h"] == 4
