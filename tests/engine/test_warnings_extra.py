"""Falco's remaining load checks: unsafe <NA> comparisons, the rule-schema check, eager compilation.

Expected behaviour read from F:userspace/engine/filter_warning_resolver.cpp (and its unit test
F:unit_tests/engine/test_filter_warning_resolver.cpp), F:userspace/engine/rule_json_schema.h and yaml_helper.h.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from peregrine_cli.main import main
from processor.engine.engine import RulesEngine, default_sources
from processor.engine.load_result import WarningCode
from tests.engine.conftest import codes, load

ALL_FALCO_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml",
                   "falco-deprecated_rules.yaml", "k8s_audit_rules.yaml")


def k8s_rule(condition: str, name: str = "r") -> str:
    return (f"- rule: {name}\n  desc: d\n  condition: '{condition}'\n  output: o\n  priority: INFO\n"
            "  source: k8s_audit\n")


# -- LOAD_UNSAFE_NA_CHECK ------------------------------------------------------------------------

@pytest.mark.parametrize("condition", [
    "ka.user.name = <NA>",
    "ka.user.name == <NA>",
    "ka.user.name != <NA>",
    'ka.user.name = "<NA>"',  # quoting does not matter: the value is <NA>
    "ka.user.name in (<NA>)",
    "ka.user.name in (otherval, <NA>)",
    "ka.user.groups intersects (<NA>)",
    "ka.user.groups intersects (otherval, <NA>)",
    "ka.uri pmatch (<NA>)",
    "ka.uri pmatch (otherval, <NA>)",
    "jevt.value[/requestObject/kind] = <NA>",
    "tolower(ka.user.name) = <NA>",  # a transformer around an unsafe field still warns
    "ka.verb = create and not ka.target.namespace in (<NA>)",
])
def test_unsafe_na_comparison_warns(condition: str) -> None:
    _, res = load(k8s_rule(condition))
    assert res.successful, res.as_text()
    assert codes(res) == ["LOAD_UNSAFE_NA_CHECK"]


@pytest.mark.parametrize("condition", [
    "ka.user.name exists",
    "ka.user.name contains <NA>",  # not an equality operator
    "ka.user.name startswith <NA>",
    "ka.user.name = NA",
    "ka.user.name in (a, b)",
    "json.value[/requestObject/kind] = <NA>",  # only ka.* and jevt.* fields are checked
])
def test_safe_comparisons_do_not_warn(condition: str) -> None:
    _, res = load(k8s_rule(condition))
    assert res.successful, res.as_text()
    assert codes(res) == []


def test_field_named_as_value_warns_for_the_rule_source() -> None:
    # libs' compiler warning, checked against the rule's own source (ka.verb is a k8s_audit field)
    _, res = load(k8s_rule("ka.user.name = ka.verb"))
    assert res.successful, res.as_text()
    assert codes(res) == ["LOAD_COMPILE_CONDITION"]
    assert res.warnings[0].message == "'ka.verb' may be a valid field misused as a const string value"


def test_syscall_fields_compared_with_na_do_not_warn() -> None:
    # Falco's stable rules do this (proc.name in ("<NA>","N/A")): only k8s audit fields are unsafe
    _, res = load("- rule: r\n  desc: d\n  condition: evt.type = execve and not proc.name in (\"<NA>\", \"N/A\")\n"
                  "  output: o\n  priority: INFO\n")
    assert res.successful, res.as_text()
    assert codes(res) == []


def test_one_warning_per_rule_with_falco_message_and_context() -> None:
    _, res = load(k8s_rule("ka.user.name = <NA> and ka.verb != <NA> and ka.uri in (<NA>)"))
    [warning] = res.warnings
    assert warning.code is WarningCode.LOAD_UNSAFE_NA_CHECK
    assert warning.message == ""  # Falco passes an empty message: the code's description says it all
    assert [(loc.item_type, loc.item_name) for loc in warning.context.locations] == [
        ("rules content", ""), ("rule", "r"), ("rule condition", "")]
    assert "LOAD_UNSAFE_NA_CHECK (Unsafe <NA> comparison in condition): \n" in res.as_text()
    [doc] = res.as_json()["falco_load_results"][0]["warnings"]
    assert doc["codedesc"].startswith("Comparing a field value with <NA> is unsafe")
    assert doc["message"] == ""


def test_checked_after_macro_expansion_once_per_using_rule() -> None:
    text = ("- macro: no_user\n  condition: ka.user.name = <NA>\n"
            "- macro: unused_no_user\n  condition: ka.user.name = <NA>\n"
            + k8s_rule("ka.verb = create and no_user", "a") + k8s_rule("no_user", "b") + k8s_rule("ka.verb = get", "c"))
    _, res = load(text)
    assert res.successful, res.as_text()
    na = [w for w in res.warnings if w.code is WarningCode.LOAD_UNSAFE_NA_CHECK]
    assert [w.context.locations[1].item_name for w in na] == ["a", "b"]
    assert codes(res).count("LOAD_UNUSED_MACRO") == 1


def test_rule_of_unavailable_source_is_not_checked() -> None:
    engine = RulesEngine(sources={"syscall": default_sources()["syscall"]})
    res = engine.load_rules_content([("r.yaml", k8s_rule("ka.user.name = <NA>"))])
    assert codes(res) == ["LOAD_UNKNOWN_SOURCE"]


def test_deprecated_fields_warn_once_per_field_per_rule() -> None:
    _, res = load("- macro: exit\n  condition: evt.dir = <\n"
                  "- rule: r\n  desc: d\n  condition: evt.type = read and exit and evt.dir != > and evt.latency > 5\n"
                  "  output: o\n  priority: INFO\n")
    assert res.successful, res.as_text()
    assert [(w.code.name, w.detail) for w in res.warnings] == [
        ("LOAD_DEPRECATED_ITEM", "field 'evt.dir'"), ("LOAD_DEPRECATED_ITEM", "field 'evt.latency'")]


@pytest.mark.parametrize("with_k8s_source", [True, False])
def test_falco_files_give_no_na_warning(falco_rules: Path, with_k8s_source: bool) -> None:
    """No Falco rules file compares a ka./jevt. field with <NA> (its <NA> checks are on proc.name,
    user.name and container.mount.dest), so `falco -V` reports no LOAD_UNSAFE_NA_CHECK for any of them,
    with the k8saudit plugin loaded or not (without it the k8s_audit rules are skipped unchecked)."""
    sources = None if with_k8s_source else {"syscall": default_sources()["syscall"]}
    for name in ALL_FALCO_FILES:
        res = RulesEngine(sources=sources).load_rules_files([falco_rules / name])
        assert res.successful, res.as_text()
        assert "LOAD_UNSAFE_NA_CHECK" not in codes(res), name
    engine = RulesEngine(sources=sources)
    res = engine.load_rules_files([falco_rules / n for n in ALL_FALCO_FILES])
    assert res.successful and "LOAD_UNSAFE_NA_CHECK" not in codes(res)
    assert len([r for r in engine.rule_names()]) == 25 + 31 + 37 + 4 + (48 if with_k8s_source else 0)


# -- rule schema -----------------------------------------------------------------------------------

TYPO = """- rule: cat shadow
  desc: cat reads shadow
  condition: evt.type = openat and fd.name = /etc/shadow
  output: shadow read by %proc.name
  priority: WARNING
  enabeld: false
  exceptions:
    - name: known
      fields: [proc.name]
      valeus: [[cat]]
