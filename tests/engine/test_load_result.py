"""The load report: Falco's text layout, JSON shape, codes and descriptions."""

from __future__ import annotations

from processor.engine.load_result import Context, ErrorCode, FileResult, WarningCode
from tests.engine.conftest import load

TEXT = """- rule: r
  desc: d
  condition: evt.type = open
  output: o
  priority: INFO
- rule: r
  condition: and proc.name = cat
  priority: WARNING
  override:
    condition: append
    priority: append
"""


def test_text_report_layout() -> None:
    _, res = load(TEXT, name="rules.yaml")
    assert res.as_text() == (
        "rules.yaml: Invalid\n"
        "1 Errors:\n"
        "In rules content: (rules.yaml:0:0)\n"
        "    rule 'r': (rules.yaml:5:2)\n"
        "    overrides: (rules.yaml:5:2)\n"
        "    overrides 'priority': (rules.yaml:10:4)\n"
        "------\n"
        "    priority: append\n"
        "    ^\n"
        "------\n"
        "LOAD_ERR_YAML_VALIDATE (Error validating internal structure of YAML file): "
        "Key 'priority' cannot be appended to, use 'replace' instead\n"
    )
    assert res.files[0].as_summary() == (
        "rules.yaml: Invalid\n 1 errors: [LOAD_ERR_YAML_VALIDATE (Error validating internal structure of YAML file)]")


def test_json_report_shape() -> None:
    _, res = load(TEXT + "- foo: bar\n", name="rules.yaml")
    doc = res.as_json()
    [file] = doc["falco_load_results"]
    assert file["name"] == "rules.yaml" and file["successful"] is False
    err = file["errors"][0]
    assert set(err) == {"code", "codedesc", "context", "message"}
    assert err["code"] == "LOAD_ERR_YAML_VALIDATE"
    assert err["context"]["locations"][1] == {
        "item_name": "r", "item_type": "rule",
        "position": {"column": 2, "line": 5, "name": "rules.yaml", "offset": len(TEXT.split("- rule: r\n  condition")[0]) + 2},
    }
    assert err["context"]["snippet"] == "    priority: append\n    ^\n"


def test_ok_with_warnings_status_and_warning_block() -> None:
    _, res = load("- list: l\n  items: [a]\n", name="w.yaml")
    text = res.as_text()
    assert text.startswith("w.yaml: Ok, with warnings\n1 Warnings:\nIn rules content: (w.yaml:0:0)\n    list 'l': (w.yaml:0:2)\n")
    assert text.endswith("LOAD_UNUSED_LIST (Unused list): List not referred to by any other rule/macro\n")
    warning = res.as_json()["falco_load_results"][0]["warnings"][0]
    assert warning["codedesc"] == WarningCode.LOAD_UNUSED_LIST.description


def test_codes_in_falco_order() -> None:
    assert [c.name for c in ErrorCode] == ["LOAD_ERR_FILE_READ", "LOAD_ERR_YAML_PARSE", "LOAD_ERR_YAML_VALIDATE",
                                           "LOAD_ERR_COMPILE_CONDITION", "LOAD_ERR_COMPILE_OUTPUT", "LOAD_ERR_VALIDATE",
                                           "LOAD_ERR_EXTENSION"]
    assert [c.name for c in WarningCode][-1] == "LOAD_UNKNOWN_KEY" and len(WarningCode) == 15


def test_snippet_of_long_line_is_clipped() -> None:
    content = "x" * 300 + "\n"
    ctx = Context.root("f").child("rule", "r", 0, 150, 150)
    res = FileResult("f", content)
    res.add_error(ErrorCode.LOAD_ERR_VALIDATE, "m", ctx)
    snippet = ctx.snippet({"f": content})
    line, marker = snippet.splitlines()
    assert line.startswith("...") and line.endswith("...") and len(line) == 161
    assert marker == " " * 80 + "^"
