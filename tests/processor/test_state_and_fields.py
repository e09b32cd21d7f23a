"""The thread table and Falco's fields as the worker computes them from wire events plus per-host state."""

from __future__ import annotations

import time
from typing import Any

from processor.event_fields import EventFields
from processor.pipeline import process_batch
from processor.rules_source import build_engine
from processor.state import HostState
from settings.config import Config
from tests.pipeline.helpers import batch, event, proc_info

T0 = 1_700_000_000_000_000_000
HOST = "node-a"


def new_state(**kw: Any) -> HostState:
    return HostState(procs={}, users={}, containers={}, **kw)


def tree(state: HostState) -> None:
    for ev in [
        event(T0, "snapshot", 1, comm="systemd", proc=proc_info("/usr/lib/systemd/systemd", ["/sbin/init"])),
        event(T0, "snapshot", 50, ppid=1, comm="sshd", proc=proc_info("/usr/sbin/sshd", ["sshd", "-D"])),
        event(T0, "snapshot", 100, ppid=50, comm="bash", proc=proc_info("/usr/bin/bash", ["-bash"])),
        event(T0, "user", 0, args={"uid": "1000", "name": "alice", "homedir": "/home/alice", "shell": "/bin/bash"}),
        event(T0 + 1, "clone", 100, comm="bash", res=200, args={"child_pid": "200", "child_tid": "200"}),
        event(T0 + 2, "execve", 200, ppid=100, uid=1000, comm="cat",
              proc=proc_info("/usr/bin/cat", ["cat", "/etc/shadow", "-n"], cwd="/tmp")),
    ]:
        state.apply(HOST, ev)


def fields_of(state: HostState, ev: dict[str, Any]) -> EventFields:
    return EventFields(ev, HOST, state, seq=7)


def test_fork_then_exec_gives_process_and_ancestry_fields() -> None:
    state = new_state()
    tree(state)
    f = fields_of(state, event(T0 + 3, "openat", 200, uid=1000, comm="cat", res=3,
                               args={"name": "/etc/shadow", "flags": "524288", "dirfd": "-100"}))
    assert f.get("proc.name") == "cat"
    assert f.get("proc.cmdline") == "cat /etc/shadow -n"
    assert f.get("proc.args") == "/etc/shadow -n"
    assert f.get("proc.exepath") == "/usr/bin/cat"
    assert f.get("proc.cwd") == "/tmp"
    assert f.get("proc.pname") == "bash"
    assert f.get("proc.pcmdline") == "bash"
    assert f.get("proc.aname[2]") == "sshd"
    assert f.get("proc.aname[3]") == "systemd"
    assert f.get("proc.aname[4]") is None
    assert f.get("proc.aname") == ["bash", "sshd", "systemd"]
    assert f.get("user.name") == "alice"
    assert f.get("user.uid") == 1000
    assert f.get("evt.num") == 7


def test_open_fields_in_falco_forms() -> None:
    state = new_state()
    tree(state)
    f = fields_of(state, event(T0, "openat", 200, res=3, args={"name": "/etc/shadow", "flags": str(0o2000000 | 0o1000 | 1)}))
    assert f.get("fd.name") == "/etc/shadow"
    assert f.get("fd.directory") == "/etc"
    assert f.get("fd.filename") == "shadow"
    assert f.get("fd.typechar") == "f"
    assert f.get("fd.num") == 3
    assert f.get("evt.arg.flags") == "O_WRONLY|O_TRUNC|O_CLOEXEC"
    assert f.get("evt.is_open_write") is True and f.get("evt.is_open_read") is False
    assert f.get("evt.res") == "3" and f.get("evt.rawres") == 3
    failed = fields_of(state, event(T0, "openat", 200, res=-2, args={"name": "/nope", "flags": "0"}))
    assert failed.get("evt.res") == "ENOENT" and failed.get("fd.num") is None


