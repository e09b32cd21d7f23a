"""Falco's JSON alert shape and text line, plus Peregrine's deterministic alert id."""

from __future__ import annotations

import orjson

from processor.engine.alert import alert_id, iso_time
from processor.engine.engine import EngineConfig, RulesEngine
from processor.engine.formatter import AppendOutput, OutputConfig

RULES = """
- rule: open_from_cat
  desc: An open was seen
  condition: evt.type = open and proc.name = cat
  output: An open was seen (command=%proc.cmdline pid=%proc.pid)
  priority: WARNING
  tags: [testing, filesystem, process]
"""
EVENT = {"evt.type": "open", "proc.name": "cat", "proc.cmdline": "cat /dev/null", "proc.pid": 7,
         "container.id": "host"}
T = 1470327477881781397


def _engine(**output: object) -> RulesEngine:
    engine = RulesEngine(EngineConfig(output=OutputConfig(**output)))  # type: ignore[arg-type]
    assert engine.load_rules_content([("r.yaml", RULES)]).successful
    return engine


def test_json_alert_shape() -> None:
    engine = _engine(time_format_iso_8601=True, append_output=[])
    [match] = engine.process(EVENT)
    alert = engine.format_alert(match, EVENT, hostname="test-falco-hostname", seq=12, time_ns=T)
    assert list(alert) == sorted(alert)
    assert alert == {
        "hostname": "test-falco-hostname",
        "output": "2016-08-04T16:17:57.881781397+0000: Warning An open was seen (command=cat /dev/null pid=7)",
        "output_fields": {"evt.time.iso8601": T, "proc.cmdline": "cat /dev/null", "proc.pid": 7},
        "priority": "Warning",
        "rule": "open_from_cat",
        "source": "syscall",
        "tags": ["filesystem", "process", "testing"],
        "time": "2016-08-04T16:17:57.881781397Z",
        "uuid": alert_id("test-falco-hostname", 12, "open_from_cat"),
    }
    assert orjson.loads(orjson.dumps(alert, option=orjson.OPT_SORT_KEYS)) == alert


def test_default_suggested_output_and_extra_fields() -> None:
    extra = AppendOutput.from_config({"extra_output": "seq=%evt.num", "extra_fields": [{"image": "%container.image"}]})
    engine = _engine(append_output=[AppendOutput(suggested_output=True), extra])
    [match] = engine.process(EVENT)
    alert = engine.format_alert(match, EVENT, hostname="h", seq=1, time_ns=T)
    assert alert["output"].endswith(
        "An open was seen (command=cat /dev/null pid=7) container_id=host container_name=<NA> seq=<NA>")
    assert alert["output_fields"]["container.id"] == "host"
    assert alert["output_fields"]["container.name"] is None
    assert alert["output_fields"]["image"] is None
    assert "evt.time" in alert["output_fields"]


def test_text_line_and_escaping() -> None:
    engine = _engine(time_format_iso_8601=True, append_output=[])
    event = dict(EVENT, **{"proc.cmdline": "cat\n/dev/null"})
    [match] = engine.process(event)
    line = engine.alert_text(match, event, T)
    assert line == "2016-08-04T16:17:57.881781397+0000: Warning An open was seen (command=cat\\n/dev/null pid=7)"


def test_alert_id_is_deterministic_and_distinct() -> None:
    assert alert_id("h", 1, "r") == alert_id("h", 1, "r")
    assert len({alert_id("h", 1, "r"), alert_id("h", 2, "r"), alert_id("g", 1, "r"), alert_id("h", 1, "s")}) == 4


def test_iso_time() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00.000000000Z"
    assert iso_time(T) == "2016-08-04T16:17:57.881781397Z"


def test_optional_properties() -> None:
    engine = _engine(include_output=False, include_tags=False, include_output_fields=False, include_message=True,
                     append_output=[])
    [match] = engine.process(EVENT)
    alert = engine.format_alert(match, EVENT, hostname="h", seq=1, time_ns=T)
    assert set(alert) == {"hostname", "message", "priority", "rule", "source", "time", "uuid"}
    assert alert["message"] == "An open was seen (command=cat /dev/null pid=7)"
