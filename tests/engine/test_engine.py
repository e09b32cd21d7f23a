"""The engine facade: evaluation order, rule_matching, event-type index, rule selection."""

from __future__ import annotations

from processor.engine.engine import EngineConfig, RuleSelection, RulesEngine

RULES = """
- macro: spawned
  condition: evt.type in (execve, execveat)
- rule: shell
  desc: d
  condition: spawned and proc.name = bash
  output: shell %proc.name
  priority: WARNING
  tags: [shell, mitre_execution]
- rule: any_exec
  desc: d
  condition: spawned
  output: exec %proc.name
  priority: NOTICE
  tags: [process]
- rule: open_etc
  desc: d
  condition: evt.type = openat and fd.name startswith /etc/
  output: open %fd.name
  priority: ERROR
  tags: [filesystem]
- rule: disabled_one
  desc: d
  condition: evt.type = openat
  output: open %fd.name
  priority: ERROR
  enabled: false
"""
EXEC = {"evt.type": "execve", "proc.name": "bash"}


def _engine(**kw: object) -> RulesEngine:
    engine = RulesEngine(EngineConfig(**kw))  # type: ignore[arg-type]
    res = engine.load_rules_content([("r.yaml", RULES)])
    assert res.successful, res.as_text()
    return engine


def test_rule_matching_first_and_all() -> None:
    assert [m.rule for m in _engine().process(EXEC)] == ["shell"]
    assert [m.rule for m in _engine(rule_matching="all").process(EXEC)] == ["shell", "any_exec"]
    assert [m.rule for m in RulesEngine(rule_matching="all").process(EXEC)] == []


def test_event_type_index_only_checks_rules_for_the_type() -> None:
    engine = _engine(rule_matching="all")
    assert engine.required_event_types() == {"execve", "execveat", "openat"}
    assert not engine.matches_all_event_types()
    assert [m.rule for m in engine.process({"evt.type": "openat", "fd.name": "/etc/passwd", "proc.name": "bash"})] == [
        "open_etc"]
    assert engine.process({"evt.type": "connect", "proc.name": "bash"}) == []
    assert engine.process({"proc.name": "bash"}) == []


def test_missing_field_is_false() -> None:
    assert _engine().process({"evt.type": "openat"}) == []


def test_enable_disable_by_wildcard_and_tag_keeps_enable_order() -> None:
    engine = _engine(rule_matching="all")
    assert engine.enable_rules(False, rule="sh*") == 1
    assert [m.rule for m in engine.process(EXEC)] == ["any_exec"]
    engine.enable_rules(True, tag="shell")
    # re-enabled rules go to the end of the evaluation order, as in Falco
    assert [m.rule for m in engine.process(EXEC)] == ["any_exec", "shell"]
    engine.enable_rules(True, rule="disabled_one")
    assert engine.ruleset.is_enabled("disabled_one")
    assert engine.enable_rules(False, rule="*") == 4
    assert engine.required_event_types() == set()


def test_rules_selection_from_falco_yaml_config() -> None:
    cfg = EngineConfig.from_falco_yaml({
        "rule_matching": "all",
        "priority": "warning",
        "rules": [{"disable": {"rule": "*"}}, {"enable": {"tag": "filesystem"}}],
        "append_output": [{"match": {"tags": ["filesystem"]}, "extra_output": "pid=%proc.pid"}],
    })
    assert cfg.rules == [RuleSelection(False, "*", None), RuleSelection(True, None, "filesystem")]
    engine = RulesEngine(cfg)
    assert engine.load_rules_content([("r.yaml", RULES)]).successful
    # priority: warning drops the Notice rule at load
    assert engine.rule_names() == ["shell", "open_etc", "disabled_one"]
    assert [r.name for r in engine.ruleset.enabled] == ["open_etc"]
    assert engine.describe("open_etc").output.text == "open %fd.name pid=%proc.pid"


def test_counts_and_macros_shared() -> None:
    engine = _engine()
    assert engine.counts == {"rules": 4, "macros": 1, "lists": 0}
    assert engine.describe("any_exec").condition_compiled == "evt.type in (execve, execveat)"