def test_connect_fields() -> None:
    state = new_state()
    tree(state)
    f = fields_of(state, event(T0, "connect", 200, res=0, args={
        "fd": "5", "family": "2", "sip": "10.0.0.5", "sport": "40000", "dip": "93.184.216.34", "dport": "443",
        "l4proto": "tcp", "fd.name": "10.0.0.5:40000->93.184.216.34:443"}))
    assert f.get("fd.name") == "10.0.0.5:40000->93.184.216.34:443"
    assert (f.get("fd.sip"), f.get("fd.sport"), f.get("fd.cip"), f.get("fd.cport")) == ("93.184.216.34", 443, "10.0.0.5", 40000)
    assert (f.get("fd.rport"), f.get("fd.lport"), f.get("fd.l4proto"), f.get("fd.typechar")) == (443, 40000, "tcp", "4")
    assert f.get("fd.num") == 5


def test_unknown_parent_is_missing_not_an_error() -> None:
    state = new_state()
    f = fields_of(state, event(T0, "openat", 4242, comm="mystery", res=3, args={"name": "/x", "flags": "0"}))
    assert f.get("proc.name") == "mystery"
    assert f.get("proc.pname") is None
    assert f.get("proc.aname[2]") is None


def test_exit_keeps_record_for_grace_then_purges() -> None:
    state = new_state(purge_grace_ns=1000)
    tree(state)
    state.apply(HOST, event(T0 + 10, "procexit", 100, comm="bash"))
    assert state.proc(HOST, 100) is not None  # children still resolve their parent during the grace period
    state.apply(HOST, event(T0 + 5000, "procexit", 999))
    assert state.proc(HOST, 100) is None
    assert state.purged == 1


def test_table_bound_is_counted() -> None:
    state = new_state(max_procs_per_host=2)
    tree(state)
    assert state.evicted >= 1
    assert state.proc_counts[HOST] == 2


def test_threads_do_not_create_processes() -> None:
    state = new_state()
    tree(state)
    state.apply(HOST, event(T0, "clone", 200, res=201, args={"child_pid": "200", "child_tid": "201", "flags": "CLONE_VM|CLONE_THREAD"}))
    assert state.proc(HOST, 201) is None


def test_batch_alerts_with_deterministic_ids_and_drop_reports() -> None:
    engine, report = build_engine(Config(), {"t.yaml": """
- rule: Shadow read
  desc: d
  condition: evt.type = openat and fd.name = /etc/shadow
  output: read (proc.name=%proc.name parent=%proc.pname)
  priority: WARNING
"""})
    assert engine is not None, report
    evs = [event(T0 + 3, "openat", 200, comm="cat", res=3, args={"name": "/etc/shadow", "flags": "0"}),
           event(T0 + 4, "drop", 0, args={"n_evts": "1000", "n_drops_buffer": "12"})]
    state = new_state()
    tree(state)
    first = process_batch(batch(HOST, 40, evs), state, engine)
    again = process_batch(batch(HOST, 40, evs), state, engine)
    assert [a["rule"] for a in first.alerts] == ["Shadow read", "Falco internal: syscall event drop"]
    assert [a["uuid"] for a in first.alerts] == [a["uuid"] for a in again.alerts]
    shadow, drop = first.alerts
    assert shadow["output_fields"]["proc.pname"] == "bash" and shadow["hostname"] == HOST
    assert drop["priority"] == "Debug" and drop["source"] == "internal" and drop["output_fields"]["n_drops"] == 12


def test_open_fields_computed_together_equal_each_fields_own_extractor() -> None:
    from processor.event_fields import EXTRACTORS, evt_arg, open_fields

    state = new_state()
    tree(state)
    for etype in ("open", "openat", "openat2", "creat"):
        for args in ({"name": "/etc/shadow", "flags": "524288"}, {"name": "/var/log/x", "flags": str(0o2 | 0o100)},
                     {"name": "/srv", "flags": str(0o200000)}, {"name": "rel/file", "flags": "1"},
                     {"flags": "0"}, {"name": "/tmp/noflags"}):
            for res in (3, 0, -2):
                ev = event(T0, etype, 200, res=res, args=args)
                seeded = open_fields(ev, etype)
                f = fields_of(state, ev)
                for key, value in seeded.items():
                    own = evt_arg(f, "flags") if key == "evt.arg.flags" else EXTRACTORS[key](f)
                    assert own == value, (etype, args, res, key)


def test_nameraw_is_the_path_as_passed() -> None:
    state = new_state()
    tree(state)
    ev = event(T0, "openat", 200, res=3, args={"name": "/etc/shadow", "nameraw": "../../etc/shadow", "flags": "0"})
    assert fields_of(state, ev).get("fd.nameraw") == "../../etc/shadow"
    assert fields_of(state, ev).get("fd.name") == "/etc/shadow"


