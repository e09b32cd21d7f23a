"""The UI's HTTP API against the real aiohttp server: nothing readable without authentication, hostile alert
text returned as data, exports that follow the filter, and the store filled from the real alerts topic."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition
from test_ui_support import HOSTILE, produce, running_ui, wait_for

from outputs.ui.alert_row import alert_to_row
from outputs.ui.demo import synthetic_alert, synthetic_alerts
from outputs.ui.ingest import group_id_for
from outputs.ui.server import STATIC_DIR, ui_access
from outputs.ui.store import NS, AlertStore
from settings.config import Config
from settings.kafka_clients import consumer_config

ROUTES = ["/", "/static/app.js", "/static/app.css", "/api/counts", "/api/timeline", "/api/events",
          "/api/event/{uuid}", "/api/export?format=csv", "/api/export?format=json", "/api/status"]


@pytest.fixture
def ui(tmp_path: Path):
    import random

    now = time.time_ns()
    alerts = list(synthetic_alerts(300, now - 3600 * NS, now - NS, seed=11))
    rng = random.Random(2)
    hostile = [synthetic_alert(rng, now - (i + 1) * NS, 9000 + i, hostile=h) for i, h in enumerate(HOSTILE)]
    store = AlertStore(tmp_path / "ui.db")
    store.insert(alert_to_row(a) for a in alerts + hostile)
    store.close()
    cfg = Config(state_dir=str(tmp_path / "state"))
    with running_ui(cfg, tmp_path / "ui.db") as running:
        running.alerts = alerts + hostile  # type: ignore[attr-defined]
        yield running


def test_every_route_but_login_requires_authentication(ui):
    uuid = ui.alerts[0]["uuid"]
    anon, authed = ui.client(auth=False), ui.client()
    wrong = httpx.Client(base_url=ui.url, headers={"Authorization": "Bearer not-the-token"})
    for route in (r.format(uuid=uuid) for r in ROUTES):
        for client in (anon, wrong):
            r = client.get(route)
            assert r.status_code == 401, route
            assert uuid not in r.text and "Sensitive" not in r.text, route
        assert authed.get(route).status_code == 200, route
    assert anon.get("/").headers["content-type"].startswith("text/html")  # the login form, with status 401
    assert 'name="token"' in anon.get("/").text
    assert anon.get("/login").status_code == 200 and anon.get("/login.css").status_code == 200
    assert anon.post("/api/counts").status_code in (401, 405)
    assert authed.request("DELETE", "/api/events").status_code == 405


def test_login_gives_a_strict_httponly_session_and_logout_ends_it(ui):
    browser = ui.client(auth=False)
    bad = browser.post("/login", data={"token": "guess", "next": "/"})
    assert bad.status_code == 401 and "Wrong access token" in bad.text and "set-cookie" not in bad.headers
    ok = browser.post("/login", data={"token": ui.token, "next": "/#events"})
    assert ok.status_code == 303 and ok.headers["location"] == "/#events"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert browser.get("/api/counts").status_code == 200
    assert browser.get("/").status_code == 200
    assert browser.post("/logout").status_code == 303
    assert browser.get("/api/counts").status_code == 401
    # no open redirect after login
    again = browser.post("/login", data={"token": ui.token, "next": "//evil.example/x"})
    assert again.headers["location"] == "/"


def test_cross_site_posts_are_refused(ui):
    browser = ui.client(auth=False)
    r = browser.post("/login", data={"token": ui.token}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "set-cookie" not in r.headers
    browser.post("/login", data={"token": ui.token})
    assert browser.post("/logout", headers={"Origin": "http://evil.example"}).status_code == 403
    assert browser.get("/api/counts").status_code == 200


def test_token_is_generated_once_and_only_its_hash_is_stored(tmp_path):
    cfg = Config(state_dir=str(tmp_path / "state"))
    first = ui_access(cfg, 1234)
    assert first.token and len(first.token) >= 24 and first.token in first.credentials_line
    assert "http://127.0.0.1:1234/" in first.credentials_line
    stored = first.token_file.read_text()
    assert first.token not in stored and "scrypt" in stored
    assert first.token_file.stat().st_mode & 0o077 == 0
    store = AlertStore(first.token_file.parent / "alerts.db")
    store.close()
    assert store.path.stat().st_mode & 0o077 == 0 and first.token_file.parent.stat().st_mode & 0o077 == 0
    second = ui_access(cfg, 1234)
    assert second.token is None and "reset-token" in second.credentials_line
    third = ui_access(cfg, 1234, reset_token=True)
    assert third.token and third.token != first.token


def test_security_headers_on_every_response(ui):
    for client, route in [(ui.client(auth=False), "/"), (ui.client(), "/"), (ui.client(), "/api/events"),
                          (ui.client(auth=False), "/login"), (ui.client(), "/static/app.js")]:
        h = client.get(route).headers
        assert "script-src 'self'" in h["content-security-policy"], route
        assert "unsafe-inline" not in h["content-security-policy"] and "frame-ancestors 'none'" in h["content-security-policy"]
        assert h["x-content-type-options"] == "nosniff"


def test_hostile_alert_text_is_data_never_markup(ui):
    client = ui.client()
    page = client.get("/api/events", params={"q": "window"}).json()
    outputs = {e["output"] for e in page["events"]}
    for h in HOSTILE:
        assert any(h in o for o in outputs), h
    detail = client.get(f"/api/event/{ui.alerts[-1]['uuid']}")
    assert detail.headers["content-type"].startswith("application/json")
    assert detail.json()["alert"]["output_fields"]["container.name"] == HOSTILE[-1]
    login = ui.client(auth=False).get("/login", params={"next": '/"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in login.text and "&lt;script&gt;" in login.text
    # The page script never turns strings into markup.
    script = (STATIC_DIR / "app.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "<script>" not in (STATIC_DIR / "index.html").read_text().replace('<script src="/static/app.js" defer></script>', "")


def test_export_follows_the_filter_and_is_csv_injection_safe(ui):
    client = ui.client()
    data = client.get("/api/export", params={"format": "json", "priority": "Critical", "since": "2h"})
    assert data.headers["content-disposition"].startswith("attachment;")
    exported = json.loads(data.text)
    expected = [a for a in ui.alerts if a["priority"] == "Critical"]
    assert sorted(e["uuid"] for e in exported) == sorted(a["uuid"] for a in expected)
    assert all(set(e) >= {"output_fields", "tags", "time", "uuid"} for e in exported)
    text = client.get("/api/export", params={"format": "csv", "q": "window"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(HOSTILE)
    formula = [r for r in rows if "constructor" in r["output"]]
    assert formula and all(not r[c].startswith(("=", "+", "-", "@")) for r in rows for c in r)


def test_bad_parameters_are_400_with_the_reason(ui):
    client = ui.client()
    for params, word in [({"since": "forever"}, "since"), ({"priority": "Loud"}, "priority"),
                         ({"from": "yesterday"}, "from"), ({"limit": "0"}, "limit"), ({"before": "x"}, "before")]:
        r = client.get("/api/events", params=params)
        assert r.status_code == 400 and word in r.json()["error"], params
    assert client.get("/api/event/nope").status_code == 404


@pytest.mark.kafka
def test_alerts_from_the_real_topic_are_stored_once_and_offsets_committed(kafka_config: Config, tmp_path: Path):
    now = time.time_ns()
    alerts = list(synthetic_alerts(120, now - 600 * NS, now, seed=4))
    produce(kafka_config, [*alerts, b"{not json", *alerts[:20]])  # a broken record and replayed duplicates
    db = tmp_path / "ui.db"
    with running_ui(kafka_config, db, consume=True) as ui:
        client = ui.client()
        wait_for(lambda: client.get("/api/status").json()["ingest"]["consumed"] == 141, "all records consumed")
        status = client.get("/api/status").json()["ingest"]
        assert (status["inserted"], status["duplicates"], status["rejected"]) == (120, 20, 1)
        assert f"{kafka_config.kafka.topics.alerts}:" in status["last_error"]  # names topic:partition:offset
        assert client.get("/api/counts", params={"since": "1h"}).json()["total"] == 120
    consumer = Consumer(consumer_config(kafka_config.kafka, group_id_for(kafka_config)))
    try:
        meta = consumer.list_topics(kafka_config.kafka.topics.alerts, timeout=10)
        parts = [TopicPartition(kafka_config.kafka.topics.alerts, p)
                 for p in meta.topics[kafka_config.kafka.topics.alerts].partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts}
        committed = {tp.partition: max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10)}
        assert committed == ends and sum(ends.values()) == 141
    finally:
        consumer.close()
    # A restart resumes after the committed offsets: nothing is read twice.
    with running_ui(kafka_config, db, consume=True) as ui:
        client = ui.client()
        produce(kafka_config, alerts[-1:] + list(synthetic_alerts(5, now - NS, now, seed=99)))
        wait_for(lambda: client.get("/api/status").json()["ingest"]["consumed"] == 6, "new records consumed")
        assert client.get("/api/status").json()["ingest"]["inserted"] == 5
        assert client.get("/api/counts", params={"since": "1h"}).json()["total"] == 125
