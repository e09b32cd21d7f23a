"""Collect stage: redefinition, append/override, enabled toggles, visibility (Falco's test_rule_loader cases)."""

from __future__ import annotations

from processor.engine.collector import (
    ERROR_NO_PREVIOUS_LIST,
    ERROR_NO_PREVIOUS_MACRO,
    ERROR_NO_PREVIOUS_RULE_APPEND,
    ERROR_NO_PREVIOUS_RULE_REPLACE,
    ERROR_OVERRIDE_APPEND,
    WARNING_APPEND,
    WARNING_ENABLED,
)
from processor.engine.priority import Priority
from tests.engine.conftest import codes, compiled, load, messages

RULE = """
- rule: legit_rule
  desc: legit rule description
  condition: evt.type=open
  output: user=%user.name command=%proc.cmdline file=%fd.name
  priority: INFO
"""


def test_list_override_append() -> None:
    engine, res = load("""
- list: shell_binaries
  items: [ash, bash, csh, ksh, sh, tcsh, zsh, dash]

- rule: legit_rule
  desc: legit rule description
  condition: evt.type=open and proc.name in (shell_binaries)
  output: user=%user.name command=%proc.cmdline file=%fd.name
  priority: INFO

- list: shell_binaries
  items: [pwsh]
  override:
    items: append
""")
    assert res.successful, res.as_text()
    assert compiled(engine, "legit_rule") == (
        "(evt.type = open and proc.name in (ash, bash, csh, ksh, sh, tcsh, zsh, dash, pwsh))")


def test_macro_override_append_is_textual() -> None:
    engine, res = load("""
- macro: interactive
  condition: >
    ((proc.aname=sshd and proc.name != sshd) or
    proc.name=systemd-logind or proc.name=login)

- rule: legit_rule
  desc: legit rule description
  condition: evt.type=open and interactive
  output: user=%user.name command=%proc.cmdline file=%fd.name
  priority: INFO

- macro: interactive
  condition: or proc.name = ssh
  override:
    condition: append
""")
    assert res.successful, res.as_text()
    assert compiled(engine, "legit_rule") == (
        "(evt.type = open and (((proc.aname = sshd and proc.name != sshd) or proc.name = systemd-logind "
        "or proc.name = login) or proc.name = ssh))")


def test_rule_override_append_condition_output_desc() -> None:
    engine, res = load(RULE + """
- rule: legit_rule
  desc: with append
  condition: and proc.name = cat
  output: proc=%proc.name
  override:
    desc: append
    condition: append
    output: append
""")
    assert res.successful, res.as_text()
    assert WARNING_APPEND not in messages(res, "warnings")
    rule = engine.describe("legit_rule")
    assert rule.desc == "legit rule description with append"
    assert rule.output.text.startswith("user=%user.name command=%proc.cmdline file=%fd.name proc=%proc.name")
    assert rule.condition_compiled == "(evt.type = open and proc.name = cat)"


def test_deprecated_append_works_with_warning() -> None:
    engine, res = load(RULE + """
- rule: legit_rule
  condition: and proc.name = cat
  append: true
""")
    assert res.successful
    assert WARNING_APPEND in messages(res, "warnings")
    assert "LOAD_DEPRECATED_ITEM" in codes(res)
    assert compiled(engine, "legit_rule") == "(evt.type = open and proc.name = cat)"


def test_rule_override_replace_and_mixed() -> None:
    engine, res = load("""
- rule: legit_rule
  desc: legit rule description
  condition: evt.type = close
  output: user=%user.name command=%proc.cmdline file=%fd.name
  priority: INFO

- rule: legit_rule
  desc: a replaced legit description
  condition: and proc.name = cat
  priority: WARNING
  override:
    desc: replace
    condition: append
    priority: replace
""")
    assert res.successful, res.as_text()
    rule = engine.describe("legit_rule")
    assert rule.condition_compiled == "(evt.type = close and proc.name = cat)"
    assert rule.desc == "a replaced legit description"
    assert rule.priority is Priority.WARNING


def test_override_key_that_cannot_be_appended() -> None:
    text = RULE + """
- rule: legit_rule
  desc: an appended incorrect field
  condition: and proc.name = cat
  priority: WARNING
  override:
    desc: replace
    condition: append
    priority: append
"""
    _, res = load(text)
    assert not res.successful
    assert messages(res) == ["Key 'priority' cannot be appended to, use 'replace' instead"]
    assert res.errors[0].code.name == "LOAD_ERR_YAML_VALIDATE"
    assert "priority: append" in res.as_json()["falco_load_results"][0]["errors"][0]["context"]["snippet"]


def test_override_errors_exact_messages() -> None:
    cases = {
        "    source: replace\n": "Key 'source' cannot be replaced",
        "    desc: prepend\n": "Invalid override operation for key 'desc': 'prepend'. Allowed values are: append replace ",
        "    priority: prepend\n": "Invalid override operation for key 'priority': 'prepend'. Allowed values are: replace ",
    }
    for override, message in cases.items():
        _, res = load(RULE + "\n- rule: legit_rule\n  desc: x\n  source: syscall\n  priority: INFO\n  override:\n" + override)
        assert messages(res) == [message]


