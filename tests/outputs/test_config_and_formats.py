"""outputs.yaml checking, Falcosidekick enrichment, file rotation, /metrics, and the escaping helpers."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from outputs_helpers import HOSTILE, build_output, make_alert, produce, running_outputs, send, wait_for
from servers import free_port

from outputs import escaping
from outputs.config import parse_outputs
from outputs.enrich import Enricher
from outputs.falco_format import text_line
from outputs.filters import AlertFilter
from outputs.registry import create
from settings.config import Config, ConfigError


@pytest.mark.parametrize(("entry", "message"), [
    ({"type": "slak"}, "unknown output type 'slak'"),
    ({"type": "slack"}, "webhookurl: the Slack incoming-webhook URL is required"),
    ({"type": "slack", "webhookurl": "https://x", "webhook_url": "y"}, "unknown key 'webhook_url'"),
    ({"type": "file", "path": "/tmp/x", "minimum_priority": "severe"}, "unknown priority 'severe'"),
    ({"type": "file", "path": "/tmp/x", "retry": {"give_up_after": "ten minutes"}}, "expected a duration"),
    ({"type": "syslog", "protocol": "relp"}, "protocol: one of udp, tcp, tls"),
    ({"type": "file", "path": "/tmp/x", "templatedfields": {"t": "{{ printf . }}"}}, "unsupported template function"),
])
def test_configuration_errors_name_the_place(entry: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        spec = parse_outputs({"outputs": [entry]}, "outputs.yaml")
        for out in spec.outputs:
            create(out)
            Enricher.from_spec(out)
    assert message in str(info.value) and "outputs.yaml.outputs[0]" in str(info.value)


def test_durations_defaults_and_duplicate_names() -> None:
    spec = parse_outputs({"defaults": {"minimum_priority": "notice", "retry": {"give_up_after": "15m"}},
                          "outputs": [{"type": "stdout"}, {"type": "stdout", "name": "second", "dedup_window": "90s"}]},
                         "o.yaml")
    assert [o.name for o in spec.outputs] == ["stdout", "second"]
    assert spec.outputs[0].retry.give_up_after == 900 and spec.outputs[1].dedup_window == 90
    assert spec.outputs[0].consumer_group() == "peregrine-outputs-stdout"
    assert spec.outputs[0].dlq_topic("peregrine.alerts") == "peregrine.alerts.dlq.stdout"
    with pytest.raises(ConfigError, match="duplicate output name 'stdout'"):
        parse_outputs({"outputs": [{"type": "stdout"}, {"type": "stdout"}]}, "o.yaml")


def test_priority_and_routing_follow_falcosidekick() -> None:
    spec = parse_outputs({"outputs": [{"type": "stdout", "minimum_priority": "error",
                                       "tags": {"include": ["mitre_*"]}, "sources": {"exclude": ["k8s_audit"]}}]},
                         "o.yaml").outputs[0]
    flt = AlertFilter(spec)
    assert flt.admits(make_alert(priority="Critical"))
    assert not flt.admits(make_alert(priority="Warning"))
    assert flt.admits(make_alert(priority="Debug", rule="Test rule"))  # Falcosidekick forwards the test rule
    untagged = make_alert(priority="Emergency")
    untagged["tags"] = []
    assert not flt.admits(untagged)
    audit = make_alert(priority="Critical")
    audit["source"] = "k8s_audit"
    assert not flt.admits(audit)


def test_customfields_from_env_and_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLUSTER_NAME", "aks-west")
    spec = parse_outputs({"customfields": {"cluster": "%CLUSTER_NAME", "env": "prod"}, "outputs": [{
        "type": "stdout", "templatedfields": {
            "owner": '{{ or (index . "k8s.ns.labels.owner") "security-team" }}',
            "where": 'ns={{ index . "k8s.ns.name" }} proc={{ .user }}'}}]}, "o.yaml").outputs[0]
    alert = make_alert(**{"k8s.ns.name": "payments", "user": "x"})
    out = Enricher.from_spec(spec).apply(alert)["output_fields"]
    assert (out["cluster"], out["env"], out["owner"]) == ("aks-west", "prod", "security-team")
    assert out["where"] == "ns=payments proc=x"


def test_file_rotation_keeps_every_alert(tmp_path: Path) -> None:
    path = tmp_path / "alerts.log"
    alerts = [make_alert(i) for i in range(30)]
    output = build_output("file", path=str(path), format="text", max_bytes=2000, backups=20)
    for alert in alerts:
        send(output, [alert])
    files = sorted(tmp_path.iterdir(), key=lambda p: -int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0)
    assert len(files) >= 3 and all(f.stat().st_size <= 2000 for f in files)
    lines = [line for f in files for line in f.read_text().splitlines()]
    assert lines == [a["output"] for a in alerts]


def test_text_line_stays_one_line_and_says_count() -> None:
    alert = make_alert(1, **HOSTILE)
    alert["output"] += " " + HOSTILE["fd.name"]
    alert["count"] = 7
    line = text_line(alert)
    assert "\n" not in line and "\r" not in line and line.endswith("(repeated 7 times)")


def test_escaping_helpers_against_hostile_values() -> None:
    value = HOSTILE["container.name"]
    assert escaping.html(value) == ("&lt;!channel&gt; &lt;http://evil.example|click&gt; &amp; &lt;script&gt;"
                                    "alert(1)&lt;/script&gt; *bold* [x](http://e)")
    assert "<" not in escaping.slack_mrkdwn(value) and ">" not in escaping.slack_mrkdwn(value)
    assert escaping.slack_mrkdwn("a & <b>") == "a &amp; &lt;b&gt;"  # & first: no double-decoding tricks
    assert escaping.cef_value("a=b\\c\nd") == "a\\=b\\\\c\\nd"
    assert escaping.cef_header("x|y\\z\n") == "x\\|y\\\\z "
    assert escaping.sd_param_value('a"b]c\\d') == 'a\\"b\\]c\\\\d'
    assert json.loads(json.dumps(HOSTILE)) == HOSTILE


def test_metrics_endpoint_uses_falcosidekick_names(kafka_config: Config, tmp_path: Path) -> None:
    produce(kafka_config, [make_alert(1), make_alert(2)])
    port = free_port()
    out = tmp_path / "m.jsonl"
    spec = {"metrics": {"address": "127.0.0.1", "port": port},
            "outputs": [{"name": "metered", "type": "file", "path": str(out)}]}
    with running_outputs(kafka_config, spec):
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 2, what="file")
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'falcosecurity_falcosidekick_outputs_total{destination="metered",status="ok"} 2.0' in text
    assert 'peregrine_outputs_sent_total{output="metered",type="file"} 2.0' in text
    for name in ("peregrine_outputs_failed_total", "peregrine_outputs_retried_total",
                 "peregrine_outputs_dead_lettered_total", "peregrine_outputs_paused"):
        assert f"# TYPE {name.removesuffix('_total')}" in text


def test_example_configuration_is_valid() -> None:
    from outputs.config import load_outputs

    spec = load_outputs(Path(__file__).resolve().parents[2] / "outputs" / "outputs.example.yaml")
    assert {o.type for o in spec.outputs} >= {"stdout", "file", "syslog", "slack", "teams", "webhook",
                                              "elasticsearch", "splunk", "sentinel", "loki", "kafka"}
    for out in spec.outputs:
        create(out)
