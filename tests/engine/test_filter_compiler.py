"""Condition semantics users rely on: every operator, missing fields, types, modifiers, transformers."""

from __future__ import annotations

import re
from typing import Any

import pytest

from processor.engine.filter_compiler import FilterCompileError, compile_filter
from processor.engine.parser import parse_condition


def matches(condition: str, event: dict[str, Any], source: str = "syscall") -> bool:
    return compile_filter(parse_condition(condition), source).match(event)


def compile_error(condition: str) -> FilterCompileError:
    with pytest.raises(FilterCompileError) as info:
        compile_filter(parse_condition(condition))
    return info.value


@pytest.mark.parametrize(
    ("condition", "event", "expected"),
    [
        ("proc.name = bash", {"proc.name": "bash"}, True),
        ("proc.name == bash", {"proc.name": "zsh"}, False),
        ("proc.name != bash", {"proc.name": "zsh"}, True),
        ("proc.name != bash", {"proc.name": "bash"}, False),
        ("proc.name < 5", {"proc.name": "4"}, True),
        ("proc.name >= 5", {"proc.name": "45"}, False),  # strcmp order
        ("proc.cmdline contains curl", {"proc.cmdline": "sh -c curl x"}, True),
        ("proc.cmdline icontains CURL", {"proc.cmdline": "sh -c Curl x"}, True),
        ("proc.cmdline contains CURL", {"proc.cmdline": "sh -c Curl x"}, False),
        ("fd.name startswith /etc/", {"fd.name": "/etc/shadow"}, True),
        ("fd.name endswith shadow", {"fd.name": "/etc/shadow"}, True),
        ("fd.name endswith shadow", {"fd.name": "/etc/passwd"}, False),
        # affixes are tested as slices: values shorter than, equal to and around the affix; the empty affix
        ("fd.name startswith /etc/", {"fd.name": "/et"}, False),
        ("fd.name startswith /etc/", {"fd.name": "/etc/"}, True),
        ("fd.name startswith /etc/", {"fd.name": ""}, False),
        ("fd.name endswith shadow", {"fd.name": "adow"}, False),
        ("fd.name endswith shadow", {"fd.name": "shadow"}, True),
        ("fd.name endswith shadow", {"fd.name": "shadowx"}, False),
        ("fd.name startswith ''", {"fd.name": "x"}, True),
        ("fd.name endswith ''", {"fd.name": "x"}, True),
        ("fd.name endswith ''", {"fd.name": ""}, True),
        ("fd.name startswith /ét", {"fd.name": "/étc"}, True),
        ("fd.name endswith é", {"fd.name": "/étc/café"}, True),
        ("fd.name startswith /etc/", {}, False),
        ("not fd.name endswith x", {}, True),
        ("fd.name glob '/etc/*'", {"fd.name": "/etc/ssh/sshd_config"}, True),  # '*' crosses '/'
        ("fd.name glob /etc/?hadow", {"fd.name": "/etc/shadow"}, True),
        ("fd.name glob /etc/[a-r]*", {"fd.name": "/etc/shadow"}, False),
        ("fd.name glob /etc/[!a-r]*", {"fd.name": "/etc/shadow"}, True),
        ("fd.name iglob /ETC/*", {"fd.name": "/etc/shadow"}, True),
        ("fd.name glob /ETC/*", {"fd.name": "/etc/shadow"}, False),
        ("proc.name regex 'ba.h'", {"proc.name": "bash"}, True),
        ("proc.name regex 'ba'", {"proc.name": "bash"}, False),  # full match, not search
        ("proc.name in (bash, zsh)", {"proc.name": "zsh"}, True),
        ("proc.name in (bash, zsh)", {"proc.name": "sh"}, False),
        ("proc.name intersects (bash, zsh)", {"proc.name": "zsh"}, True),
        ("proc.name in ()", {"proc.name": "zsh"}, False),
        ("fd.name pmatch (/opt/dir)", {"fd.name": "/opt/dir/subdir/file.txt"}, True),
        ("fd.name pmatch (/opt/dir)", {"fd.name": "/opt/dir"}, True),
        ("fd.name pmatch (/opt/di)", {"fd.name": "/opt/dir/subdir/file.txt"}, False),
        ("fd.name pmatch (/opt/dirt, /usr/*/bin)", {"fd.name": "/usr/local/bin/x"}, True),
        ("fd.name pmatch (/opt/dirt, /usr/*/bin)", {"fd.name": "/usr/local/sbin/x"}, False),
        ("proc.name exists", {"proc.name": "bash"}, True),
        ("proc.name exists", {}, False),
        ("not proc.name exists", {}, True),
    ],
)
def test_string_operators(condition: str, event: dict[str, Any], expected: bool) -> None:
    assert matches(condition, event) is expected