def test_override_key_not_defined_and_unexpected_key() -> None:
    _, res = load(RULE + """
- rule: legit_rule
  desc: an appended incorrect field
  override:
    desc: replace
    condition: append
""")
    assert messages(res) == ["An append override for 'condition' was specified but 'condition' is not defined"]
    _, res = load(RULE + """
- rule: legit_rule
  desc: an appended incorrect field
  condition: and proc.name = cat
  priority: WARNING
  override:
    desc: replace
    condition: append
""")
    assert messages(res) == ["Unexpected key 'priority': no corresponding entry under 'override' is defined."]


def test_override_and_append_flag_together() -> None:
    _, res = load(RULE + """
- rule: legit_rule
  condition: and proc.name = cat
  append: true
  override:
    condition: append
""")
    assert messages(res) == [ERROR_OVERRIDE_APPEND]
    assert WARNING_APPEND in messages(res, "warnings")


def test_append_before_definition_is_an_error() -> None:
    for text, msg in (
        ("- macro: m\n  condition: or evt.type = openat2\n  override:\n    condition: append\n", ERROR_NO_PREVIOUS_MACRO),
        ("- macro: m\n  condition: or evt.type = openat2\n  append: true\n", ERROR_NO_PREVIOUS_MACRO),
        ("- list: l\n  items: [a]\n  override:\n    items: append\n", ERROR_NO_PREVIOUS_LIST),
        ("- list: l\n  items: [a]\n  append: true\n", ERROR_NO_PREVIOUS_LIST),
        ("- rule: r\n  condition: and proc.name = cat\n  override:\n    condition: append\n",
         ERROR_NO_PREVIOUS_RULE_APPEND),
        ("- rule: r\n  condition: and proc.name = cat\n  append: true\n", ERROR_NO_PREVIOUS_RULE_APPEND),
        ("- rule: r\n  condition: proc.name = cat\n  override:\n    condition: replace\n",
         ERROR_NO_PREVIOUS_RULE_REPLACE),
    ):
        _, res = load(text)
        assert messages(res) == [msg]
        assert res.errors[0].code.name == "LOAD_ERR_VALIDATE"


def test_macro_override_replace_before_definition_is_a_define() -> None:
    engine, res = load("""
- macro: open_simple
  condition: or evt.type = openat2
  override:
    condition: replace

- macro: open_simple
  condition: evt.type in (open,openat)

- rule: test_rule
  desc: simple rule
  condition: open_simple
  output: command=%proc.cmdline
  priority: INFO
""")
    assert res.successful, res.as_text()
    assert compiled(engine, "test_rule") == "evt.type in (open, openat)"


def test_list_override_replace_and_misspelt_override_key() -> None:
    for key in ("override:\n    items: replace", "overridde:\n    items: append"):
        engine, res = load(f"""
- list: dev_creation_binaries
  items: ["csi-provisioner", "csi-attacher"]
  {key}

- list: dev_creation_binaries
  items: [blkid]

- rule: test_rule
  desc: simple rule
  condition: evt.type = execve and proc.name in (dev_creation_binaries)
  output: command=%proc.cmdline
  priority: INFO
""")
        assert res.successful, res.as_text()
        assert compiled(engine, "test_rule") == "(evt.type = execve and proc.name in (blkid))"
    assert messages(res, "warnings") == ["Unknown key 'overridde'. The key will be ignored."]


def test_redefinition_replaces_content_but_keeps_position() -> None:
    engine, res = load("""
- rule: first
  desc: d
  condition: evt.type = open
  output: first
  priority: INFO
- rule: second
  desc: d
  condition: evt.type = open
  output: second
  priority: INFO
- rule: first
  desc: redefined
  condition: evt.type = open and proc.name = cat
  output: first again
  priority: WARNING
""")
    assert res.successful
    assert engine.rule_names() == ["first", "second"]
    assert compiled(engine, "first") == "(evt.type = open and proc.name = cat)"
    assert engine.describe("first").priority is Priority.WARNING


def test_standalone_enabled_toggles_with_deprecation_warning() -> None:
    engine, res = load(RULE.replace("priority: INFO", "priority: INFO\n  enabled: false") + """
- rule: legit_rule
  enabled: true
""")
    assert res.successful
    assert messages(res, "warnings") == [WARNING_ENABLED]
    assert engine.ruleset.is_enabled("legit_rule")
    _, res = load("- rule: nope\n  enabled: true\n")
    assert messages(res) == ["Rule has 'enabled' key but no rule by that name already exists"]


