"""Falco's filter_warning_resolver: bad practices spotted in a rule's condition after macro expansion.

Two findings, as in F:userspace/engine/filter_warning_resolver.cpp:
- LOAD_UNSAFE_NA_CHECK: a `ka.*`/`jevt.*` field compared with `<NA>` by `= == != in intersects pmatch`
  (k8s audit fields render a missing value as "<NA>", so such a check silently depends on the renderer);
- LOAD_DEPRECATED_ITEM: a deprecated field (`evt.dir`, `evt.latency`, ...) used in the condition.
Falco collects the findings of one condition in sets, so a rule gets at most one <NA> warning and one
warning per distinct deprecated field, in warning-code order, whatever the number of occurrences.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from processor.engine import ast

NO_VALUE = "<NA>"
UNSAFE_FIELD_PREFIXES = ("ka.", "jevt.")
EQUALITY_OPERATORS = frozenset({"==", "=", "!=", "in", "intersects", "pmatch"})


@dataclass(frozen=True, slots=True)
class ConditionFindings:
    unsafe_na_check: bool
    deprecated_fields: tuple[str, ...]
    """Distinct deprecated fields, in the order of `deprecated` given to `resolve` (Falco's enum order)."""


def _fields_of(expr: ast.FieldExpr) -> Iterator[ast.FieldRef]:
    """Field references of a check's left side in visiting order (a transformer's arguments, nested)."""
    if isinstance(expr, ast.FieldRef):
        yield expr
        return
    for arg in expr.args:
        if isinstance(arg, ast.FieldRef | ast.Transformer):
            yield from _fields_of(arg)
        # libs' base visitor does not descend into a transformer's list argument (join's field list)


def _last_is_unsafe(expr: ast.FieldExpr) -> bool:
    """libs visits the left side and keeps whether the *last* field visited is a ka./jevt. field."""
    last = None
    for ref in _fields_of(expr):
        last = ref
    return last is not None and last.name.startswith(UNSAFE_FIELD_PREFIXES)


def _compares_with_na(value: ast.Value | None) -> bool:
    if isinstance(value, ast.StrValue):
        return value.text == NO_VALUE
    if isinstance(value, ast.ListValue):
        return any(isinstance(v, ast.StrValue) and v.text == NO_VALUE for v in value.items)
    return False


def resolve(tree: ast.Node, deprecated: Iterable[str]) -> ConditionFindings:
    """The findings for one rule's expanded condition.

    Fields count as used where libs' visitor sees them: a check's left side (through transformers),
    and the right side only while it is inspected for `<NA>` (unsafe field, equality operator).
    """
    unsafe = False
    used: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Check):
            continue
        used.update(ref.name for ref in _fields_of(node.field))
        if node.op in EQUALITY_OPERATORS and _last_is_unsafe(node.field):
            unsafe = unsafe or _compares_with_na(node.value)
            if isinstance(node.value, ast.FieldValue):
                used.update(ref.name for ref in _fields_of(node.value.field))
    return ConditionFindings(unsafe, tuple(f for f in deprecated if f in used))