@pytest.mark.parametrize(
    "condition",
    ["proc.name = bash", "proc.name != bash", "proc.name contains a", "proc.name icontains a",
     "proc.name startswith a", "proc.name endswith a", "proc.name glob '*'", "proc.name regex '.*'",
     "proc.name in (a, b)", "proc.name pmatch (/)", "proc.name < 9", "proc.pid = 1", "proc.pid != 1",
     "proc.pid > 0", "proc.pid in (1, 2)", "fd.sip = 10.0.0.1", "fd.sip != 10.0.0.1", "fd.net != 10.0.0.0/8",
     "fd.snet in (10.0.0.0/8)", "proc.is_exe_upper_layer = true", "proc.is_exe_upper_layer != true",
     "proc.aname = bash", "proc.aname != bash", "proc.aname[2] != bash", "evt.arg.flags != x",
     "proc.name startswith anyof (a, b)", "proc.name != allof (a, b)", "tolower(proc.name) != x",
     "proc.name != val(proc.pname)", "evt.buffer bcontains 6869", "ka.user.groups intersects (a)"],
)
def test_a_check_on_a_missing_field_is_false_for_every_operator(condition: str) -> None:
    source = "k8s_audit" if condition.startswith("ka.") else "syscall"
    event = {"proc.pname": "x"}
    assert matches(condition, event, source) is False
    assert matches(f"not ({condition})", event, source) is True
    assert matches(condition, {"proc.name": None, "proc.pid": None}, source) is False


@pytest.mark.parametrize(
    ("condition", "event", "expected"),
    [
        ("proc.pid = 42", {"proc.pid": 42}, True),
        ("proc.pid = 42", {"proc.pid": "42"}, True),  # numeric strings from JSON field maps
        ("proc.pid > 40", {"proc.pid": "42"}, True),
        ("proc.pid <= 41", {"proc.pid": 42}, False),
        ("proc.pid < 100 and proc.pid >= 42", {"proc.pid": 42}, True),
        ("proc.pid in (1, 42)", {"proc.pid": 42}, True),
        ("proc.pid != 1", {"proc.pid": 42}, True),
        ("proc.pid = 42", {"proc.pid": "forty-two"}, False),
        ("user.uid = 0", {"user.uid": 0}, True),
        ("evt.rawres >= 0", {"evt.rawres": -2}, False),
        ("evt.rawres < 0", {"evt.rawres": -2}, True),
        ("fd.sport = 22", {"fd.sport": 22}, True),
        ("proc.tty != 0", {"proc.tty": 34816}, True),
        ("proc.fdusage > 0.5", {"proc.fdusage": 0.75}, True),
    ],
)
def test_numeric_fields(condition: str, event: dict[str, Any], expected: bool) -> None:
    assert matches(condition, event) is expected


def test_numeric_strings_stay_strings_for_string_fields() -> None:
    assert matches("proc.name = 0123", {"proc.name": "0123"}) is True
    assert matches("proc.name = 123", {"proc.name": "0123"}) is False
    assert matches("evt.arg.uid = 0", {"evt.arg.uid": "0"}) is True
    assert matches("proc.name in (1, 2)", {"proc.name": "2"}) is True
    assert matches("proc.name > 10", {"proc.name": "9"}) is True  # strcmp order, not numeric