def test_container_mount_dest_is_na_without_such_mount() -> None:
    state = new_state()
    tree(state)
    state.apply(HOST, event(T0, "container", 0, args={"id": "abcdef123456", "mounts": "/var/run/docker.sock:/run/d.sock"}))
    state.apply(HOST, event(T0, "snapshot", 300, ppid=1, comm="sh",
                            proc={**proc_info("/bin/sh", ["sh"]), "container_id": "abcdef123456"}))
    f = fields_of(state, event(T0, "execve", 300, comm="sh"))
    assert f.get("container.mount.dest[/var/run/docker.sock]") == "/run/d.sock"
    assert f.get("container.mount.dest[/proc*]") == "N/A"
    host = fields_of(state, event(T0, "execve", 200, comm="cat"))
    assert host.get("container.mount.dest[/proc*]") is None


def test_an_event_that_makes_the_engine_raise_is_set_aside_and_the_batch_goes_on() -> None:
    engine, report = build_engine(Config(), {"t.yaml": """
- rule: Shadow read
  desc: d
  condition: evt.type = openat and fd.name = /etc/shadow
  output: read (proc.name=%proc.name)
  priority: WARNING
"""})
    assert engine is not None, report

    class Exploding:
        """The real engine, failing on one poisoned event (as a bug in a field extractor would)."""

        def process(self, event: Any) -> Any:
            if event.get("fd.name") == "/poison":
                raise ValueError("boom")
            return engine.process(event)

        def format_alert(self, *a: Any) -> Any:
            return engine.format_alert(*a)

        def evaluated_event_types(self) -> Any:
            return engine.evaluated_event_types()

    state = new_state()
    tree(state)
    evs = [event(T0, "openat", 200, comm="cat", res=3, args={"name": "/poison", "flags": "0"}),
           event(T0 + 1, "openat", 200, comm="cat", res=3, args={"name": "/etc/shadow", "flags": "0"})]
    result = process_batch(batch(HOST, 10, evs), state, Exploding())
    assert [f.seq for f in result.failures] == [10] and "ValueError: boom" in result.failures[0].error
    assert [a["rule"] for a in result.alerts] == ["Shadow read"]


def _records() -> list[dict[str, Any]]:
    """Process records as the table holds them, plus the odd ones a field must still answer for."""
    full = {"pid": 300, "ppid": 1, "comm": "python3", "exe": "python3", "exepath": "/usr/bin/python3.12",
            "args": ["-m", "http.server"], "cwd": "/srv", "env": ["A=1", "B=2"], "container_id": "abcdef123456",
            "exe_from_memfd": True, "exe_upper_layer": False}
    return [full, {**full, "exepath": ""}, {**full, "exepath": "", "exe": ""}, {**full, "exepath": "/usr/bin/"},
            {**full, "args": []}, {**full, "container_id": ""}, {"pid": 301}, {"pid": 302, "comm": ""}]


def test_process_fields_seeded_together_equal_each_fields_own_extractor() -> None:
    from processor.event_fields import EXTRACTORS, name_and_container, process_fields

    for rec in _records():
        state = new_state()
        state.procs[f"{HOST}|{rec['pid']}"] = rec
        f = fields_of(state, event(T0, "clone", rec["pid"], comm="fallback"))  # a type that seeds nothing
        for seeded in (process_fields(rec), name_and_container(rec)):
            for key, value in seeded.items():
                assert EXTRACTORS[key](f) == value, (rec, key)


def test_opens_execs_and_connects_see_their_process_fields_without_touching_the_record() -> None:
    state = new_state()
    tree(state)
    before = {k: dict(v) for k, v in state.procs.items()}
    for etype, args in (("openat", {"name": "/etc/hosts", "flags": "0"}), ("execve", {}),
                        ("connect", {"family": "2", "dip": "1.2.3.4", "dport": "80"})):
        f = fields_of(state, event(T0 + 5, etype, 200, comm="cat", args=args))
        assert (f.get("proc.name"), f.get("container.id"), f.get("proc.cmdline"), f.get("proc.pname")) == (
            "cat", "host", "cat /etc/shadow -n", "bash"), etype
    assert state.procs == before
    unknown = fields_of(state, event(T0, "openat", 999, comm="ghost", args={"name": "/x", "flags": "0"}))
    assert unknown.get("proc.name") == "ghost" and unknown.get("container.id") == "host"


