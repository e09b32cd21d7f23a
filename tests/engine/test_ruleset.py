"""Fused per-event-type evaluation: same matches as rule-by-rule evaluation, Falco's order, rebuilt on changes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from processor.engine import ast
from processor.engine.engine import RulesEngine
from processor.engine.fields import IP_TYPES, STRING_TYPES, lookup_field
from processor.engine.ruleset import Match, Ruleset
from tests.engine.conftest import load

FALCO_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")
RULES = """
- macro: spawned
  condition: evt.type in (execve, execveat)
- macro: curl_or_wget
  condition: proc.name in (curl, wget)
- rule: spawned_curl
  desc: d
  condition: spawned and curl_or_wget and proc.pname = bash
  output: o
  priority: WARNING
  tags: [net]
- rule: etc_open
  desc: d
  condition: evt.type = openat and fd.name startswith /etc/
  output: o
  priority: ERROR
- rule: spawned_downloader
  desc: d
  condition: spawned and curl_or_wget
  output: o
  priority: NOTICE
  tags: [net]
- rule: any_type_curl
  desc: d
  condition: curl_or_wget and not proc.pname = sshd
  output: o
  priority: INFO
- rule: spawned_anything
  desc: d
  condition: spawned
  output: o
  priority: DEBUG
"""


def _names(matches: list[Match]) -> list[str]:
    return [m.rule for m in matches]


def _engine(rule_matching: str) -> RulesEngine:
    engine, result = load(RULES, rule_matching=rule_matching)
    assert result.successful, result.as_text()
    return engine


def test_rule_matching_first_and_all_keep_rule_order() -> None:
    curl = {"evt.type": "execve", "proc.name": "curl", "proc.pname": "bash"}
    assert _names(_engine("all").process(curl)) == [
        "spawned_curl", "spawned_downloader", "any_type_curl", "spawned_anything"]
    assert _names(_engine("first").process(curl)) == ["spawned_curl"]
    # spawned_curl fails on its last conjunct: the next rule in order wins, not the next one nested with it
    from_sshd = {**curl, "proc.pname": "sshd"}
    assert _names(_engine("first").process(from_sshd)) == ["spawned_downloader"]
    assert _names(_engine("all").process(from_sshd)) == ["spawned_downloader", "spawned_anything"]


def test_rules_without_evt_type_apply_to_every_type() -> None:
    engine = _engine("all")
    assert engine.matches_all_event_types()
    # an indexed type, a type no rule names, and an event without evt.type all reach any_type_curl
    for evt_type in ("openat", "connect", None):
        event: dict[str, Any] = {"proc.name": "wget", "fd.name": "/etc/hosts"}
        if evt_type:
            event["evt.type"] = evt_type
        expected = ["etc_open", "any_type_curl"] if evt_type == "openat" else ["any_type_curl"]
        assert _names(engine.process(event)) == expected
    assert engine.process({"evt.type": "connect", "proc.name": "nc"}) == []


def test_enable_disable_after_load_rebuilds_fused_functions() -> None:
    engine = _engine("all")
    curl = {"evt.type": "execve", "proc.name": "curl", "proc.pname": "bash"}
    assert _names(engine.process(curl))[0] == "spawned_curl"
    assert engine.enable_rules(False, tag="net") == 2
    assert _names(engine.process(curl)) == ["any_type_curl", "spawned_anything"]
    assert engine.enable_rules(False, rule="any_type_*") == 1
    assert _names(engine.process({"evt.type": "connect", "proc.name": "curl"})) == []
    # re-enabled rules go to the end of the evaluation order, as in Falco
    engine.enable_rules(True, rule="spawned_curl")
    engine.enable_rules(True, rule="any_type_curl")
    assert _names(engine.process(curl)) == ["spawned_anything", "spawned_curl", "any_type_curl"]
    first = RulesEngine(rule_matching="first")
    assert first.load_rules_content([("r.yaml", RULES)]).successful
    first.enable_rules(False, rule="spawned_*")
    assert _names(first.process(curl)) == ["any_type_curl"]
    first.enable_rules(True, rule="spawned_anything")
    assert _names(first.process(curl)) == ["any_type_curl"]
    first.enable_rules(False, rule="*")
    assert first.process(curl) == []


def test_compile_all_gives_the_same_results() -> None:
    lazy, eager = _engine("all"), _engine("all")
    eager.ruleset.compile_all()
    for event in ({"evt.type": "execve", "proc.name": "curl", "proc.pname": "bash"},
                  {"evt.type": "openat", "fd.name": "/etc/shadow", "proc.name": "wget"}, {"proc.name": "curl"}):
        assert _names(eager.process(event)) == _names(lazy.process(event))


def test_candidates_are_the_enabled_rules_of_the_type_in_order() -> None:
    ruleset = _engine("first").ruleset
    assert [r.name for r in ruleset.candidates("execve")] == [
        "spawned_curl", "spawned_downloader", "any_type_curl", "spawned_anything"]
    assert [r.name for r in ruleset.candidates("connect")] == ["any_type_curl"]
    assert ruleset.required_event_types() == {"execve", "execveat", "openat"}


K8S_RULES = RULES + """
- rule: k8s_exec
  desc: d
  condition: ka.verb = create and ka.target.subresource = exec
  output: o
  priority: NOTICE
  source: k8s_audit
- rule: k8s_any_delete
  desc: d
  condition: ka.verb = delete
  output: o
  priority: INFO
  source: k8s_audit