@pytest.mark.parametrize(
    ("condition", "event", "expected"),
    [
        ("proc.is_exe_upper_layer = true", {"proc.is_exe_upper_layer": True}, True),
        ("proc.is_exe_upper_layer = true", {"proc.is_exe_upper_layer": "true"}, True),
        ("proc.is_exe_upper_layer = false", {"proc.is_exe_upper_layer": False}, True),
        ("proc.is_exe_upper_layer != true", {"proc.is_exe_upper_layer": False}, True),
        ("container.privileged = true", {"container.privileged": "false"}, False),
        ("evt.is_open_read in (true)", {"evt.is_open_read": True}, True),
    ],
)
def test_bool_fields(condition: str, event: dict[str, Any], expected: bool) -> None:
    assert matches(condition, event) is expected


@pytest.mark.parametrize(
    ("condition", "event", "expected"),
    [
        ("fd.sip = 10.0.0.1", {"fd.sip": "10.0.0.1"}, True),
        ("fd.sip != 10.0.0.1", {"fd.sip": "10.0.0.2"}, True),
        ("fd.sip in (10.0.0.1, ::1)", {"fd.sip": "::1"}, True),
        ("fd.snet in (10.0.0.0/8, 192.168.0.0/16)", {"fd.sip": "192.168.3.4"}, True),
        ("fd.snet in (10.0.0.0/8, 192.168.0.0/16)", {"fd.sip": "172.16.0.1"}, False),
        ('fd.net != "127.0.0.0/8"', {"fd.cip": "127.0.0.1", "fd.sip": "127.0.0.2"}, False),
        ('fd.net != "127.0.0.0/8"', {"fd.cip": "127.0.0.1", "fd.sip": "8.8.8.8"}, True),  # either end
        ("fd.net = 10.0.0.0/8", {"fd.cip": "1.1.1.1", "fd.sip": "10.1.1.1"}, True),
        ("fd.ip = 8.8.8.8", {"fd.cip": "1.1.1.1", "fd.sip": "8.8.8.8"}, True),
        ("fd.port = 22", {"fd.cport": 51000, "fd.sport": 22}, True),
        ("fd.cnet = 10.0.0.0/8", {"fd.cip": "10.1.1.1"}, True),
        ("fd.rip = ::1", {"fd.rip": "127.0.0.1"}, False),
        ("fd.rip != ::1", {"fd.rip": "127.0.0.1"}, True),  # IPv4 vs IPv6: only != is true
        ("fd.sip = 10.0.0.1", {"fd.sip": "not-an-ip"}, False),
    ],
)
def test_network_fields(condition: str, event: dict[str, Any], expected: bool) -> None:
    assert matches(condition, event) is expected


@pytest.mark.parametrize(
    ("condition", "event", "expected"),
    [
        ("proc.aname = sshd", {"proc.aname": ["bash", "sshd", "systemd"]}, True),
        ("proc.aname = sshd", {"proc.aname": ["bash", "systemd"]}, False),
        ("proc.aname in (sshd, cron)", {"proc.aname": ["bash", "cron"]}, True),
        ("proc.aname != bash", {"proc.aname": ["bash", "systemd"]}, True),  # some ancestor is not bash
        ("proc.aname != bash", {"proc.aname": ["bash"]}, False),
        ("proc.aname exists", {"proc.aname": []}, False),
        ("proc.aname[2] = sshd", {"proc.aname[2]": "sshd"}, True),
        ("proc.aname[2] = sshd", {"proc.aname": ["bash", "sshd"]}, True),  # derived from the list
        ("proc.aname[1] = bash", {"proc.pname": "bash"}, True),
        ("proc.aname[0] = vi", {"proc.name": "vi"}, True),
        ("proc.aexepath[2] endswith /sshd", {"proc.aexepath[2]": "/usr/sbin/sshd"}, True),
        ("proc.aexe endswith java", {"proc.aexe": ["/bin/sh", "/usr/bin/java"]}, True),
        ("proc.env[HOME] = /root", {"proc.env[HOME]": "/root"}, True),
        ("container.mount.dest[/var/run/docker.sock] != N/A",
         {"container.mount.dest[/var/run/docker.sock]": "/var/run/docker.sock"}, True),
        ("evt.arg.flags contains O_TRUNC", {"evt.arg.flags": "O_WRONLY|O_TRUNC"}, True),
        ("evt.arg[0] = 3", {"evt.arg[0]": "3"}, True),
        ("evt.arg.flags contains O_TRUNC", {"evt.arg[flags]": "O_TRUNC"}, False),  # dotted is its own key
    ],
)
def test_field_arguments_and_ancestors(condition: str, event: dict[str, Any], expected: bool) -> None:
    assert matches(condition, event) is expected