def test_enabled_is_ignored_by_legacy_append_and_honoured_by_override() -> None:
    disabled = RULE.replace("priority: INFO", "priority: INFO\n  enabled: false")
    engine, res = load(disabled + "\n- rule: legit_rule\n  condition: and proc.name = cat\n  append: true\n  enabled: true\n")
    assert res.successful and not engine.ruleset.is_enabled("legit_rule")
    engine, res = load(disabled + """
- rule: legit_rule
  condition: and proc.name = cat
  enabled: true
  override:
    condition: append
    enabled: replace
""")
    assert res.successful and not res.has_warnings
    assert engine.ruleset.is_enabled("legit_rule")


def test_tags_append_is_a_union_and_replace_replaces() -> None:
    base = RULE.replace("priority: INFO", "priority: INFO\n  tags: [b, a]")
    engine, _ = load(base + "\n- rule: legit_rule\n  tags: [c, a]\n  override:\n    tags: append\n")
    assert engine.describe("legit_rule").tags == ("a", "b", "c")
    engine, _ = load(base + "\n- rule: legit_rule\n  tags: [z]\n  override:\n    tags: replace\n")
    assert engine.describe("legit_rule").tags == ("z",)


def test_macro_visibility_only_earlier_macros() -> None:
    _, res = load("""
- macro: outer
  condition: inner and proc.name = cat
- macro: inner
  condition: evt.type = open
- rule: r
  desc: d
  condition: outer
  output: o
  priority: INFO
""")
    assert messages(res) == ["Undefined macro 'inner' used in filter."]
    assert res.errors[0].code.name == "LOAD_ERR_VALIDATE"
    # rules see every macro, whatever the order
    engine, res = load("""
- rule: r
  desc: d
  condition: later
  output: o
  priority: INFO
- macro: later
  condition: evt.type = open
""")
    assert res.successful and compiled(engine, "r") == "evt.type = open"


def test_macro_reference_loop() -> None:
    _, res = load("""
- macro: a
  condition: evt.type = open
- macro: b
  condition: a
- macro: a
  condition: b
- rule: r
  desc: d
  condition: a
  output: o
  priority: INFO
""")
    assert not res.successful
    assert messages(res)[0].startswith("reference loop in macro '")


def test_list_in_list_expansion_respects_definition_order() -> None:
    engine, res = load("""
- list: inner
  items: [a, "b c"]
- list: outer
  items: [inner, d]
- rule: r
  desc: d
  condition: proc.name in (outer)
  output: o
  priority: INFO
""")
    assert res.successful
    assert compiled(engine, "r") == 'proc.name in (a, "b c", d)'
    engine, res = load("""
- list: outer
  items: [later, d]
- list: later
  items: [a]
- rule: r
  desc: d
  condition: proc.name in (outer)
  output: o
  priority: INFO
""")
    # 'later' was not defined before 'outer', so it stays an item of 'outer'; but conditions are
    # substituted textually list after list, so Falco then replaces the word 'later' too.
    assert engine._compiled.lists["outer"] == ["later", "d"]
    assert compiled(engine, "r") == "proc.name in (a, d)"
    assert "LOAD_UNUSED_LIST" not in codes(res)


def test_unknown_source_rules_are_skipped_with_warning() -> None:
    engine, res = load(RULE + "\n- rule: other\n  desc: d\n  condition: x.y = 1\n  output: o\n  priority: INFO\n  source: nosuchsource\n")
    assert res.successful
    assert messages(res, "warnings") == ["Unknown source nosuchsource, skipping"]
    assert engine.rule_names() == ["legit_rule"]


def test_redefinition_with_other_source_is_an_error() -> None:
    _, res = load(RULE + RULE.replace("priority: INFO", "priority: INFO\n  source: k8s_audit"))
    assert messages(res) == ["Rule has been re-defined with a different source"]


def test_required_engine_version() -> None:
    for version in ("0.26.0", "26", "0.57.0"):
        _, res = load(f"- required_engine_version: {version}\n" + RULE)
        assert res.successful and not res.has_warnings
    _, res = load("- required_engine_version: seven\n" + RULE)
    assert messages(res) == ["Unable to parse engine version 'seven' as a semver string. Expected \"x.y.z\" semver format."]
    _, res = load("- required_engine_version: 99.0.0\n" + RULE)
    assert messages(res) == ["Rules require engine version 99.0.0, but engine version is 0.63.0"]


def test_required_plugin_versions() -> None:
    engine, res = load("- required_plugin_versions:\n  - name: container\n    version: 0.4.0\n" + RULE)
    assert res.successful
    assert any("container" in n and "built-in" in n for n in res.notes)
    _, res = load("- required_plugin_versions:\n  - name: k8saudit\n    version: bad\n")
    assert messages(res) == ["Invalid required version 'bad' for plugin 'k8saudit'"]
    _, res = load("- required_plugin_versions:\n  - name: a\n    version: 0.1.0\n    alternatives:\n"
                  "      - name: a\n        version: 0.2.0\n")
    assert messages(res) == ["Defined multiple alternative version requirements for plugin 'a'"]