def test_a_malformed_record_fails_only_the_field_that_cannot_be_read() -> None:
    state = new_state()
    state.procs[f"{HOST}|400"] = {"pid": 400, "exepath": "/bin/odd", "args": [1, 2], "container_id": "c1"}
    f = fields_of(state, event(T0, "execve", 400, comm="odd"))
    assert f.get("proc.name") == "odd" and f.get("container.id") == "c1"
    try:
        f.get("proc.cmdline")
    except TypeError:
        pass
    else:
        raise AssertionError("proc.cmdline of non-text args reads as an error, as before seeding")


def test_ancestor_levels_read_directly_equal_their_argument_reading() -> None:
    from processor.event_fields import ARG_EXTRACTORS, EXTRACTORS

    state = new_state()
    tree(state)
    f = fields_of(state, event(T0 + 3, "openat", 200, comm="cat", args={"name": "/x", "flags": "0"}))
    for field in ("proc.aname", "proc.aexe", "proc.aexepath", "proc.apid"):
        for n in range(6):
            assert EXTRACTORS[f"{field}[{n}]"](f) == ARG_EXTRACTORS[field](f, str(n)), (field, n)
    assert [f.get(f"proc.aname[{n}]") for n in range(5)] == ["cat", "bash", "sshd", "systemd", None]
    assert f.get("proc.apid[1]") == 100 and f.get("proc.aname[01]") == "bash"  # any spelling of the level


def test_socket_fields_computed_together_equal_each_fields_own_extractor() -> None:
    from processor.event_fields import EXTRACTORS, socket_fields

    state = new_state()
    tree(state)
    v4 = {"fd": "5", "family": "2", "l4proto": "tcp", "sip": "10.0.0.5", "sport": "40000", "dip": "1.2.3.4",
          "dport": "443"}
    cases = [v4, {**v4, "family": "10", "sip": "fd00::5", "dip": "2001:db8::1", "l4proto": "udp"},
             {**v4, "sip": "", "sport": ""}, {**v4, "dip": "", "dport": ""}, {**v4, "l4proto": ""},
             {"fd": "5", "family": "2"}, {**v4, "family": "1"}, {**v4, "family": "16"}, {**v4, "family": "x"},
             {**v4, "family": ""}, {**v4, "sport": "nan"}, {}]
    for etype in ("connect", "accept4", "sendto", "bind"):
        for args in cases:
            ev = event(T0, etype, 200, res=0, args=args)
            f = fields_of(state, ev)
            try:
                seeded = socket_fields(ev)
            except ValueError:
                seeded = {}
            for key, value in seeded.items():
                assert EXTRACTORS[key](f) == value, (etype, args, key)
            for key in ("fd.ip", "fd.net", "fd.port", "fd.sip", "fd.typechar", "fd.sockfamily", "fd.l4proto"):
                if args.get("sport") == "nan" and key == "fd.port":
                    continue  # a port that is no number fails when read, seeded or not
                assert f.get(key) == EXTRACTORS[key](f), (etype, args, key)


def test_ancestry_seeded_on_execs_equals_each_fields_own_extractor() -> None:
    from processor.event_fields import EXTRACTORS, ancestry_fields

    state = new_state()
    tree(state)
    state.apply(HOST, event(T0 + 3, "snapshot", 500, ppid=200, comm="", proc={**proc_info("", [""]), "exe": ""}))
    for pid in (200, 100, 1, 500):
        f = fields_of(state, event(T0 + 4, "execve", pid, comm="x"))
        seeded = ancestry_fields(f.ancestors)
        assert set(seeded) >= {"proc.pname", "proc.aname"}
        for key, value in seeded.items():
            assert EXTRACTORS[key](f) == value and f.get(key) == value, (pid, key)
    assert fields_of(state, event(T0 + 4, "execve", 500, comm="x")).get("proc.aname") == ["cat", "bash", "sshd",
                                                                                         "systemd"]


