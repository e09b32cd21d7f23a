"""Syntax tree of Falco conditions, shaped like libsinsp's `filter/ast.h` so `as_string` matches Falco.

Nodes are immutable; `pos` is the offset in the condition text and is ignored by equality so trees from
different texts compare by meaning. Macro substitution builds new trees that share untouched subtrees.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from dataclasses import field as _field
from typing import Union


@dataclass(frozen=True, slots=True)
class And:
    children: list[Node]
    pos: int = _field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Or:
    children: list[Node]
    pos: int = _field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Not:
    child: Node
    pos: int = _field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Identifier:
    """A bare name in check position: a macro reference, resolved by the rule loader."""

    name: str
    pos: int = _field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class FieldRef:
    """A field, e.g. `proc.aname[2]` (name "proc.aname", arg "2"); `evt.arg.flags` keeps its dotted name."""

    name: str
    arg: str | None = None
    pos: int = _field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Transformer:
    """`tolower(f)`, `join(sep, f)`, `getopt(f, "o:")[o]` ...; `index` is the trailing `[arg]` if any."""

    name: str
    args: list[FieldExpr | StrValue | ListValue]
    index: str | None = None
    pos: int = _field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class StrValue:
    """A constant as written (quoted or bare, numbers included); typed only by the filter compiler."""

    text: str
    pos: int = _field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class ListValue:
    items: list[StrValue | FieldExpr]
    pos: int = _field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class FieldValue:
    """A field on the right-hand side: `val(f)` (field is a FieldRef) or a transformer."""

    field: FieldExpr
    pos: int = _field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True, slots=True)
class Check:
    """`field op value`; `value` is None for `exists`; `modifier` is oneof/anyof/allof."""

    field: FieldExpr
    op: str
    value: Value | None = None
    modifier: str | None = None
    pos: int = _field(default=0, compare=False, kw_only=True)


FieldExpr = Union[FieldRef, Transformer]  # noqa: UP007 - runtime alias used in isinstance-free unions
Value = Union[StrValue, ListValue, FieldValue]  # noqa: UP007
Node = Union[And, Or, Not, Identifier, Check]  # noqa: UP007
AnyNode = Union[Node, FieldRef, Transformer, StrValue, ListValue, FieldValue]  # noqa: UP007


_NUMBER = re.compile(r"[+\-]?[0-9]+\.?[0-9]*(?:[eE][+\-][0-9]+)?|0[xX][0-9a-zA-Z]+")
_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", '"': '\\"'}


def escape_str(text: str) -> str:
    """libsinsp's `escape_str`: quote only when a blank, quote or backslash is present."""
    if not any(c in text for c in " \b\f\n\r\t\\\"'"):
        return text
    return '"' + "".join(_ESCAPES.get(c, c) for c in text) + '"'


def as_string(node: AnyNode) -> str:
    """libsinsp's canonical text of a tree (what Falco prints as `condition_compiled`)."""
    parts: list[str] = []
    _emit(node, parts)
    return "".join(parts)


def _emit(node: AnyNode, out: list[str]) -> None:
    if isinstance(node, Check):
        _emit(node.field, out)
        out.append(" ")
        out.append(node.op)
        if node.modifier:
            out.append(" ")
            out.append(node.modifier)
        if node.value is not None:
            out.append(" ")
            _emit(node.value, out)
    elif isinstance(node, And | Or):
        op = " and " if isinstance(node, And) else " or "
        out.append("(")
        for i, child in enumerate(node.children):
            if i:
                out.append(op)
            _emit(child, out)
        out.append(")")
    elif isinstance(node, Not):
        out.append("not ")
        _emit(node.child, out)
    elif isinstance(node, Identifier):
        out.append(node.name)
    elif isinstance(node, FieldRef):
        out.append(node.name)
        if node.arg:
            out.append("[" + escape_str(node.arg) + "]")
    elif isinstance(node, Transformer):
        out.append(node.name + "(")
        for i, arg in enumerate(node.args):
            if i:
                out.append(", ")
            if isinstance(arg, StrValue) and not _NUMBER.fullmatch(arg.text):
                # transformer arguments are quoted strings in the grammar: keep the text parseable
                out.append('"' + "".join(_ESCAPES.get(c, c) for c in arg.text) + '"')
            else:
                _emit(arg, out)
        out.append(")")
        if node.index:
            out.append("[" + escape_str(node.index) + "]")
    elif isinstance(node, StrValue):
        out.append(escape_str(node.text))
    elif isinstance(node, ListValue):
        out.append("(")
        for i, item in enumerate(node.items):
            if i:
                out.append(", ")
            _emit(item, out)
        out.append(")")
    elif isinstance(node, FieldValue):
        if isinstance(node.field, FieldRef):
            out.append("val(")
            _emit(node.field, out)
            out.append(")")
        else:
            _emit(node.field, out)
    else:  # pragma: no cover - defensive
        raise TypeError(f"not a condition node: {node!r}")


def children(node: AnyNode) -> list[AnyNode]:
    """Direct sub-nodes, in source order."""
    if isinstance(node, And | Or):
        return list(node.children)
    if isinstance(node, Not):
        return [node.child]
    if isinstance(node, Check):
        return [node.field] if node.value is None else [node.field, node.value]
    if isinstance(node, Transformer):
        return list(node.args)
    if isinstance(node, ListValue):
        return list(node.items)
    if isinstance(node, FieldValue):
        return [node.field]
    return []


def walk(node: AnyNode) -> Iterator[AnyNode]:
    """Every node of the tree, parents before children (iterative: conditions can be deep)."""
    stack: list[AnyNode] = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))


def substitute_identifiers(node: Node, lookup: Callable[[str], Node | None]) -> Node:
    """Replace each `Identifier` by `lookup(name)` (kept when None); replacements are not re-scanned.

    Returns a new tree (untouched subtrees are shared, nodes being immutable). The loader resolves
    macro bodies in definition order, so one pass per condition is enough and loops are its business.
    """
    if isinstance(node, Identifier):
        replacement = lookup(node.name)
        return node if replacement is None else replacement
    if isinstance(node, And | Or):
        new_children = [substitute_identifiers(c, lookup) for c in node.children]
        if all(a is b for a, b in zip(new_children, node.children, strict=True)):
            return node
        return type(node)(new_children, pos=node.pos)
    if isinstance(node, Not):
        child = substitute_identifiers(node.child, lookup)
        return node if child is node.child else Not(child, pos=node.pos)
    return node