@pytest.mark.parametrize(
    ("condition", "event", "expected"),
    [
        ("ka.user.groups in (a, b)", {"ka.user.groups": ["a", "b"]}, True),
        ("ka.user.groups in (a, b)", {"ka.user.groups": ["a", "c"]}, False),  # in: every value listed
        ("ka.user.groups intersects (a, b)", {"ka.user.groups": ["a", "c"]}, True),
        ("ka.user.groups intersects (b)", {"ka.user.groups": ["a", "c"]}, False),
        ("ka.user.groups exists", {"ka.user.groups": ["a"]}, True),
        ("ka.verb = create", {"ka.verb": "create"}, True),
        ("ka.req.pod.containers.image[1] startswith nginx", {"ka.req.pod.containers.image[1]": "nginx:1"}, True),
        ("jevt.value[/stage] = ResponseComplete", {"jevt.value[/stage]": "ResponseComplete"}, True),
    ],
)
def test_list_fields(condition: str, event: dict[str, Any], expected: bool) -> None:
    assert matches(condition, event, "k8s_audit") is expected


@pytest.mark.parametrize(
    ("condition", "name", "expected"),
    [
        ("proc.name == oneof (myexe, other)", "myexe", True),
        ("proc.name == oneof (myexe, myexe)", "myexe", False),  # exactly one
        ("proc.name == anyof (myexe, myexe)", "myexe", True),
        ("proc.name startswith oneof (my, ot)", "myexe", True),
        ("proc.name startswith oneof (my, mye)", "myexe", False),
        ("proc.name startswith anyof (my, mye)", "myexe", True),
        ("proc.name startswith allof (my, mye)", "myexe", True),
        ("proc.name contains allof (x, e)", "myexe", True),
        ("proc.name contains allof (x, z)", "myexe", False),
        ("proc.name != anyof (myexe, b)", "myexe", True),
        ("proc.name glob oneof ('my*', '*exe')", "myexe", False),
        ("proc.name glob oneof ('my*', '*zz')", "myexe", True),
    ],
)
def test_modifiers(condition: str, name: str, expected: bool) -> None:
    assert matches(condition, {"proc.name": name}) is expected


@pytest.mark.parametrize(
    ("condition", "event", "expected"),
    [
        ("tolower(proc.name) = bash", {"proc.name": "BaSh"}, True),
        ("toupper(proc.name) = BASH", {"proc.name": "bash"}, True),
        ("b64(proc.cmdline) contains secret", {"proc.cmdline": "c2VjcmV0IHZhbHVl"}, True),
        ("basename(proc.exepath) = sshd", {"proc.exepath": "/usr/sbin/sshd"}, True),
        ("len(proc.name) > 3", {"proc.name": "bash"}, True),
        ("len(proc.name) > 4", {"proc.name": "bash"}, False),
        ("len(proc.aname) = 2", {"proc.aname": ["a", "b"]}, True),
        ("tolower(proc.aname) = sshd", {"proc.aname": ["bash", "SSHD"]}, True),
        ('join("/", (proc.pname, proc.name)) = sshd/bash', {"proc.name": "bash", "proc.pname": "sshd"}, True),
        ('concat(proc.pname, "-", proc.name) = sshd-bash', {"proc.name": "bash", "proc.pname": "sshd"}, True),
        ('concat(proc.pname, "-", proc.name) exists', {"proc.name": "bash"}, False),
        ('getopt(proc.args, "e:c")[e] = hello', {"proc.args": "-c -e hello"}, True),
        ('getopt(proc.args, "e:c")[e] = hello', {"proc.args": "-ehello"}, True),
        ('getopt(proc.args, "e:c")[c] = ""', {"proc.args": "-c -e hello"}, True),
        ('getopt(proc.args, "e:c")[c] exists', {"proc.args": "-e x"}, False),
        ("proc.name = val(proc.pname)", {"proc.name": "bash", "proc.pname": "bash"}, True),
        ("proc.name != val(proc.pname)", {"proc.name": "bash", "proc.pname": "sh"}, True),
        ("proc.name != val(proc.pname)", {"proc.name": "bash"}, False),  # missing RHS: false
        ("fd.name startswith val(proc.cwd)", {"fd.name": "/home/u/x", "proc.cwd": "/home/u"}, True),
        ("proc.pid = val(proc.vpid)", {"proc.pid": 7, "proc.vpid": "7"}, True),
        ("proc.aname = val(proc.name)", {"proc.aname": ["a", "b"], "proc.name": "b"}, True),
        ("tolower(proc.name) = tolower(proc.pname)", {"proc.name": "A", "proc.pname": "a"}, True),
    ],
)
def test_transformers_and_field_comparisons(condition: str, event: dict[str, Any], expected: bool) -> None:
    assert matches(condition, event) is expected


