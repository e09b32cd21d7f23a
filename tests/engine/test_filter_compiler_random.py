"""Generated code against a plain tree-walking evaluator on random conditions, events and macro reuse.

Guards the compiler's optimisations (lazy reads, locals reused after certain reads, memoised repeated
subtrees, merged runs, evt.type folding) against the obvious meaning of the condition.
"""

from __future__ import annotations

import random
from typing import Any

from processor.engine.ast import And, Check, FieldRef, ListValue, Node, Not, Or, StrValue
from processor.engine.filter_compiler import compile_filter, compile_ruleset

FIELDS = ["proc.name", "proc.pname", "fd.name", "user.name"]
VALUES = ["a", "ab", "b", "/etc/x", "/usr/y", "/etc/x/z", "x/z"]  # affixes of each other
TYPES = ["open", "openat", "execve"]


def random_check(rng: random.Random) -> Check:
    if rng.random() < 0.15:
        return Check(FieldRef("evt.type"), "in", ListValue([StrValue(t) for t in rng.sample(TYPES, 2)]))
    field = FieldRef(rng.choice(FIELDS))
    op = rng.choice(["=", "!=", "in", "startswith", "endswith", "exists"])
    if op == "exists":
        return Check(field, op)
    if op == "in":
        return Check(field, op, ListValue([StrValue(v) for v in rng.sample(VALUES, 2)]))
    return Check(field, op, StrValue(rng.choice(VALUES)))


def random_node(rng: random.Random, depth: int, pool: list[Node]) -> Node:
    if pool and rng.random() < 0.2:
        return rng.choice(pool)  # the same subtree in several places, like a macro
    if depth == 0 or rng.random() < 0.3:
        return random_check(rng)
    kind = rng.choice(["and", "or", "not"])
    if kind == "not":
        return Not(random_node(rng, depth - 1, pool))
    children = [random_node(rng, depth - 1, pool) for _ in range(rng.randint(2, 4))]
    node: Node = And(children) if kind == "and" else Or(children)
    pool.append(node)
    return node


def evaluate(node: Node, event: dict[str, Any]) -> bool:
    if isinstance(node, And):
        return all(evaluate(c, event) for c in node.children)
    if isinstance(node, Or):
        return any(evaluate(c, event) for c in node.children)
    if isinstance(node, Not):
        return not evaluate(node.child, event)
    assert isinstance(node, Check) and isinstance(node.field, FieldRef)
    v = event.get(node.field.name)
    if v is None:
        return False
    if node.op == "exists":
        return True
    if isinstance(node.value, ListValue):
        return v in {i.text for i in node.value.items if isinstance(i, StrValue)}
    assert isinstance(node.value, StrValue)
    rhs = node.value.text
    return {"=": v == rhs, "!=": v != rhs, "startswith": v.startswith(rhs), "endswith": v.endswith(rhs)}[node.op]


def random_event(rng: random.Random, evt_type: str) -> dict[str, Any]:
    event: dict[str, Any] = {"evt.type": evt_type}
    for f in FIELDS:
        if rng.random() < 0.8:
            event[f] = rng.choice(VALUES)
    return event


def test_compiled_conditions_agree_with_the_tree() -> None:
    rng = random.Random(1234)
    for _ in range(20):
        pool: list[Node] = []
        nodes = [random_node(rng, 4, pool) for _ in range(12)]
        for evt_type in TYPES:
            ruleset = compile_ruleset(nodes, event_types=evt_type)
            plain = compile_ruleset(nodes)
            singles = [compile_filter(n) for n in nodes]
            for _ in range(15):
                event = random_event(rng, evt_type)
                expected = [i for i, n in enumerate(nodes) if evaluate(n, event)]
                assert [i for i, f in enumerate(singles) if f.match(event)] == expected
                assert ruleset.match_all(event) == expected
                assert plain.match_all(event) == expected
                assert ruleset.match_first(event) == (expected[0] if expected else -1)
