"""The connector framework on the real broker: routing, enrichment, dedup, aggregation, dead letters, metrics."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from aiohttp import web
from outputs_helpers import make_alert, produce, read_topic, running_outputs, wait_for
from prometheus_client import REGISTRY
from servers import HttpServer, Recorded

from settings.config import Config


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_routing_enrichment_and_dedup(kafka_config: Config, tmp_path: Path) -> None:
    shadow = make_alert(1, priority="Warning", **{"k8s.ns.name": "payments"})
    noisy = make_alert(2, rule="Noisy rule", priority="Notice")
    shell = make_alert(3, rule="Terminal shell in container", priority="Critical")
    shell["tags"] = ["shell", "container"]
    debug = make_alert(4, rule="Debug rule", priority="Debug")
    # `shadow` twice (a replayed record): delivered once per output.
    produce(kafka_config, [shadow, noisy, shell, debug, shadow])
    security, everything = tmp_path / "security.jsonl", tmp_path / "all.jsonl"
    spec = {
        "customfields": {"cluster": "prod-1"},
        "outputs": [
            {"name": "security", "type": "file", "path": str(security), "minimum_priority": "warning",
             "rules": {"exclude": ["Noisy*"]}, "tags": {"exclude": ["shell"]},
             "templatedfields": {"team": '{{ or (index . "k8s.ns.name") "unowned" }}'}},
            {"name": "everything", "type": "file", "path": str(everything), "customtags": ["peregrine"]},
        ],
    }
    with running_outputs(kafka_config, spec):
        wait_for(lambda: len(_lines(everything)) == 4 and len(_lines(security)) == 1, what="both files")
    (got,) = _lines(security)
    assert got["uuid"] == shadow["uuid"]
    assert got["output_fields"]["cluster"] == "prod-1" and got["output_fields"]["team"] == "payments"
    rest = _lines(everything)
    assert [a["uuid"] for a in rest] == [a["uuid"] for a in (shadow, noisy, shell, debug)]
    assert all(a["tags"][-1] == "peregrine" and a["output_fields"]["cluster"] == "prod-1" for a in rest)
    assert _metric("peregrine_outputs_deduplicated_total", output="everything") == 1
    assert _metric("peregrine_outputs_filtered_total", output="security") == 3
    assert _metric("falcosecurity_falcosidekick_outputs_total", destination="everything", status="ok") == 4


def test_identical_alerts_aggregate_into_one_with_count(kafka_config: Config, tmp_path: Path) -> None:
    same = [make_alert(10 + i, rule="Shell spawned") for i in range(5)]  # same rule, host, proc.name
    other_host = make_alert(20, rule="Shell spawned", hostname="other-host")
    produce(kafka_config, [*same, other_host])
    out = tmp_path / "agg.jsonl"
    spec = {"outputs": [{"name": "agg", "type": "file", "path": str(out),
                         "aggregate": {"window": "3s", "fields": ["proc.name"]}}]}
    with running_outputs(kafka_config, spec):
        wait_for(lambda: len(_lines(out)) == 3, what="first alerts and the aggregate")
    *firsts, summary = _lines(out)  # the two first alerts (partition order varies), then the aggregate
    assert sorted(a["uuid"] for a in firsts) == sorted([same[0]["uuid"], other_host["uuid"]])
    assert summary["count"] == 4 and summary["output_fields"]["peregrine.count"] == 4
    assert summary["aggregation"]["first_uuid"] == same[1]["uuid"]
    assert summary["aggregation"]["last_uuid"] == same[4]["uuid"]
    assert summary["aggregation"]["first_time"] == same[1]["time"]


def test_undecodable_and_refused_alerts_go_to_the_dead_letter_topic(kafka_config: Config) -> None:
    async def refuse(request: web.Request, rec: Recorded) -> web.Response:
        return web.Response(status=400, text="bad field")

    alert = make_alert(30)
    produce(kafka_config, [alert], raw=[b"\x00not json"])
    with HttpServer(refuse) as server, running_outputs(kafka_config, {"outputs": [
            {"name": "hook", "type": "webhook", "address": server.url + "/in"}]}):
        letters = read_topic(kafka_config, f"{kafka_config.kafka.topics.alerts}.dlq.hook", 2)
    by_reason = {body["reason"]: (body, headers) for body, headers in letters}
    refused, headers = by_reason["rejected"]
    assert refused["alert"] == alert and "HTTP 400: bad field" in refused["error"]
    assert headers["peregrine.reason"] == b"rejected" and refused["output"] == "hook"
    assert refused["source"][0]["topic"] == kafka_config.kafka.topics.alerts
    junk, _ = by_reason["undecodable"]
    assert junk["raw_base64"] == "AG5vdCBqc29u" and f"{kafka_config.kafka.topics.alerts}:" in junk["error"]


def test_kafka_forward(kafka_config: Config) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    target = f"forwarded-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_config.kafka.bootstrap_servers})
    admin.create_topics([NewTopic(target, 1, 1)])[target].result(30)
    alerts = [make_alert(40 + i) for i in range(3)]
    produce(kafka_config, alerts)
    with running_outputs(kafka_config, {"outputs": [{"name": "fwd", "type": "kafka", "topic": target,
                                                     "bootstrap_servers": kafka_config.kafka.bootstrap_servers}]}):
        got = read_topic(kafka_config, target, 3)
    assert sorted((body for body, _ in got), key=lambda a: a["uuid"]) == sorted(alerts, key=lambda a: a["uuid"])


def test_concurrent_webhook_retries_only_the_alerts_that_failed(kafka_config: Config) -> None:
    from collections import Counter

    alerts = [make_alert(50 + i) for i in range(10)]
    flaky_once = {a["uuid"] for a in alerts[::2]}
    attempts: Counter[str] = Counter()
    accepted: Counter[str] = Counter()

    async def half_fail(request: web.Request, rec: Recorded) -> web.Response:
        uid = json.loads(rec.body)["uuid"]
        attempts[uid] += 1
        if uid in flaky_once and attempts[uid] == 1:
            return web.Response(status=502)
        accepted[uid] += 1
        return web.Response(status=200)

    produce(kafka_config, alerts)
    with HttpServer(half_fail) as server, running_outputs(kafka_config, {"outputs": [
            {"name": "parallel", "type": "webhook", "address": server.url + "/p", "maxconcurrentrequests": 5,
             "retry": {"initial_backoff": "100ms"}}]}):
        wait_for(lambda: len(accepted) == 10, what="every alert accepted")
    assert max(accepted.values()) == 1
    assert sum(attempts.values()) == 15  # 10 first tries + 5 retries of the alerts that failed, no more
