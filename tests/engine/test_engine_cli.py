"""`peregrine rules validate` and `peregrine rules eval` as rule authors and CI pipelines use them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from peregrine_cli.main import main

GOOD = """- rule: cat shadow
  desc: d
  condition: evt.type = openat and proc.name = cat and fd.name = /etc/shadow
  output: cat read %fd.name (pid=%proc.pid)
  priority: warning
  tags: [filesystem, b]
- rule: any open
  desc: d
  condition: evt.type = openat
  output: open %fd.name
  priority: debug
"""


def test_validate_ok_prints_status_and_counts(falco_rules: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", str(falco_rules / "falco_rules.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("falco_rules.yaml: Ok")
    assert "Loaded 25 rules, 87 macros, 49 lists" in out
    assert any("'container'" in line and "built-in" in line for line in out)


def test_validate_warnings_go_to_stderr_and_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "w.yaml"
    f.write_text(GOOD + "- list: unused\n  items: [a]\n")
    assert main(["rules", "validate", str(f)]) == 0
    cap = capsys.readouterr()
    assert cap.out.startswith(f"{f}: Ok, with warnings\n")
    assert "LOAD_UNUSED_LIST (Unused list)" in cap.err


def test_validate_invalid_exit_1_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(GOOD.replace("priority: debug", "priority: debug\n  condition2: x").replace("fd.name = /etc/shadow",
                                                                                          "fd.name = "))
    assert main(["rules", "validate", str(f)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{f}: Invalid\n1 Errors:\nIn rules content: ({f}:0:0)\n    rule 'cat shadow': ({f}:0:2)\n")
    assert "LOAD_ERR_COMPILE_CONDITION (Error compiling condition):" in out
    assert main(["rules", "validate", "--json", str(f)]) == 1
    doc = orjson.loads(capsys.readouterr().out)
    [res] = doc["falco_load_results"]
    assert res["successful"] is False and res["errors"][0]["code"] == "LOAD_ERR_COMPILE_CONDITION"


def test_eval_prints_one_sorted_json_alert_per_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(GOOD)
    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"evt.type": "openat", "proc.name": "cat", "fd.name": "/etc/shadow", "proc.pid": 9, "evt.rawtime": 5}\n'
        "\n"
        '{"evt.type": "execve", "proc.name": "cat"}\n'
        '{"evt.type": "openat", "proc.name": "vi", "fd.name": "/tmp/x", "evt.num": 77, "evt.rawtime": 6}\n')
    assert main(["rules", "eval", "--rules", str(rules), "--events", str(events), "--hostname", "h"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    first, second = (orjson.loads(line) for line in lines)
    assert lines[0] == orjson.dumps(first, option=orjson.OPT_SORT_KEYS).decode()
    assert first["rule"] == "cat shadow" and first["priority"] == "Warning" and first["tags"] == ["b", "filesystem"]
    assert first["output_fields"]["proc.pid"] == 9 and first["time"] == "1970-01-01T00:00:00.000000005Z"
    assert first["output"].endswith("Warning cat read /etc/shadow (pid=9) container_id=<NA> container_name=<NA>")
    assert second["rule"] == "any open"
    from processor.engine.alert import alert_id
    assert second["uuid"] == alert_id("h", 77, "any open")

    assert main(["rules", "eval", "--rule-matching", "all", "--rules", str(rules), "--events", str(events),
                 "--hostname", "h"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_eval_reports_bad_lines_and_bad_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "r.yaml"
    rules.write_text(GOOD)
    events = tmp_path / "e.jsonl"
    events.write_text("not json\n[1]\n")
    assert main(["rules", "eval", "--rules", str(rules), "--events", str(events)]) == 1
    err = capsys.readouterr().err
    assert f"{events}:1: not a JSON object" in err and f"{events}:2:" in err
    rules.write_text("- list: l\n  items: a\n")
    assert main(["rules", "eval", "--rules", str(rules), "--events", str(events)]) == 1
    assert "LOAD_ERR_YAML_VALIDATE" in capsys.readouterr().err


def test_fields_lists_falcos_classes_and_marks_what_is_never_filled(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "fields"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "Field Class:                  process" in lines and "Field Class:                  container" in lines
    by_name = {line.split()[0]: line for line in lines if line[:1].isalpha() and not line.startswith(("Field", "Event"))}
    assert by_name["proc.name"].startswith("proc.name                     process name")
    assert "always <NA>" in by_name["proc.vmsize"]  # the sensor does not send memory counters
    assert "always <NA>" not in by_name["fd.sip.name"] and "always <NA>" not in by_name["proc.vpgid.name"]
    assert "k8s.pod.label[...]" in by_name


def test_fields_as_json_and_for_another_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "fields", "--json"]) == 0
    rows = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    proc_name = next(r for r in rows if r["name"] == "proc.name")
    assert (proc_name["class"], proc_name["type"], proc_name["filled"]) == ("process", "charbuf", True)
    assert main(["rules", "fields", "--source", "k8s_audit"]) == 0
    assert "ka.verb" in capsys.readouterr().out
    assert main(["rules", "fields", "--source", "nope"]) == 2
    assert "unknown event source 'nope'" in capsys.readouterr().err