def test_namespace_ids_are_the_ones_the_process_sees() -> None:
    """In a container's pid namespace: proc.vpid/vpgid/pvpid and thread.vtid are the namespace's numbers, proc.pid
    and proc.pgid the host's; a number the sensor could not know is <NA>, never the host's in disguise."""
    state = new_state()
    tree(state)
    shim = proc_info("/usr/bin/containerd-shim", ["containerd-shim"]) | {"vpid": 290, "pgid": 290, "vpgid": 290}
    init = proc_info("/app/server", ["server"]) | {"vpid": 1, "pgid": 300, "vpgid": 1}
    state.apply(HOST, event(T0, "snapshot", 290, ppid=1, comm="containerd-shim", proc=shim))
    state.apply(HOST, event(T0, "snapshot", 300, ppid=290, comm="server", proc=init))
    state.apply(HOST, event(T0 + 1, "clone", 300, comm="server", res=301,
                            args={"child_pid": "301", "child_tid": "301", "child_vpid": "2"}))
    leader = fields_of(state, event(T0 + 2, "openat", 300, comm="server", res=3, args={"name": "/etc/hosts"}))
    assert (leader.get("proc.pid"), leader.get("proc.vpid"), leader.get("thread.vtid")) == (300, 1, 1)
    assert (leader.get("proc.pgid"), leader.get("proc.vpgid"), leader.get("proc.is_vpgid_leader")) == (300, 1, True)
    assert leader.get("proc.pvpid") == 290  # the shim, in the host namespace
    child = fields_of(state, event(T0 + 3, "openat", 301, comm="server", res=3, args={"name": "/etc/hosts"}))
    assert (child.get("proc.vpid"), child.get("proc.pvpid"), child.get("proc.vpgid")) == (2, 1, 1)
    assert child.get("proc.is_vpgid_leader") is False
    thread = fields_of(state, event(T0 + 4, "openat", 300, comm="server", res=3, args={"name": "/etc/hosts"})
                       | {"tid": 305})
    assert thread.get("thread.tid") == 305 and thread.get("thread.vtid") is None
    host_thread = fields_of(state, event(T0 + 5, "openat", 290, res=3, args={"name": "/x"}) | {"tid": 295})
    assert host_thread.get("thread.vtid") == 295


def test_records_from_sensors_before_vpgid_give_the_host_group_only_in_the_host_namespace() -> None:
    state = new_state()
    old_host = proc_info("/usr/bin/bash", ["bash"]) | {"vpid": 400, "pgid": 390}
    old_container = proc_info("/app/server", ["server"]) | {"vpid": 1, "pgid": 500}
    state.apply(HOST, event(T0, "snapshot", 400, ppid=1, comm="bash", proc=old_host))
    state.apply(HOST, event(T0, "snapshot", 500, ppid=1, comm="server", proc=old_container))
    assert fields_of(state, event(T0 + 1, "openat", 400, res=3, args={"name": "/x"})).get("proc.vpgid") == 390
    assert fields_of(state, event(T0 + 1, "openat", 500, res=3, args={"name": "/x"})).get("proc.vpgid") == 0


