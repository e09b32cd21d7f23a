"""Every rule of Falco's stable, incubating and sandbox files compiles; rulesets agree with single filters.

Lists and macros are expanded here the simple way (the rule loader does it properly); what is under
test is that the compiler knows every field, operator and value form these files use.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from processor.engine.ast import Node, substitute_identifiers
from processor.engine.evttypes import event_types
from processor.engine.filter_compiler import compile_filter, compile_ruleset
from processor.engine.parser import parse_condition

FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")


def expanded_rules(directory, files: tuple[str, ...] = FILES) -> dict[str, Node]:  # type: ignore[no-untyped-def]
    items = [i for name in files for i in yaml.safe_load((directory / name).read_text())]
    lists: dict[str, list[str]] = {}
    macros: dict[str, str] = {}
    for item in items:
        if "list" in item:
            lists[item["list"]] = [v for x in item.get("items") or [] for v in lists.get(str(x), [str(x)])]
        elif "macro" in item:
            macros[item["macro"]] = item["condition"]
    names = "|".join(map(re.escape, sorted(lists, key=len, reverse=True)))
    pattern = re.compile(rf"(?:(?<=[ \t\n\r(),=])|^)({names})(?=[ \t\n\r(),=]|$)")

    def subst(text: str) -> str:
        def items(m: re.Match[str]) -> str:
            values = [f'"{v}"' if " " in v and v[0] not in "\"'" else v for v in lists[m.group(1)]]
            return ", ".join(values) or "\x00"
        return re.sub(r",\s*\x00|\x00\s*,?", "", pattern.sub(items, text))

    cache: dict[str, Node] = {}

    def macro(name: str) -> Node | None:
        if name not in macros:
            return None
        if name not in cache:
            cache[name] = substitute_identifiers(parse_condition(subst(macros[name])), macro)
        return cache[name]

    return {item["rule"]: substitute_identifiers(parse_condition(subst(item["condition"])), macro)
            for item in items if "rule" in item and "condition" in item}


EVENTS: list[dict[str, Any]] = [
    {"evt.type": "openat", "fd.name": "/etc/shadow", "fd.directory": "/etc", "fd.filename": "shadow",
     "evt.is_open_read": True, "fd.typechar": "f", "fd.num": 3, "proc.name": "cat", "proc.pname": "bash",
     "proc.aname": ["bash", "sshd"], "container.id": "host", "user.name": "root", "evt.rawres": 3},
    {"evt.type": "execve", "proc.name": "bash", "proc.pname": "nginx", "proc.exepath": "/bin/bash",
     "proc.cmdline": "bash -i", "proc.aname": ["nginx", "containerd-shim"], "container.id": "0123456789ab",
     "proc.tty": 34816, "evt.res": "SUCCESS", "user.name": "www-data", "proc.vpid": 1},
    {"evt.type": "connect", "fd.sip": "169.254.169.254", "fd.cip": "10.0.0.2", "fd.sport": 80, "fd.cport": 4000,
     "fd.rip": "169.254.169.254", "fd.l4proto": "tcp", "fd.typechar": "4", "proc.name": "curl",
     "container.id": "0123456789ab", "evt.rawres": 0, "fd.name": "10.0.0.2:4000->169.254.169.254:80"},
]


@pytest.fixture(scope="module")
def rules(falco_rules) -> dict[str, Node]:  # type: ignore[no-untyped-def]
    return expanded_rules(falco_rules)


def test_every_rule_compiles_and_has_event_types(rules: dict[str, Node]) -> None:
    assert len(rules) >= 90
    for name, node in rules.items():
        compile_filter(node)
        assert event_types(node) is not None, name  # no Falco rule matches every event type


def test_k8s_audit_rules_compile(falco_rules) -> None:  # type: ignore[no-untyped-def]
    rules = expanded_rules(falco_rules, ("k8s_audit_rules.yaml",))
    assert len(rules) == 48
    for node in rules.values():
        compile_filter(node, "k8s_audit")


@pytest.mark.parametrize("event", EVENTS, ids=[e["evt.type"] for e in EVENTS])
def test_ruleset_agrees_with_single_filters(rules: dict[str, Node], event: dict[str, Any]) -> None:
    selected = [(n, node) for n, node in rules.items() if event["evt.type"] in (event_types(node) or ())]
    single = [i for i, (_, node) in enumerate(selected) if compile_filter(node).match(event)]
    assert single, "the sample event should trigger some rule"
    group = {"openat": ["open", "openat", "openat2"], "execve": ["execve", "execveat"]}.get(event["evt.type"])
    for types in (None, event["evt.type"], group):
        ruleset = compile_ruleset([node for _, node in selected], event_types=types)
        assert ruleset.match_all(event) == single
        assert ruleset.match_first(event) == single[0]
    assert "evt.type" not in compile_ruleset([n for _, n in selected], event_types=event["evt.type"]).fields
