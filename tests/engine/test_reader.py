"""Read stage: YAML structure errors, positions, unknown items and keys, first error stops the file."""

from __future__ import annotations

from tests.engine.conftest import codes, load, messages

RULE = """- rule: r
  desc: d
  condition: evt.type = open
  output: o
  priority: INFO
"""


def test_bad_yaml_is_yaml_parse_error_with_position() -> None:
    _, res = load("- rule: r\n  desc: [unclosed\n  priority: INFO\n", name="bad.yaml")
    assert not res.successful
    err = res.errors[0]
    assert err.code.name == "LOAD_ERR_YAML_PARSE"
    loc = err.context.locations[-1]
    assert loc.name == "bad.yaml" and loc.line >= 1
    assert f"line {loc.line + 1}" in err.message
    assert f"(bad.yaml:{loc.line}:{loc.column})" in res.as_text()


def test_structure_errors() -> None:
    cases = {
        "rule: r\n": "Rules content is not yaml array of objects",
        "just text\n": "Rules content is not yaml",
        "- [a, b]\n": "Unexpected element type. Each element should be a yaml associative array.",
        "- rule: r\n  desc: d\n": "Item has no mapping for key 'condition'",
        "- list: l\n": "Item has no mapping for key 'items'",
        "- list: l\n  items: a\n": "Value is not a sequence",
        "- list: l\n  items: [[a]]\n": "sequence value is not scalar",
        "- macro: m\n  condition:\n": "Mapping for key 'condition' is empty",
        "- macro: m\n  condition: [a]\n": "Value is not a scalar value",
        "- macro: m\n  condition: ''\n": "Value must be non-empty",
        RULE + "  enabled: maybe\n": "Can't decode YAML scalar value",
        RULE + "  exceptions: {a: b}\n": "Rule exceptions must be a sequence",
        RULE + "  exceptions: [a]\n": "Rule exception must be a mapping",
        RULE + "  exceptions:\n    - name: e\n      fields: [proc.name]\n      values: a\n":
            "Rule exception values must be a sequence",
    }
    for text, message in cases.items():
        _, res = load(text)
        assert messages(res) == [message], text
        assert res.errors[0].code.name == "LOAD_ERR_YAML_VALIDATE", text


def test_positions_of_items_and_values() -> None:
    _, res = load("# comment\n" + RULE + "- list: l\n  items: [[nested]]\n")
    locs = res.errors[0].context.locations
    assert [(loc.item_type, loc.item_name, loc.line, loc.column) for loc in locs] == [
        ("rules content", "", 0, 0),
        ("list", "l", 6, 2),
        ("value for", "items", 7, 9),
        ("list item", "", 7, 10),
    ]
    assert locs[-1].offset == len("# comment\n" + RULE + "- list: l\n  items: [")


def test_unknown_top_level_item_and_unknown_keys_are_warnings() -> None:
    engine, res = load("- something: else\n" + RULE + "  descr: typo\n")
    assert res.successful
    assert codes(res) == ["LOAD_UNKNOWN_ITEM", "LOAD_UNKNOWN_KEY"]
    assert messages(res, "warnings") == ["Unknown top level item", "Unknown key 'descr'. The key will be ignored."]
    key_loc = res.warnings[1].context.locations[-1]
    assert (key_loc.item_type, key_loc.item_name, key_loc.line, key_loc.column) == ("value for", "descr", 6, 2)
    assert engine.rule_names() == ["r"]


def test_item_kind_is_first_matching_key() -> None:
    # an item with both `list` and `macro` keys is a list (Falco checks list before macro)
    engine, res = load("- macro: m\n  list: l\n  items: [a]\n  condition: x\n" + RULE)
    assert res.successful
    assert codes(res) == ["LOAD_UNKNOWN_KEY", "LOAD_UNKNOWN_KEY", "LOAD_UNUSED_LIST"]


def test_first_error_stops_the_file_and_later_items_are_not_read() -> None:
    _, res = load(RULE + "- list: l\n  items: a\n- list: m\n  items: b\n- whatever: 1\n")
    assert len(res.errors) == 1
    assert "LOAD_UNKNOWN_ITEM" not in codes(res)


def test_null_documents_and_items_are_skipped() -> None:
    engine, res = load("---\n---\n-\n" + RULE)
    assert res.successful and engine.rule_names() == ["r"]


def test_invalid_names_warn() -> None:
    _, res = load("- macro: bad-name\n  condition: evt.type = open\n- list: 'bad list'\n  items: [a]\n")
    assert codes(res)[:2] == ["LOAD_INVALID_MACRO_NAME", "LOAD_INVALID_LIST_NAME"]


def test_multiple_files_one_collector_and_first_invalid_file_stops(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from processor.engine.engine import RulesEngine

    (tmp_path / "a.yaml").write_text("- macro: m\n  condition: evt.type = open\n")
    (tmp_path / "b.yaml").write_text(RULE.replace("evt.type = open", "m"))
    (tmp_path / "c.yaml").write_text("- list: l\n  items: a\n")
    (tmp_path / "d.yaml").write_text(RULE.replace("- rule: r", "- rule: never"))
    engine = RulesEngine()
    res = engine.load_rules_files([tmp_path / "a.yaml", tmp_path / "b.yaml"])
    assert res.successful and engine.rule_names() == ["r"]
    # a failed load keeps the previous rules active
    res = engine.load_rules_files([tmp_path])
    assert [f.name.rsplit("/", 1)[-1] for f in res.files] == ["a.yaml", "b.yaml", "c.yaml"]
    assert not res.successful
    assert engine.rule_names() == ["r"]
    res = engine.load_rules_files([tmp_path / "missing.yaml"])
    assert res.errors[0].code.name == "LOAD_ERR_FILE_READ"
    assert engine.rule_names() == ["r"]