def test_session_group_and_time_fields_falco_documents() -> None:
    """proc.sid.exe, proc.vpgid.name (the tuning fields Falco's own rules suggest), proc.loginshellid,
    proc.ppid.duration & co., from the table; evt.time.s & co. from the event's time."""
    state = new_state()
    sshd = proc_info("/usr/sbin/sshd", ["sshd: alice"]) | {"sid": 50, "pgid": 50, "start_ts": T0 - 10**9}
    bash = proc_info("/usr/bin/bash", ["-bash"]) | {"sid": 50, "pgid": 100, "start_ts": T0 - 5 * 10**9}
    sh = proc_info("/bin/sh", ["sh", "-c", "cat x"]) | {"sid": 50, "pgid": 100, "start_ts": T0 - 2 * 10**9}
    cat = proc_info("/usr/bin/cat", ["cat", "/etc/shadow", "-n"]) | {"sid": 50, "pgid": 100, "start_ts": T0}
    for pid, ppid, proc in ((50, 1, sshd), (100, 50, bash), (150, 100, sh), (200, 150, cat)):
        state.apply(HOST, event(T0, "snapshot", pid, ppid=ppid, proc=proc))
    ts = 1_700_000_003_250_000_000
    f = fields_of(state, event(ts, "openat", 200, res=3, args={"name": "/etc/shadow", "flags": "0"}))
    assert (f.get("proc.sid.exe"), f.get("proc.sid.exepath")) == ("sshd: alice", "/usr/sbin/sshd")
    assert (f.get("proc.vpgid.name"), f.get("proc.vpgid.exe"), f.get("proc.vpgid.exepath")) == (
        "bash", "-bash", "/usr/bin/bash")
    assert f.get("proc.loginshellid") == 100  # the oldest shell above cat: bash, not sh
    assert (f.get("proc.exeline"), f.get("proc.cmdnargs"), f.get("proc.cmdlenargs")) == ("cat /etc/shadow -n", 2, 13)
    assert (f.get("proc.pid.ts"), f.get("proc.ppid.ts")) == (T0, T0 - 2 * 10**9)
    assert f.get("proc.ppid.duration") == ts - (T0 - 2 * 10**9)
    assert f.get("thread.ismain") is True
    assert (f.get("evt.rawtime.s"), f.get("evt.rawtime.ns")) == (1_700_000_003, 250_000_000)
    assert f.get("evt.time.s") == time.strftime("%H:%M:%S", time.localtime(1_700_000_003))
    assert f.get("evt.datetime.s") == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(1_700_000_003))
    assert (f.get("container.full_id"), f.get("container.duration")) == ("host", None)
    orphan = fields_of(state, event(ts, "openat", 4242, res=3, args={"name": "/x", "flags": "0"}) | {"tid": 4243})
    assert (orphan.get("proc.loginshellid"), orphan.get("proc.vpgid.name"), orphan.get("thread.ismain")) == (
        None, None, False)


def test_container_identity_and_age() -> None:
    state = new_state()
    full = "5b9e0c7d1a2f" + "0" * 52
    state.apply(HOST, event(T0, "container", 0, args={
        "id": full[:12], "full_id": full, "type": "containerd", "image_digest": "sha256:abc", "start_ts": str(T0)}))
    state.apply(HOST, event(T0, "snapshot", 300, ppid=1, proc=proc_info("/app/server", ["server"])
                            | {"container_id": full[:12]}))
    f = fields_of(state, event(T0 + 7, "openat", 300, res=3, args={"name": "/x", "flags": "0"}))
    assert (f.get("container.id"), f.get("container.full_id")) == (full[:12], full)
    assert (f.get("container.image.digest"), f.get("container.duration")) == ("sha256:abc", 7)


def test_ancestor_command_lines() -> None:
    state = new_state()
    tree(state)
    f = fields_of(state, event(T0 + 3, "openat", 200, res=3, args={"name": "/x", "flags": "0"}))
    assert (f.get("proc.acmdline[0]"), f.get("proc.acmdline[1]"), f.get("proc.acmdline[2]")) == (
        "cat /etc/shadow -n", "bash", "sshd -D")
    assert f.get("proc.acmdline") == ["bash", "sshd -D", "systemd"]


def test_container_labels_pod_ids_and_host_namespaces() -> None:
    state = new_state()
    state.apply(HOST, event(T0, "container", 0, args={
        "id": "c0ffee000001", "type": "cri-o", "k8s_pod_uid": "0f1e-uid", "k8s_sandbox_id": "b" * 64,
        "host_network": "true", "host_pid": "false", "labels": '{"app":"api","team":"pay"}'}))
    state.apply(HOST, event(T0, "snapshot", 300, ppid=1, proc=proc_info("/app/api", ["api"])
                            | {"container_id": "c0ffee000001"}))
    f = fields_of(state, event(T0 + 1, "connect", 300, res=0, args={"fd": "3"}))
    assert (f.get("container.label[team]"), f.get("container.label[nope]")) == ("pay", None)
    assert f.get("container.labels") == "app:api, team:pay"
    assert (f.get("k8s.pod.uid"), f.get("k8s.pod.id")) == ("0f1e-uid", "0f1e-uid")
    assert (f.get("k8s.pod.sandbox_id"), f.get("k8s.pod.full_sandbox_id")) == ("b" * 12, "b" * 64)
    assert (f.get("container.host_network"), f.get("container.host_pid"), f.get("container.host_ipc")) == (
        True, False, None)
    host = fields_of(state, event(T0 + 1, "connect", 1, res=0, args={"fd": "3"}))
    assert (host.get("container.labels"), host.get("container.host_network"), host.get("k8s.pod.uid")) == (
        None, None, None)


