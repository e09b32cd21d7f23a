"""Falco's event-type set algebra for rule indexing (libsinsp filter/ppm_codes.cpp)."""

from __future__ import annotations

import pytest

from processor.engine.evttypes import SYSCALL_EVENT_TYPES, EventTypeError, event_types
from processor.engine.parser import parse_condition

ALL = SYSCALL_EVENT_TYPES


def types(condition: str) -> frozenset[str] | None:
    return event_types(parse_condition(condition))


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("evt.type = open", {"open"}),
        ("evt.type == open", {"open"}),
        ("evt.type in (open, openat, openat2)", {"open", "openat", "openat2"}),
        ("syscall.type = execve", {"execve"}),
        ("evt.type in (open, openat) and evt.type in (openat, connect)", {"openat"}),
        ("evt.type = open or evt.type = connect", {"open", "connect"}),
        ("evt.type = open and proc.name = cat", {"open"}),
        ("(evt.type = open or evt.type = openat) and not proc.name = cat", {"open", "openat"}),
        ("not evt.type != open", {"open"}),
        ("not not evt.type = open", {"open"}),
        ("not (evt.type != open or evt.type != openat)", set()),
        ("not (evt.type != open and evt.type != openat)", {"open", "openat"}),
        ("evt.num = 0", set()),
        ("evt.type = open and evt.num=0", set()),
        ("evt.type = execve and evt.type = open", set()),
        ("evt.type in ()", set()),
    ],
)
def test_explicit_sets(condition: str, expected: set[str]) -> None:
    assert types(condition) == frozenset(expected)


@pytest.mark.parametrize(
    "condition",
    ["proc.name = cat", "not proc.name = cat", "evt.type = open or proc.name = cat", "evt.type exists",
     "not (evt.type = open and proc.name = cat)", "evt.type startswith open", "evt.arg[0] = open",
     "some_macro", "not evt.num = 0", "evt.num != 0"],
)
def test_all_types(condition: str) -> None:
    assert types(condition) is None


def test_negations_are_complements() -> None:
    assert types("not evt.type = open") == ALL - {"open"}
    assert types("evt.type != open and evt.type != close") == ALL - {"open", "close"}
    assert types("not evt.type in (open, close)") == ALL - {"open", "close"}
    assert types("not evt.type exists") == frozenset()


def test_unknown_event_type_is_an_error() -> None:
    with pytest.raises(EventTypeError, match="unknown event type opne"):
        types("evt.type in (open, opne)")


def test_unsupported_forms() -> None:
    with pytest.raises(EventTypeError, match="right-hand field comparisons"):
        types("evt.type = val(proc.name)")
    with pytest.raises(EventTypeError, match="transformers"):
        types("tolower(evt.type) = open")


def test_every_event_name_in_falcos_rule_files_is_known(falco_rules) -> None:  # type: ignore[no-untyped-def]
    import yaml

    from processor.engine.ast import Check, FieldRef, ListValue, StrValue, walk

    items = [item for path in falco_rules.glob("falco*.yaml") for item in yaml.safe_load(path.read_text()) or []]
    lists = {item["list"]: item.get("items") or [] for item in items if "list" in item}

    def expand(name: str) -> list[str]:
        return [n for i in lists[name] for n in expand(i)] if name in lists else [name]

    names: set[str] = set()
    for item in items:
        for node in walk(parse_condition(item["condition"])) if "condition" in item else ():
            if isinstance(node, Check) and isinstance(node.field, FieldRef) and node.field.name == "evt.type":
                values = node.value.items if isinstance(node.value, ListValue) else [node.value]
                names.update(n for v in values if isinstance(v, StrValue) for n in expand(v.text))
    assert len(names) > 40
    assert names <= SYSCALL_EVENT_TYPES, names - SYSCALL_EVENT_TYPES
