"""Compile stage: exceptions -> condition exactly as Falco, list/macro expansion, compile warnings."""

from __future__ import annotations

from processor.engine.compiler import build_exceptions, resolve_list
from tests.engine.conftest import codes, compiled, load, messages

BASE = """
- rule: test_rule
  desc: test rule
  condition: evt.type = open
  output: command=%proc.cmdline
  priority: INFO
"""


def exceptions_rule(exceptions: str, condition: str = "evt.type = open") -> str:
    return BASE.replace("evt.type = open", condition) + "  exceptions:\n" + exceptions


def test_exceptions_condition_tuple_form_quotes_values_with_spaces() -> None:
    engine, res = load(exceptions_rule("""
    - name: test_exception
      fields: [proc.cmdline]
      comps: [contains]
      values:
        - [curl 127.0.0.1]
""", "proc.cmdline contains curl or proc.cmdline contains wget"))
    assert res.successful, res.as_text()
    assert compiled(engine, "test_rule") == (
        '((proc.cmdline contains curl or proc.cmdline contains wget) and not proc.cmdline contains "curl 127.0.0.1")')


def test_exceptions_modifier_op_multi_field_mixed() -> None:
    engine, res = load(exceptions_rule("""
    - name: ex
      fields: [proc.name, fd.name]
      comps: [startswith oneof, startswith]
      values:
        - [[sshd, sudo], /etc/]
"""))
    assert res.successful, res.as_text()
    assert compiled(engine, "test_rule") == (
        "(evt.type = open and not (proc.name startswith oneof (sshd, sudo) and fd.name startswith /etc/))")


def test_exceptions_default_comps_and_several_rows() -> None:
    engine, res = load(exceptions_rule("""
    - name: ex
      fields: [proc.name, fd.name]
      values:
        - [cat, /etc/passwd]
        - [vi, /etc/shadow]
    - name: by_list
      fields: [proc.pname, fd.directory]
      comps: [in, pmatch]
      values:
        - [[bash, sh], my_dirs]
"""))
    assert res.successful, res.as_text()
    assert compiled(engine, "test_rule") == (
        "(evt.type = open and not ((proc.name = cat and fd.name = /etc/passwd) or "
        "(proc.name = vi and fd.name = /etc/shadow)) and not "
        "(proc.pname in (bash, sh) and fd.directory pmatch (my_dirs)))")


def test_exceptions_scalar_value_with_list_comp_can_name_a_list() -> None:
    engine, res = load("- list: shells\n  items: [bash, zsh]\n" + exceptions_rule("""
    - name: ex
      fields: [proc.name]
      comps: [in]
      values:
        - [shells]
"""))
    assert res.successful, res.as_text()
    assert compiled(engine, "test_rule") == "(evt.type = open and not proc.name in (bash, zsh))"
    assert "LOAD_UNUSED_LIST" not in codes(res)


def test_exceptions_single_field_form() -> None:
    engine, res = load(exceptions_rule("""
    - name: ex
      fields: proc.name
      values: [cat, "my tool"]
    - name: ex2
      fields: fd.name
      comps: pmatch
      values: [/tmp]
"""))
    assert res.successful, res.as_text()
    assert compiled(engine, "test_rule") == (
        '(evt.type = open and not proc.name in (cat, "my tool") and not fd.name pmatch (/tmp))')


def test_exceptions_without_values_add_nothing() -> None:
    engine, res = load(exceptions_rule("    - name: ex\n      fields: [proc.name]\n"))
    assert res.successful
    assert compiled(engine, "test_rule") == "evt.type = open"