def test_raw_arguments_compare_as_numbers_or_strings() -> None:
    assert matches("evt.rawarg.res < 0", {"evt.rawarg.res": "-2"}) is True
    assert matches("evt.rawarg.res = 3", {"evt.rawarg.res": 3}) is True
    assert matches("evt.rawarg.name = foo", {"evt.rawarg.name": "foo"}) is True


def test_buffers() -> None:
    assert matches("evt.buffer bcontains 6869", {"evt.buffer": b"say hi"}) is True
    assert matches("evt.buffer bstartswith 6869", {"evt.buffer": b"say hi"}) is False
    assert matches("evt.buffer bstartswith 7361", {"evt.buffer": b"say hi"}) is True
    assert matches("evt.buffer bstartswith 736179206869", {"evt.buffer": b"say"}) is False
    assert matches("evt.buffer contains hi", {"evt.buffer": "say hi"}) is True


def test_boolean_structure_and_short_circuit() -> None:
    read: list[str] = []

    class Lazy:
        def get(self, key: str, default: Any = None) -> Any:
            read.append(key)
            return {"evt.type": "open", "proc.name": "cat"}.get(key, default)

    f = compile_filter(parse_condition(
        "evt.type = open and (proc.name = cat or fd.name = x) and not proc.name = dog "
        "and (evt.type in (open) or proc.pname = y)"))
    assert f.match(Lazy()) is True
    assert read == ["evt.type", "proc.name"]  # each key read once; fd.name never needed
    read.clear()
    f2 = compile_filter(parse_condition("proc.name = dog and fd.name = x"))
    assert f2.match(Lazy()) is False
    assert read == ["proc.name"]
    assert f.fields == {"evt.type", "proc.name", "fd.name", "proc.pname"}
    assert "def _match" in f.source


def test_deeply_nested_conditions_compile() -> None:
    text = "proc.name = a"
    for i in range(120):
        text = f"(proc.pid = {i} or ({text}))" if i % 2 else f"not ({text})"
    f = compile_filter(parse_condition(text))
    f.match({"proc.name": "a"})


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("proc.nme = bash", "filter_check called with nonexistent field proc.nme"),
        ("evt.foo.bar exists", "filter_check called with nonexistent field evt.foo.bar"),
        ("proc.name[1] = bash", "filter_check called with nonexistent field proc.name[1]"),
        ("proc.aname[x] = bash", "x is not a valid number"),
        ("container.mount.dest = x", "filter 'container.mount.dest': container.mount.dest requires an argument "
                                     "but none provided"),
        ("proc.name bcontains 6869", "filter error: 'bcontains' operator not supported for string filters"),
        ("proc.pid contains 1", "filter error: 'contains' operator not supported for numeric filters"),
        ("proc.is_exe_upper_layer > 1", "filter error: '>' operator not supported for numeric filters"),
        ("fd.sip startswith 10.", "filter error: 'startswith' operator not supported for ip address and network filters"),
        ("evt.buffer icontains x", "filter error: 'icontains' operator not supported for buffer filters"),
        ("fd.types = file", "filter error: '=' operator not supported list filters"),
        ("proc.pid = abc", "abc is not a valid number"),
        ("proc.pid > 0x10", "0x10 is not a valid number"),
        ("proc.is_exe_upper_layer = yes", "filter error: unrecognized boolean value yes"),
        ("fd.sip = 10.0.0.300", "unrecognized IP address 10.0.0.300"),
        ("evt.buffer bcontains xyz", "filter error: bcontains and bstartswith operator support hex strings only"),
        ("some_macro and proc.name = a", "Undefined macro 'some_macro' used in filter."),
        ("evt.type in (open, opne)", "unknown event type opne"),
        ("proc.name regex '('", None),
        ("proc.name = val(evt.rawarg.fd)", "field 'evt.rawarg.fd' cannot be used as a right-hand side value"),
        ("proc.name = val(proc.pid)", None),
        ("tolower(proc.pid) = 1", "transformer 'tolower' is not supported on field type 'int64'"),
    ],
)
def test_compile_errors(condition: str, message: str | None) -> None:
    err = compile_error(condition)
    if message is not None:
        assert err.message == message


