"""HTTP outputs against a real aiohttp server: the exact request each documented API expects, and injections."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from outputs_helpers import HOSTILE, build_output, make_alert, send
from servers import HttpServer, Recorded, make_pki

from outputs.model import DeliveryError


def _json(rec: Recorded) -> Any:
    return json.loads(rec.body)


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_webhook_sends_alert_json_with_headers(method: str) -> None:
    alert = make_alert(1, **HOSTILE)
    with HttpServer() as server:
        send(build_output("webhook", address=server.url + "/hook?x=1", method=method,
                          customheaders={"X-Token": "s3cret"}), [alert])
    (rec,) = server.requests
    assert (rec.method, rec.path, rec.query) == (method, "/hook", {"x": "1"})
    assert rec.headers["Content-Type"] == "application/json" and rec.headers["X-Token"] == "s3cret"
    assert _json(rec) == alert  # JSON escaping: hostile quotes, backslashes and newlines round-trip exactly


def test_webhook_mutual_tls(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.verify_mode = ssl.CERT_REQUIRED
    with HttpServer(ssl_context=ctx) as server:
        send(build_output("webhook", address=server.url + "/", tls={
            "ca_file": str(pki.ca), "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}),
            [make_alert(2)])
        with pytest.raises(DeliveryError):  # no client certificate: the server refuses the handshake
            send(build_output("webhook", address=server.url + "/", tls={"ca_file": str(pki.ca)}), [make_alert(3)])
        with pytest.raises(DeliveryError):  # server certificate not trusted without our CA
            send(build_output("webhook", address=server.url + "/", tls={
                "cert_file": str(pki.client_cert), "key_file": str(pki.client_key)}), [make_alert(4)])
    (rec,) = server.requests
    assert rec.peer_cert is not None
    assert dict(x[0] for x in rec.peer_cert["subject"])["commonName"] == "client.peregrine.test"


def test_status_codes_map_to_retry_or_dead_letter() -> None:
    async def answer(request: web.Request, rec: Recorded) -> web.Response:
        return web.Response(status=int(request.query["status"]), text="nope")

    with HttpServer(answer) as server:
        for status, retryable in ((500, True), (503, True), (429, True), (400, False), (401, False), (404, False)):
            with pytest.raises(DeliveryError) as info:
                send(build_output("webhook", address=f"{server.url}/?status={status}"), [make_alert(5)])
            assert info.value.retryable is retryable, status
            assert f"HTTP {status}" in info.value.reason


def test_slack_message_readable_and_unbreakable() -> None:
    alert = make_alert(6, priority="Critical", **HOSTILE)
    with HttpServer() as server:
        send(build_output("slack", webhookurl=server.url + "/services/T0/B0/XYZ", channel="#sec"), [alert])
    (rec,) = server.requests
    assert rec.path == "/services/T0/B0/XYZ" and rec.headers["Content-Type"] == "application/json"
    body = _json(rec)
    assert body["channel"] == "#sec" and body["username"] == "Peregrine"
    (att,) = body["attachments"]
    assert att["color"] == "#ff9000"  # Falcosidekick's colour for Critical
    fields = {f["title"]: f["value"] for f in att["fields"]}
    assert fields["rule"] == alert["rule"] and fields["priority"] == "Critical" and fields["hostname"] == "test-host"
    assert fields["proc.name"] == "`cat`"
    # Slack treats <...> as commands/links: none may come from alert data, and & must be escaped first.
    text = json.dumps(body)
    assert "<!channel>" not in text and "<http://evil.example|click>" not in text and "<script>" not in text
    assert "&lt;!channel&gt;" in fields["container.name"] and "&amp;" in fields["container.name"]
    assert "`" not in fields["proc.cmdline"][1:-1]


def test_teams_message_card_escapes_markdown_and_html() -> None:
    alert = make_alert(7, priority="Error", **HOSTILE)
    with HttpServer() as server:
        send(build_output("teams", webhookurl=server.url + "/webhookb2/abc"), [alert])
    (rec,) = server.requests
    card = _json(rec)
    assert card["@type"] == "MessageCard" and card["themeColor"] == "ffc700"
    (section,) = card["sections"]
    facts = {f["name"]: f["value"] for f in section["facts"]}
    assert facts["rule"] == alert["rule"] and facts["priority"] == "Error"
    assert "<script>" not in json.dumps(card) and "&lt;script&gt;" in facts["container.name"]
    assert "[x](http://e)" not in facts["container.name"] and "\\[x\\](http://e)" in facts["container.name"]
    assert "\\*bold\\*" in facts["container.name"]


def test_elasticsearch_bulk_daily_index_and_item_outcomes() -> None:
    alerts = [make_alert(8), make_alert(9, **HOSTILE), make_alert(10)]

    async def bulk(request: web.Request, rec: Recorded) -> web.Response:
        items = [{"create": {"status": 201}}, {"create": {"status": 400, "error": {"type": "mapper_parsing"}}},
                 {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}}]
        return web.json_response({"took": 1, "errors": True, "items": items})

    with HttpServer(bulk) as server:
        with pytest.raises(DeliveryError) as info:
            send(build_output("elasticsearch", hostport=server.url, username="elastic", password="pw",
                              pipeline="falco"), alerts)
    assert info.value.retryable is False and list((info.value.rejected or {}).keys()) == [1]
    (rec,) = server.requests
    assert (rec.method, rec.path, rec.query) == ("POST", "/_bulk", {"pipeline": "falco"})
    assert rec.headers["Content-Type"] == "application/x-ndjson"
    assert rec.headers["Authorization"] == "Basic " + base64.b64encode(b"elastic:pw").decode()
    lines = [json.loads(x) for x in rec.body.decode().splitlines()]
    assert len(lines) == 6 and rec.body.endswith(b"\n")
    for action, doc, alert in zip(lines[::2], lines[1::2], alerts, strict=True):
        assert action == {"create": {"_index": "falco-2026.11.28", "_id": alert["uuid"]}}
        assert doc.pop("@timestamp").startswith("2026-11-28T21:00:13.") and doc == alert


def test_elasticsearch_retries_on_item_429() -> None:
    async def busy(request: web.Request, rec: Recorded) -> web.Response:
        return web.json_response({"errors": True, "items": [{"create": {"status": 429, "error": {}}}]})

    with HttpServer(busy) as server, pytest.raises(DeliveryError) as info:
        send(build_output("elasticsearch", hostport=server.url, apikey="k", suffix="monthly"), [make_alert(11)])
    assert info.value.retryable is True
    assert server.requests[0].headers["Authorization"] == "ApiKey k"
    assert json.loads(server.requests[0].body.splitlines()[0])["create"]["_index"] == "falco-2026.11"


def test_splunk_hec_events() -> None:
    alerts = [make_alert(12), make_alert(13)]

    async def hec(request: web.Request, rec: Recorded) -> web.Response:
        return web.json_response({"text": "Success", "code": 0})

    with HttpServer(hec) as server:
        send(build_output("splunk", host=server.url + "/services/collector/event", token="tok-1", index="sec"),
             alerts)
    (rec,) = server.requests
    assert (rec.method, rec.path) == ("POST", "/services/collector/event")
    assert rec.headers["Authorization"] == "Splunk tok-1"
    events = [json.loads(x) for x in rec.body.decode().splitlines()]
    assert [e["event"] for e in events] == alerts
    assert events[0]["time"] == pytest.approx(1795899613.123457)
    assert {(e["host"], e["sourcetype"], e["source"], e["index"]) for e in events} == {
        ("test-host", "falco", "peregrine", "sec")}


def test_sentinel_logs_ingestion_with_client_credentials() -> None:
    tokens: list[str] = []

    async def azure(request: web.Request, rec: Recorded) -> web.Response:
        if rec.path.endswith("/oauth2/v2.0/token"):
            tokens.append(f"tok{len(tokens)}")
            return web.json_response({"token_type": "Bearer", "expires_in": 3599, "access_token": tokens[-1]})
        if rec.headers.get("Authorization") == "Bearer tok0" and len(tokens) == 1 and "expire" in rec.body.decode():
            return web.Response(status=401)  # token revoked: the output fetches a new one and retries
        return web.Response(status=204)

    alerts = [make_alert(14), make_alert(15, **HOSTILE)]
    with HttpServer(azure) as server:
        output = build_output("sentinel", tenant_id="tenant-1", client_id="app-1", client_secret="sec ret&=",
                              endpoint=server.url, dcr_immutable_id="dcr-0123", token_url=server.url +
                              "/{tenant_id}/oauth2/v2.0/token")

        async def go() -> None:
            await output.start()
            await output.send(alerts[:1])
            await output.send(alerts[1:])  # token cached: one token request for both
            with pytest.raises(DeliveryError) as info:
                await output.send([make_alert(16, **{"note": "expire"})])
            assert info.value.retryable
            await output.send([make_alert(16, **{"note": "expire"})])
            await output.close()

        asyncio.run(go())
    token_req = server.requests[0]
    assert (token_req.method, token_req.path) == ("POST", "/tenant-1/oauth2/v2.0/token")
    assert token_req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    from urllib.parse import parse_qs
    assert {k: v[0] for k, v in parse_qs(token_req.body.decode()).items()} == {
        "grant_type": "client_credentials", "client_id": "app-1", "client_secret": "sec ret&=",
        "scope": "https://monitor.azure.com//.default"}
    ingest = [r for r in server.requests if "dataCollectionRules" in r.path]
    assert [r.path for r in ingest] == ["/dataCollectionRules/dcr-0123/streams/Custom-FalcoAlerts_CL"] * 4
    assert ingest[0].query == {"api-version": "2023-01-01"}
    assert ingest[0].headers["Authorization"] == "Bearer tok0" and ingest[-1].headers["Authorization"] == "Bearer tok1"
    (record,) = _json(ingest[1])
    assert record["TimeGenerated"].startswith("2026-11-28T21:00:13.") and record["AlertId"] == alerts[1]["uuid"]
    assert record["OutputFields"]["proc.cmdline"] == HOSTILE["proc.cmdline"]
    assert {k: record[k] for k in ("Rule", "Priority", "Source", "Hostname", "Output")} == {
        "Rule": alerts[1]["rule"], "Priority": "Warning", "Source": "syscall", "Hostname": "test-host",
        "Output": alerts[1]["output"]}


def test_loki_push_streams() -> None:
    alerts = [make_alert(17), make_alert(18, priority="Critical"), make_alert(19)]
    with HttpServer() as server:
        send(build_output("loki", hostport=server.url, tenant="team-a", user="u", apikey="k",
                          extralabels=["container.name"]), alerts)
    (rec,) = server.requests
    assert (rec.method, rec.path) == ("POST", "/loki/api/v1/push")
    assert rec.headers["X-Scope-OrgID"] == "team-a" and rec.headers["Content-Type"] == "application/json"
    assert rec.headers["Authorization"] == "Basic " + base64.b64encode(b"u:k").decode()
    streams = _json(rec)["streams"]
    assert len(streams) == 2
    warning = next(s for s in streams if s["stream"]["priority"] == "Warning")
    assert warning["stream"] == {"rule": alerts[0]["rule"], "priority": "Warning", "source": "syscall",
                                 "hostname": "test-host", "tags": "filesystem,mitre_credential_access",
                                 "container_name": "host"}
    assert warning["values"] == [["1795899613123456806", alerts[0]["output"]],
                                 ["1795899613123456808", alerts[2]["output"]]]