def test_exception_validation_errors() -> None:
    cases = {
        "      fields: [proc.name, fd.name]\n      comps: [=]\n      values: [[a, b]]\n":
            "Fields and comps lists must have equal length",
        "      fields: [proc.name, fd.name]\n      values: [[a]]\n": "Fields and values lists must have equal length",
        "      fields: [proc.name]\n      comps: [like]\n      values: [[a]]\n":
            "'like' is not a supported comparison operator",
        "      fields: [proc.nope]\n      values: [[a]]\n": "'proc.nope' is not a supported filter field",
        "      fields: proc.name\n      comps: '='\n      values: [a]\n":
            "When fields is a single value, comps must be one of (in, pmatch, intersects) or a modifier "
            "operator (e.g. startswith oneof)",
        "      fields: proc.name\n      comps: [in]\n      values: [a]\n": "Fields and comps must both be strings",
        "      fields: proc.name\n      values: [[a, b]]\n": "Expected values array to contain a list of strings",
    }
    for body, message in cases.items():
        _, res = load(exceptions_rule("    - name: ex\n" + body))
        assert messages(res) == [message], body
        assert res.errors[0].code.name == "LOAD_ERR_VALIDATE"
        assert res.errors[0].context.locations[-1].item_type == "exception"


def test_exception_append_adds_values_and_warns_without_values() -> None:
    text = exceptions_rule("""
    - name: test_exception
      fields: [proc.cmdline]
      comps: [contains]
      values:
        - [curl 127.0.0.1]
""") + """
- rule: test_rule
  exceptions:
    - name: test_exception
      values:
        - [wget 10.0.0.1]
    - name: other
      value: typo
  override:
    exceptions: append
"""
    _, res = load(text)
    assert messages(res) == ["Rule exception must have fields property with a list of fields"]
    assert "Overriding/appending exception with no values" in messages(res, "warnings")
    engine, res = load(text.replace("    - name: other\n      value: typo\n", ""))
    assert res.successful, res.as_text()
    assert compiled(engine, "test_rule") == (
        '(evt.type = open and not (proc.cmdline contains "curl 127.0.0.1" or proc.cmdline contains "wget 10.0.0.1"))')
    _, res = load(text.replace("      values:\n        - [wget 10.0.0.1]\n", "      fields: [proc.name]\n"
                               "      values:\n        - [x]\n").replace("    - name: other\n      value: typo\n", ""))
    assert messages(res) == ["Can not append exception fields to existing exception, only values"]


def test_exception_names_not_unique_is_a_warning() -> None:
    _, res = load(exceptions_rule("""
    - name: ex
      fields: [proc.name]
      values: [[a]]
    - name: ex
      fields: [proc.name]
      values: [[b]]
"""))
    assert res.successful
    assert "Multiple definitions of exception 'ex' in the same rule" in messages(res, "warnings")


def test_field_like_value_warns() -> None:
    engine, res = load(exceptions_rule("    - name: ex\n      fields: [proc.name]\n      comps: [=]\n"
                                       "      values:\n        - [proc.pname]\n"))
    assert res.successful
    assert compiled(engine, "test_rule") == "(evt.type = open and not proc.name = proc.pname)"
    assert "'proc.pname' may be a valid field misused as a const string value" in messages(res, "warnings")


def test_build_exceptions_text() -> None:
    from processor.engine.collector import ExceptionEntry, ExceptionInfo
    from processor.engine.load_result import Context

    ex = ExceptionInfo("e", Context.root("f"), ExceptionEntry(item="proc.name"), ExceptionEntry(item="in"),
                       [ExceptionEntry(item="a"), ExceptionEntry(item="b c")])
    assert build_exceptions("x = 1 or y = 2", [ex]) == ('(x = 1 or y = 2) and not (proc.name in (a, "b c"))',
                                                         {"proc.name"})


def test_resolve_list_is_textual_with_delimiters() -> None:
    assert resolve_list("proc.name in (shells)", "shells", ["bash", "sh"]) == ("proc.name in ( bash, sh )", True)
    assert resolve_list("proc.name in (myshells)", "shells", ["bash"]) == ("proc.name in (myshells)", False)
    assert resolve_list("x in (a, empty, b)", "empty", [])[0] == "x in (a  , b)"
    assert resolve_list("x in (empty)", "empty", [])[0] == "x in (  )"


