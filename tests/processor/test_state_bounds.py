"""The thread table stays bounded: exited processes go after the grace period, a full host table counts what it
cannot track, and a worker that inherits hosts after a rebalance recounts them from the table."""

from __future__ import annotations

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


def test_a_full_host_table_counts_the_processes_it_cannot_track() -> None:
    state = HostState(procs={}, users={}, containers={}, max_procs_per_host=3)
    for pid in range(10, 15):
        state.apply("h", snapshot(pid))
    state.apply("other", snapshot(10))
    assert state.proc_counts == {"h": 3, "other": 1}
    assert state.evicted == 2
    assert state.proc("h", 13) is None and state.proc("other", 10) is not None


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
