"""`peregrine rules publish`: a file is validated as a worker would load it; a refused file never reaches the topic."""

from __future__ import annotations

from pathlib import Path

import pytest

from peregrine_cli.main import main
from settings.config import Config
from tests.pipeline.helpers import read_topic, write_config

pytestmark = pytest.mark.kafka

GOOD = """
- rule: Passwd file opened
  desc: x
  condition: opened_for_reading and fd.name = /etc/passwd and not proc.name in (unix_shells)
  output: passwd read (proc.name=%proc.name)
  priority: NOTICE
"""
BAD = """
- rule: Broken
  desc: x
  condition: evt.type = openat and no.such.field = 1
  output: never
  priority: WARNING
"""


def test_publish_refuses_an_invalid_file_with_falcos_report_and_publishes_a_valid_one(
        kafka_config: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = write_config(kafka_config, tmp_path / "peregrine.yaml")
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text(BAD)
    good.write_text(GOOD)  # uses a macro and a list of the workers' default rules: validated against them

    assert main(["-c", str(conf), "rules", "publish", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "no.such.field" in err and "bad.yaml" in err and "nothing published" in err

    assert main(["-c", str(conf), "rules", "publish", str(good)]) == 0
    assert "published good.yaml" in capsys.readouterr().out
    msgs = read_topic(kafka_config, kafka_config.kafka.topics.rules, lambda m: len(m) >= 1, timeout=20)
    assert [(m.key(), m.value()) for m in msgs] == [(b"good.yaml", GOOD.encode())]