def test_condition_syntax_error_context_and_snippet() -> None:
    _, res = load(BASE.replace("evt.type = open", "evt.type = open and proc.name = cat and"))
    assert not res.successful
    err = res.errors[0]
    assert err.code.name == "LOAD_ERR_COMPILE_CONDITION"
    locs = err.context.locations
    assert [loc.item_type for loc in locs] == ["rules content", "rule", "rule condition", "condition expression"]
    assert locs[1].item_name == "test_rule" and (locs[1].line, locs[1].column) == (1, 2)
    assert (locs[2].line, locs[2].column) == (3, 13)
    text = res.as_text()
    assert 'condition expression: ("evt.type = open a...":4:53)' in text
    assert "evt.type = open and proc.name = cat and\n" + " " * 38 + "^\n" in text


def test_undefined_macro_and_unknown_field() -> None:
    _, res = load(BASE.replace("evt.type = open", "evt.type = open and not_a_macro"))
    assert messages(res) == ["Undefined macro 'not_a_macro' used in filter."]
    _, res = load(BASE.replace("evt.type = open", "evt.type = open and proc.nosuchfield = x"))
    assert res.errors[0].code.name == "LOAD_ERR_COMPILE_CONDITION"
    assert "proc.nosuchfield" in res.errors[0].message


def test_skip_if_unknown_filter_turns_errors_into_warnings() -> None:
    text = BASE.replace("evt.type = open", "evt.type = open and proc.nosuchfield = x") + "  skip-if-unknown-filter: true\n"
    engine, res = load(text)
    assert res.successful
    assert codes(res) == ["LOAD_UNKNOWN_FILTER"]
    assert engine.rule_names() == []
    text = BASE.replace("command=%proc.cmdline", "command=%proc.nosuchfield") + "  skip-if-unknown-filter: true\n"
    engine, res = load(text)
    assert res.successful and codes(res) == ["LOAD_UNKNOWN_FILTER"]


def test_bad_output_is_compile_output_error() -> None:
    _, res = load(BASE.replace("command=%proc.cmdline", "command=%proc.nosuchfield"))
    assert res.errors[0].code.name == "LOAD_ERR_COMPILE_OUTPUT"
    assert res.errors[0].context.locations[-1].item_type == "rule output"


def test_no_evttype_warning_and_warn_evttypes_false() -> None:
    text = BASE.replace("evt.type = open", "proc.name = cat")
    _, res = load(text)
    assert codes(res) == ["LOAD_NO_EVTTYPE"]
    _, res = load(text + "  warn_evttypes: false\n")
    assert codes(res) == []


def test_unused_macro_and_list_warnings() -> None:
    _, res = load("- list: l\n  items: [a]\n- macro: m\n  condition: proc.name in (l)\n" + BASE)
    assert codes(res) == ["LOAD_UNUSED_MACRO"]
    assert messages(res, "warnings") == ["Macro not referred to by any other rule/macro"]
    _, res = load("- list: l\n  items: [a]\n" + BASE)
    assert messages(res, "warnings") == ["List not referred to by any other rule/macro"]


def test_priority_names_case_insensitive_and_min_priority() -> None:
    from processor.engine.engine import EngineConfig
    from processor.engine.priority import Priority

    for name, prio in (("info", Priority.INFORMATIONAL), ("CRITICAL", Priority.CRITICAL), ("Debug", Priority.DEBUG)):
        engine, res = load(BASE.replace("priority: INFO", f"priority: {name}"))
        assert engine.describe("test_rule").priority is prio
    _, res = load(BASE.replace("priority: INFO", "priority: LOUD"))
    assert messages(res) == ["Invalid priority"]
    engine, res = load(BASE, config=EngineConfig(min_priority=Priority.WARNING))
    assert res.successful and engine.rule_names() == []


def test_capture_keys_accepted() -> None:
    engine, res = load(BASE + "  capture: true\n  capture_duration: 2000\n")
    assert res.successful and not res.has_warnings
    rule = engine.describe("test_rule")
    assert rule.capture and rule.capture_duration == 2000
