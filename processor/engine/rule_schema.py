"""Falco's JSON-schema check of rules files: warnings only, never a load error.

Falco validates every YAML document of a rules file against its rule schema (rule_schema.json here,
F:userspace/engine/rule_json_schema.h) with valijson in weak-typing mode on yaml-cpp nodes, where every
scalar is text: `required_engine_version: 15` is a string, `enabled: true` a boolean, `capture_duration:
"5"` an integer. The outcome per document is `ok` or one `failed for <context>: <description>` line per
valijson error (children before their parents, as valijson reports them); no document gives `none`.
Catching typo'd keys this way complements LOAD_UNKNOWN_KEY with the exact place of the problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

SCHEMA_PATH = Path(__file__).with_name("rule_schema.json")
VALIDATION_OK = "ok"
VALIDATION_FAILED = "failed"
VALIDATION_NONE = "none"

_NULL_TAG = "tag:yaml.org,2002:null"
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")

_ARRAY_ITEM = "Failed to validate item #{} in array."
_PROPERTY = "Failed to validate against schema associated with property name '{}'."


def load_schema() -> dict[str, Any]:
    """The rule schema, as `falco --print-rule-schema` prints Falco's."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def _weak_types() -> jsonschema.TypeChecker:
    """valijson's kWeakTypes over text scalars: a type matches when the text converts to it."""
    base = jsonschema.Draft6Validator.TYPE_CHECKER

    def is_string(_: object, v: object) -> bool:
        return isinstance(v, str)

    def is_integer(_: object, v: object) -> bool:
        return isinstance(v, str) and _INTEGER.fullmatch(v) is not None

    def is_number(_: object, v: object) -> bool:
        return isinstance(v, str) and _NUMBER.fullmatch(v) is not None

    def is_boolean(_: object, v: object) -> bool:
        return v in ("true", "false")

    def is_null(_: object, v: object) -> bool:
        return v is None or v == ""

    return base.redefine_many({"string": is_string, "integer": is_integer, "number": is_number,
                               "boolean": is_boolean, "null": is_null})


@cache
def _validator() -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.extend(jsonschema.Draft6Validator, type_checker=_weak_types())
    return cls(load_schema())  # type: ignore[no-any-return]


def node_data(node: Node) -> Any:
    """yaml-cpp's view of a node: maps and sequences, every scalar as its text, nulls as None."""
    if isinstance(node, ScalarNode):
        if node.tag == _NULL_TAG and node.style is None:
            return None
        return str(node.value)
    if isinstance(node, SequenceNode):
        return [node_data(n) for n in node.value]
    if isinstance(node, MappingNode):
        out: dict[str, Any] = {}
        for k, v in node.value:
            key = str(node_data(k))
            out.setdefault(key, node_data(v))
        return out
    return None


def _leaf_messages(error: ValidationError) -> Iterator[tuple[int, str]]:
    """valijson's description(s) for one jsonschema error, with the member order it is reported at."""
    instance = error.instance
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = error.schema.get("properties", {})
        for i, key in enumerate(instance):
            if key not in known:
                yield i, ("Object contains a property that could not be validated using 'properties' or "
                          f"'additionalProperties' constraints: '{key}'.")
    elif error.validator == "required":
        missing = re.match(r"'(.*)' is a required property", error.message)
        yield -1, f"Missing required property '{missing.group(1) if missing else error.message}'."
    elif error.validator == "type":
        yield -1, "Value type not permitted by 'type' constraint."
    elif error.validator == "enum":
        yield -1, "Failed to match against any enum values."
    elif error.validator == "anyOf":
        yield -1, "Failed to validate against any schemas allowed by anyOf constraint."
    elif error.validator == "minProperties":
        yield -1, f"Object should have no less than {error.validator_value} properties."
    else:
        yield -1, error.message


@dataclass
class _Place:
    """Errors at one place of the document and the failing places below it."""

    leaves: list[tuple[int, str]] = field(default_factory=list)
    below: dict[str | int, _Place] = field(default_factory=dict)


def _context(path: Iterable[str | int]) -> str:
    return "<root>" + "".join(f"[{p}]" for p in path)


def _order(data: Any, key: str | int) -> int:
    if isinstance(key, int):
        return key
    return list(data).index(key) if isinstance(data, dict) and key in data else 0


def _child(data: Any, key: str | int) -> Any:
    if isinstance(data, dict):
        return data.get(key)
    if isinstance(data, list) and isinstance(key, int) and key < len(data):
        return data[key]
    return None


def _report(place: _Place, data: Any, path: tuple[str | int, ...]) -> Iterator[str]:
    entries: list[tuple[int, int, str | int]] = [(order, 0, msg) for order, msg in place.leaves]
    entries += [(_order(data, key), 1, key) for key in place.below]
    for _, is_child, what in sorted(entries, key=lambda e: (e[0], e[1])):
        if not is_child:
            yield f"{VALIDATION_FAILED} for {_context(path)}: {what}"
            continue
        child = _child(data, what)
        yield from _report(place.below[what], child, path + (what,))
        parent_msg = _ARRAY_ITEM.format(what) if isinstance(what, int) else _PROPERTY.format(what)
        yield f"{VALIDATION_FAILED} for {_context(path)}: {parent_msg}"


def validate_document(data: Any) -> list[str]:
    """`["ok"]`, or valijson-style `failed for <context>: <description>` lines, children first."""
    root = _Place()
    found = False
    for error in _validator().iter_errors(data):
        place = root
        for key in error.absolute_path:
            place = place.below.setdefault(key, _Place())
        place.leaves.extend(_leaf_messages(error))
        found = True
    if not found:
        return [VALIDATION_OK]
    return list(_report(root, data, ()))


def validate_documents(docs: Iterable[Node | None]) -> list[str]:
    """Falco's schema warnings for a file's documents (`["none"]` when it has none)."""
    out: list[str] = []
    for doc in docs:
        out.extend(validate_document(node_data(doc) if doc is not None else None))
    return out or [VALIDATION_NONE]


def schema_status(warnings: list[str]) -> str:
    """The one-word-or-line status Falco logs as `<file> | schema validation: <status>`."""
    if not warnings:
        return VALIDATION_NONE
    failed = [w for w in warnings if w != VALIDATION_OK]
    return failed[0] if failed else warnings[0]