def test_pod_labels_and_ip_from_cri() -> None:
    state = new_state()
    state.apply(HOST, event(T0, "container", 0, args={
        "id": "c0ffee000002", "type": "containerd", "pod_labels": '{"app":"web","tier":"front"}',
        "pod_ip": "10.244.1.7"}))
    state.apply(HOST, event(T0, "snapshot", 310, ppid=1, proc=proc_info("/app/web", ["web"])
                            | {"container_id": "c0ffee000002"}))
    f = fields_of(state, event(T0 + 1, "connect", 310, res=0, args={"fd": "3"}))
    assert (f.get("k8s.pod.label[app]"), f.get("k8s.pod.label[nope]")) == ("web", None)
    assert (f.get("k8s.pod.labels"), f.get("k8s.pod.ip")) == ("app:web, tier:front", "10.244.1.7")


def test_counting_io_and_role_fields() -> None:
    state = new_state()
    tree(state)
    failed_open = fields_of(state, event(T0, "openat", 200, res=-2, args={"name": "/nope", "flags": "0"}))
    assert (failed_open.get("evt.count"), failed_open.get("evt.count.exit"), failed_open.get("evt.count.error")) == (
        1, 1, 1)
    assert (failed_open.get("evt.count.error.file"), failed_open.get("evt.count.error.net"),
            failed_open.get("evt.count.error.other")) == (1, 0, 0)
    assert failed_open.get("evt.type.is[openat]") == 1 and failed_open.get("evt.type.is.connect") == 0
    assert (failed_open.get("evt.is_io"), failed_open.get("evt.io_dir"), failed_open.get("fd.is_server")) == (
        False, None, None)
    sent = fields_of(state, event(T0, "sendto", 200, res=12, args={"fd": "3"}))
    assert (sent.get("evt.is_io"), sent.get("evt.is_io_write"), sent.get("evt.io_dir")) == (True, True, "w")
    assert (sent.get("evt.count.error"), sent.get("fd.is_server"), sent.get("evt.is_wait")) == (0, False, False)
    accepted = fields_of(state, event(T0, "accept4", 200, res=-11, args={"fd": "3"}))
    assert (accepted.get("fd.is_server"), accepted.get("evt.count.error.net")) == (True, 1)
    odd = fields_of(state, event(T0, "ptrace", 200, res=-1, args={}))
    assert odd.get("evt.count.error.other") == 1


def test_types_no_rule_looks_at_still_change_state_and_a_rule_on_every_type_sees_them() -> None:
    typed, report = build_engine(Config(), {"t.yaml": """
- rule: Cat opens
  desc: d
  condition: evt.type = openat and proc.name = cat
  output: open (proc.name=%proc.name parent=%proc.pname)
  priority: WARNING
"""})
    untyped, report2 = build_engine(Config(), {"t.yaml": """
- rule: Anything by cat
  desc: d
  condition: proc.name = cat
  output: seen %evt.type (proc.name=%proc.name)
  priority: WARNING
"""})
    assert typed is not None and untyped is not None, (report, report2)
    assert typed.evaluated_event_types() == frozenset({"openat"})
    assert untyped.evaluated_event_types() is None
    evs = [event(T0 + 1, "clone", 100, comm="bash", res=300, args={"child_pid": "300", "child_tid": "300"}),
           event(T0 + 2, "execve", 300, ppid=100, comm="cat", proc=proc_info("/usr/bin/cat", ["cat", "/x"])),
           event(T0 + 3, "openat", 300, comm="cat", res=3, args={"name": "/x", "flags": "0"}),
           event(T0 + 4, "procexit", 300, comm="cat")]
    state = new_state()
    tree(state)
    result = process_batch(batch(HOST, 1, evs), state, typed)
    # the clone nobody evaluates still made the process, with its parent, and the exit still ended it
    assert [(a["rule"], a["output_fields"]["proc.pname"]) for a in result.alerts] == [("Cat opens", "bash")]
    assert state.proc(HOST, 300)["exit_ts"] == T0 + 4  # type: ignore[index]
    state = new_state()
    tree(state)
    result = process_batch(batch(HOST, 1, evs), state, untyped)
    assert [a["output_fields"]["evt.type"] for a in result.alerts] == ["execve", "openat", "procexit"]