"""


def test_each_source_has_its_own_rules() -> None:
    engine, result = load(K8S_RULES, rule_matching="all")
    assert result.successful, result.as_text()
    audit = {"ka.verb": "create", "ka.target.subresource": "exec", "proc.name": "curl"}
    assert _names(engine.process(audit, "k8s_audit")) == ["k8s_exec"]
    assert _names(engine.process({"ka.verb": "delete"}, source="k8s_audit")) == ["k8s_any_delete"]
    # the syscall rules never see audit events, nor the audit rules syscall events
    assert _names(engine.process(audit)) == ["any_type_curl"]
    assert engine.process(audit, "aws_cloudtrail") == []
    assert engine.required_event_types() == {"execve", "execveat", "openat"}


def test_rules_sharing_a_first_conjunct_are_tested_under_one_test() -> None:
    from processor.engine.filter_compiler import compile_ruleset
    from processor.engine.parser import parse_condition

    conditions = ["proc.name = a and fd.name = x", "fd.name = y", "proc.name = a and fd.name startswith /",
                  "proc.name = a"]
    fused = compile_ruleset([parse_condition(c) for c in conditions], results=["r0", "r1", "r2", "r3"])
    assert fused.source.count(") == _c") == 3  # `proc.name = a` tested once for r0, r2 and r3 (`] == _c`: a prefix)
    event = {"proc.name": "a", "fd.name": "y"}
    assert fused.match(event) == ["r1", "r3"]  # rule order, though r1 is tested after r0, r2, r3's group
    assert fused.match(event, True) == ["r1"]
    assert fused.match({"fd.name": "/x"}) == []
    first = compile_ruleset([parse_condition(c) for c in conditions], first=True)
    assert first.match({"proc.name": "a", "fd.name": "/z"}) == [2]
    assert first.match_all({"proc.name": "a", "fd.name": "/z"}) == [2, 3]
    assert first.match_first({"proc.name": "b"}) == -1


# -- fused against rule-by-rule over Falco's own rules ------------------------------------------------

def _constants(rules: list[Any]) -> dict[str, list[str]]:
    """Every field key a rule checks, with the constants it is compared with (the values that matter)."""
    out: dict[str, list[str]] = {}
    for rule in rules:
        for node in ast.walk(rule.condition):
            if not isinstance(node, ast.Check) or not isinstance(node.field, ast.FieldRef):
                continue
            ref = node.field
            key = ref.name if ref.arg is None else f"{ref.name}[{ref.arg}]"
            values = out.setdefault(key, [])
            if isinstance(node.value, ast.StrValue):
                values.append(node.value.text)
            elif isinstance(node.value, ast.ListValue):
                values += [i.text for i in node.value.items if isinstance(i, ast.StrValue)]
    return out


def _value(rng: random.Random, name: str, constants: list[str]) -> Any:
    fdef = lookup_field(name.split("[")[0], "syscall")
    type_ = fdef.type if fdef else "charbuf"
    if type_ in IP_TYPES:
        return rng.choice(["10.1.2.3", "127.0.0.1", "192.168.0.7", "8.8.8.8", "::1"])
    if type_ not in STRING_TYPES:
        return rng.choice(constants) if constants else None
    text = rng.choice(constants) if constants and rng.random() < 0.8 else rng.choice(["bash", "/tmp/x", "nginx"])
    mutate = rng.random()
    if mutate < 0.2:
        text += rng.choice(["/x", "x", ".d/f"])
    elif mutate < 0.3:
        text = "/" + text.strip("/") + "/y"
    if fdef is not None and fdef.any_ancestor and "[" not in name:
        return [text, rng.choice(["systemd", "containerd-shim", text])]
    return text


def _events(rng: random.Random, rules: list[Any], types: list[str], n: int) -> list[dict[str, Any]]:
    constants = _constants(rules)
    keys = sorted(k for k in constants if k != "evt.type")
    events = []
    for _ in range(n):
        event: dict[str, Any] = {}
        if rng.random() < 0.97:
            event["evt.type"] = rng.choice(types)
        for key in rng.sample(keys, k=len(keys) // 2):  # the other half are missing fields
            value = _value(rng, key, constants[key])
            if value is not None:
                event[key] = value
        events.append(event)
    return events


@pytest.fixture(scope="module")
def falco_engine(falco_rules: Path) -> RulesEngine:
    engine = RulesEngine(rule_matching="all")
    result = engine.load_rules_files([falco_rules / f for f in FALCO_FILES])
    assert result.successful, result.as_text()
    return engine


@pytest.mark.parametrize("rule_matching", ["first", "all"])
def test_fused_agrees_with_rule_by_rule_on_falco_rules(falco_engine: RulesEngine, rule_matching: str) -> None:
    rules = falco_engine.ruleset.rules
    fused = Ruleset(rules, rule_matching)
    per_rule = Ruleset(rules, rule_matching, fused=False)
    types = sorted(fused.required_event_types()) + ["read", "clone"]  # and two types no rule names
    rng = random.Random(7)
    events = _events(rng, fused.enabled, types, 3000)
    # and events built to reach deep into the conditions of each event type's rules
    for evt_type in ("execve", "openat", "connect"):
        events += _events(rng, list(fused.candidates(evt_type)), [evt_type], 700)
    matched = 0
    for event in events:
        expected = _names(per_rule.process(event))
        assert _names(fused.process(event)) == expected, event
        matched += bool(expected)
    assert matched > len(events) // 20  # the mix exercises the rules, not only their misses