"""


def test_typod_keys_fail_the_schema_check_but_not_the_load() -> None:
    engine, res = load(TYPO, name="typo.yaml")
    assert res.successful  # schema findings are warnings only
    assert engine.rule_names() == ["cat shadow"]
    fres = res.files[0]
    assert fres.schema_valid is False
    assert fres.schema_warnings == [
        "failed for <root>[0]: Object contains a property that could not be validated using 'properties' or "
        "'additionalProperties' constraints: 'enabeld'.",
        "failed for <root>[0][exceptions][0]: Object contains a property that could not be validated using "
        "'properties' or 'additionalProperties' constraints: 'valeus'.",
        "failed for <root>[0][exceptions]: Failed to validate item #0 in array.",
        "failed for <root>[0]: Failed to validate against schema associated with property name 'exceptions'.",
        "failed for <root>: Failed to validate item #0 in array.",
    ]
    doc = res.as_json()["falco_load_results"][0]
    assert doc["schema_valid"] is False and doc["schema_warnings"] == fres.schema_warnings
    assert res.as_text().endswith(f"   typo.yaml | schema validation: {fres.schema_warnings[0]}\n")
    assert "LOAD_UNKNOWN_KEY" in codes(res)


def test_schema_types_are_weak_and_enums_exact() -> None:
    text = ("- required_engine_version: 15\n"  # an integer scalar is a string to valijson's weak types
            "- list: ports\n  items: [22, ssh]\n"
            "- rule: r\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: Warning\n"
            "  capture: true\n  capture_duration: 5000\n  tags: [a]\n")
    _, res = load(text)
    assert res.successful, res.as_text()
    # Falco's Priority enum is upper case: "Warning" loads (priorities are case-insensitive) but fails the schema
    assert res.files[0].schema_warnings == [
        "failed for <root>[2][priority]: Failed to match against any enum values.",
        "failed for <root>[2]: Failed to validate against schema associated with property name 'priority'.",
        "failed for <root>: Failed to validate item #2 in array.",
    ]
    _, res = load(text.replace("Warning", "WARNING"))
    assert res.files[0].schema_valid and res.files[0].schema_warnings == ["ok"]
    assert res.as_json()["falco_load_results"][0]["schema_warnings"] == []


def test_no_schema_status_without_yaml() -> None:
    _, res = load("- rule: [unclosed\n")
    assert not res.successful
    assert res.files[0].schema_validation == "none"
    assert "schema_valid" not in res.as_json()["falco_load_results"][0]


def test_falco_files_pass_the_schema(falco_rules: Path) -> None:
    res = RulesEngine().load_rules_files([falco_rules / n for n in ALL_FALCO_FILES])
    assert res.successful, res.as_text()
    assert [(f.name.rsplit("/", 1)[-1], f.schema_validation) for f in res.files] == [
        (n, "ok") for n in ALL_FALCO_FILES]
    assert all(d["schema_valid"] and d["schema_warnings"] == [] for d in res.as_json()["falco_load_results"])


def test_validate_json_report_carries_schema_fields(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "typo.yaml"
    f.write_text(TYPO)
    assert main(["rules", "validate", "--json", str(f)]) == 0
    [doc] = orjson.loads(capsys.readouterr().out)["falco_load_results"]
    assert doc["schema_valid"] is False and len(doc["schema_warnings"]) == 5


# -- eager compilation ----------------------------------------------------------------------------

def test_load_compiles_every_event_type_group(falco_rules: Path) -> None:
    engine = RulesEngine()
    assert engine.load_rules_files([falco_rules / "falco_rules.yaml"]).successful
    # no dispatch entry is left as a compile-on-first-event stand-in
    dispatch = engine.ruleset._dispatch["syscall"]
    assert dispatch and all(ev.__name__ != "compile_then_evaluate" for ev in dispatch.values())
    event = {"evt.type": "openat", "evt.is_open_read": True, "fd.typechar": "f", "fd.num": 3,
             "fd.name": "/etc/shadow", "fd.directory": "/etc", "proc.name": "evil", "proc.pname": "bash"}
    assert [m.rule for m in engine.process(event)] == ["Read sensitive file untrusted"]