def test_compile_error_position_points_at_the_check() -> None:
    err = compile_error("evt.type = open and proc.nme = x")
    assert err.pos == 20
    err = compile_error("evt.type = open and proc.pid = x")
    assert err.pos == 31


def test_generated_source_has_no_per_event_parsing() -> None:
    f = compile_filter(parse_condition("fd.sip in (10.0.0.1) and proc.name glob 'a*' and proc.pid > 3"))
    assert not re.search(r"ip_address|fnmatch|int\(", f.source)


def test_ruleset_shares_reads_and_repeated_macros() -> None:
    from processor.engine.ast import substitute_identifiers
    from processor.engine.filter_compiler import compile_ruleset

    macro = parse_condition("evt.type = execve and proc.name in (sh, bash)")
    rules = [substitute_identifiers(parse_condition(text), lambda n: macro if n == "spawned_shell" else None)
             for text in ("spawned_shell and proc.pname = nginx", "spawned_shell and user.name = root",
                          "proc.pname = nginx", "fd.name = /etc/shadow")]
    ruleset = compile_ruleset(rules)
    read: list[str] = []

    class Lazy:
        def get(self, key: str, default: Any = None) -> Any:
            read.append(key)
            return {"evt.type": "execve", "proc.name": "sh", "proc.pname": "nginx"}.get(key, default)

    assert ruleset.match_all(Lazy()) == [0, 2]
    assert sorted(read) == ["evt.type", "fd.name", "proc.name", "proc.pname", "user.name"]  # each once
    assert ruleset.source.count("m0 :=") >= 1
    assert ruleset.match_first(Lazy()) == 0
    assert ruleset.match_first({"fd.name": "/etc/shadow"}) == 3
    assert ruleset.match_first({}) == -1
    assert ruleset.fields == {"evt.type", "proc.name", "proc.pname", "user.name", "fd.name"}


@pytest.mark.parametrize(
    ("condition", "name", "expected"),
    [
        ("fd.name startswith /etc or fd.name startswith /usr or fd.name = /x", "/usr/bin", True),
        ("fd.name startswith /etc or fd.name startswith /usr", "/var", False),
        ("fd.name endswith .so or fd.name endswith .py", "/a/b.py", True),
        ("fd.name = /a or fd.name in (/b, /c) or fd.name == /d", "/c", True),
        ("proc.name = x and not fd.name startswith /etc and not fd.name startswith /usr", "/usr/lib", False),
        ("proc.name = x and not fd.name startswith /etc and not fd.name startswith /usr", "/var/lib", True),
        ("proc.name = x and not fd.name in (/a) and not fd.name = /b", "/b", False),
        ("proc.name = x and not fd.name in (/a) and not fd.name = /b", "/c", True),
    ],
)
def test_runs_of_checks_on_one_field_are_one_test(condition: str, name: str, expected: bool) -> None:
    f = compile_filter(parse_condition(condition))
    assert f.match({"fd.name": name, "proc.name": "x"}) is expected
    assert f.match({"proc.name": "x"}) is ("not" in condition)  # missing field: only `not` makes it true
    assert f.source.count(".startswith(") <= 1 and f.source.count(".endswith(") <= 1


def test_merged_runs_keep_compile_errors() -> None:
    assert compile_error("proc.pid = 1 or proc.pid = abc").message == "abc is not a valid number"
    assert compile_error("proc.pid startswith 1 or proc.pid startswith 2").message == (
        "filter error: 'startswith' operator not supported for numeric filters")
