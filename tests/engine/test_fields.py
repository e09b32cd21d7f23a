"""The field catalogue knows every field Falco's rule files use, with Falco's types and argument rules."""

from __future__ import annotations

import re

import yaml

from processor.engine.ast import FieldRef, walk
from processor.engine.fields import FIELD_CLASSES, K8S_AUDIT_FIELDS, lookup_field, split_dotted
from processor.engine.parser import parse_condition

_OUTPUT_FIELD = re.compile(r"%([a-z][a-z0-9_]*(?:\.[a-zA-Z0-9_]+)+)")


def used_fields(path) -> set[str]:  # type: ignore[no-untyped-def]
    names: set[str] = set()
    for item in yaml.safe_load(path.read_text()) or []:
        if "condition" in item:
            names.update(n.name for n in walk(parse_condition(item["condition"])) if isinstance(n, FieldRef))
        names.update(_OUTPUT_FIELD.findall(str(item.get("output", ""))))
    return names


def test_every_syscall_field_of_falcos_rules_is_known(falco_rules) -> None:  # type: ignore[no-untyped-def]
    names: set[str] = set()
    for path in falco_rules.glob("falco*.yaml"):
        names |= used_fields(path)
    unknown = {n for n in names if lookup_field(n) is None}
    assert not unknown
    assert len(names) >= 88


def test_every_k8s_audit_field_is_known(falco_rules) -> None:  # type: ignore[no-untyped-def]
    names = used_fields(falco_rules / "k8s_audit_rules.yaml")
    assert {n for n in names if lookup_field(n, "k8s_audit") is None} == set()
    assert lookup_field("ka.verb") is None  # k8s_audit fields are not syscall fields
    assert lookup_field("evt.time", "k8s_audit") is not None  # generic evt.* fields work for every source


def test_types_and_arguments() -> None:
    def get(name: str):  # type: ignore[no-untyped-def]
        found = lookup_field(name)
        assert found is not None, name
        return found

    assert get("proc.name").type == "charbuf"
    assert get("proc.pid").type == "int64"
    assert get("user.uid").type == "uint32"
    assert get("fd.sport").type == "port"
    assert get("fd.sip").type == "ipaddr"
    assert get("fd.snet").type == "ipnet"
    assert get("evt.buffer").type == "bytebuf"
    assert get("container.privileged").type == "bool"
    assert get("proc.exe_ino.ctime").type == "abstime"
    assert get("proc.duration").type == "reltime"
    assert get("proc.aname").arg == "allowed" and get("proc.aname").arg_kind == "index"
    assert get("proc.aname").any_ancestor
    assert get("proc.env").arg_kind == "key"
    assert get("container.mount.dest").arg == "required"
    assert get("fd.types").is_list
    assert K8S_AUDIT_FIELDS["ka.user.groups"].is_list
    assert set(FIELD_CLASSES) >= {"process", "fd", "evt", "user", "group", "container"}


def test_dotted_arguments() -> None:
    flags = lookup_field("evt.arg.flags")
    assert flags is not None and flags.name == "evt.arg"
    assert split_dotted("evt.arg.flags") == (flags, "flags")
    rawarg = lookup_field("evt.rawarg.res")
    assert rawarg is not None and rawarg.name == "evt.rawarg" and rawarg.no_rhs
    assert lookup_field("evt.abspath.dst") is not None
    assert lookup_field("thread.cgroup.cpuacct") is not None
    assert lookup_field("proc.name.foo") is None
    assert lookup_field("evt.arg.") is None
