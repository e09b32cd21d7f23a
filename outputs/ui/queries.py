"""Read side of the store: filters, counts, timeline, event pages and detail.

Counts and timelines are answered from the count cubes whenever there is no full-text term: a range is split
into whole days, hours and minutes read from the cubes, plus the sub-minute edges read from the raw rows, so the
answer is exact and its cost does not grow with the number of alerts. Cubes count by combination id (an integer
standing for priority, rule, hostname, source and tag set); SQLite sums over the UNION ALL of the segments by
that id and Python only sees the few distinct combinations.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from outputs.ui.alert_row import PRIORITIES, row_to_alert
from outputs.ui.store import GRAINS, NS

DIMENSIONS = ("priority", "rule", "hostname", "source", "tag")
# Timeline steps (s): the smallest giving at most ~MAX_BUCKETS bars over the range.
STEPS = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)
MAX_BUCKETS = 120
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


class QueryError(ValueError):
    """A bad query parameter, phrased for the API client (HTTP 400)."""


@dataclass(frozen=True)
class AlertFilter:
    """What the user is looking at: a time range [start, end) in ns plus optional dimension filters (OR within)."""

    start_ns: int
    end_ns: int
    priorities: tuple[int, ...] = ()
    rules: tuple[str, ...] = ()
    hostnames: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    text: str = ""



def parse_since(text: str) -> int:
    m = _SINCE.match(text)
    if not m:
        raise QueryError(f"since: '{text}' is not a duration like 15m, 24h, 7d")
    return int(float(m.group(1)) * _UNITS[m.group(2)] * NS)


def parse_instant(text: str, name: str) -> int:
    """Epoch seconds (int/float) or RFC 3339 ('2024-05-01T12:00:00Z', any fraction, optional offset)."""
    from datetime import datetime

    try:
        return int(float(text) * NS)
    except ValueError:
        pass
    try:
        head, _, tail = text.replace("Z", "+00:00").partition(".")
        frac, offset = (re.match(r"(\d*)(.*)", tail).groups() if tail else ("", ""))  # type: ignore[union-attr]
        dt = datetime.fromisoformat(head + offset)
        if dt.tzinfo is None:
            raise ValueError("no time zone")
        return int(dt.timestamp()) * NS + int((frac + "000000000")[:9])
    except ValueError:
        raise QueryError(f"{name}: '{text}' is neither epoch seconds nor RFC 3339 with a time zone") from None


def filter_from_params(params: Any, now_ns: int | None = None) -> AlertFilter:
    """Query-string parameters (a MultiDict) to a filter; repeated keys mean OR (priority=Error&priority=Critical)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    end = parse_instant(params["to"], "to") if params.get("to") else now_ns
    if params.get("from"):
        start = parse_instant(params["from"], "from")
    else:
        start = end - parse_since(params.get("since") or "24h")
    if start >= end:
        raise QueryError("from: must be before 'to'")
    priorities: set[int] = set()
    for name in _many(params, "priority"):
        if name.lower() in ("info",):
            name = "Informational"
        matches = [i for i, p in enumerate(PRIORITIES) if p.lower() == name.lower()]
        if not matches:
            raise QueryError(f"priority: '{name}' is not one of {', '.join(PRIORITIES)}")
        priorities.add(matches[0])
    if params.get("min_priority"):
        floor = [i for i, p in enumerate(PRIORITIES) if p.lower() == params["min_priority"].lower()]
        if not floor:
            raise QueryError(f"min_priority: '{params['min_priority']}' is not one of {', '.join(PRIORITIES)}")
        allowed = set(range(floor[0] + 1))
        priorities = (priorities & allowed) if priorities else allowed
    return AlertFilter(
        start_ns=start, end_ns=end, priorities=tuple(sorted(priorities)),
        rules=_many(params, "rule"), hostnames=_many(params, "hostname"), sources=_many(params, "source"),
        tags=_many(params, "tag"), text=(params.get("q") or "").strip())


def _many(params: Any, key: str) -> tuple[str, ...]:
    values = params.getall(key, []) if hasattr(params, "getall") else params.get(key, [])
    if isinstance(values, str):
        values = [values]
    return tuple(dict.fromkeys(v for v in values if v != ""))


def fts_query(text: str) -> str:
    """User text to an FTS5 query that cannot be a syntax error: each word a quoted phrase (trailing * = prefix)."""
    phrases = []
    for word in text.split():
        prefix = word.endswith("*") and len(word) > 1
        core = word.rstrip("*") if prefix else word
        if not any(ch.isalnum() for ch in core):
            continue
        phrases.append('"' + core.replace('"', '""') + '"' + ("*" if prefix else ""))
    return " ".join(phrases)


@dataclass
class _Where:
    sql: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add_in(self, column: str, values: tuple[Any, ...]) -> None:
        if values:
            self.sql.append(f"{column} IN ({','.join('?' * len(values))})")
            self.params.extend(values)

    def render(self) -> str:
        return " AND ".join(self.sql) if self.sql else "1"


def _tagsets(conn: sqlite3.Connection, tags: tuple[str, ...]) -> tuple[str, ...]:
    """The stored tag sets containing any of `tags`: a tag filter becomes an indexable `tags IN (...)`."""
    wanted = set(tags)
    return tuple(r["tags"] for r in conn.execute("SELECT DISTINCT tags FROM combos")
                 if wanted & set(orjson.loads(r["tags"])))


def _dimension_where(conn: sqlite3.Connection, f: AlertFilter, w: _Where, prefix: str) -> _Where:
    w.add_in(f"{prefix}priority", f.priorities)
    w.add_in(f"{prefix}rule", f.rules)
    w.add_in(f"{prefix}hostname", f.hostnames)
    w.add_in(f"{prefix}source", f.sources)
    if f.tags:
        sets = _tagsets(conn, f.tags)
        if sets:
            w.add_in(f"{prefix}tags", sets)
        else:
            w.sql.append("0")
    return w


# Above this many full-text matches, a newest-first page walks the time index and checks membership instead
# of fetching and sorting every match.
COMMON_TERM = 5000
# Event totals under a full-text search stop counting here ("10,000+"): an exact count of a term in a quarter of
# a million alerts costs more than the page itself.
TEXT_TOTAL_CAP = 10_000


def _raw_where(conn: sqlite3.Connection, f: AlertFilter, start: int, end: int, common: bool = False) -> _Where:
    w = _dimension_where(conn, f, _Where(["a.ts >= ?", "a.ts < ?"], [start, end]), "a.")
    if f.text:
        query = fts_query(f.text)
        if not query:
            w.sql.append("0")
        else:
            # `+a.id` keeps SQLite from driving the scan by the match list (see COMMON_TERM).
            w.sql.append(f"{'+' if common else ''}a.id IN (SELECT rowid FROM alerts_fts WHERE alerts_fts MATCH ?)")
            w.params.append(query)
    return w


def _is_common(conn: sqlite3.Connection, f: AlertFilter) -> bool:
    query = fts_query(f.text) if f.text else ""
    if not query:
        return False
    row = conn.execute("SELECT count(*) AS n FROM (SELECT rowid FROM alerts_fts WHERE alerts_fts MATCH ? LIMIT ?)",
                       (query, COMMON_TERM + 1)).fetchone()
    return bool(row["n"] > COMMON_TERM)


def split_range(start: int, end: int, grains: tuple[int, ...]) -> list[tuple[int | None, int, int]]:
    """[start, end) as segments (grain or None for raw rows, start, end): whole coarse buckets in the middle."""
    if start >= end:
        return []
    if not grains:
        return [(None, start, end)]
    width = grains[0] * NS
    first = -(-start // width) * width
    last = (end // width) * width
    if first >= last:
        return split_range(start, end, grains[1:])
    return split_range(start, first, grains[1:]) + [(grains[0], first, last)] + split_range(last, end, grains[1:])


def _segments(conn: sqlite3.Connection, f: AlertFilter, step: int | None) -> tuple[str, list[Any]]:
    """One UNION ALL over the range's segments, rows (b, combo, n).

    Without a full-text term the segments are cube reads plus sub-minute raw edges; with one, the raw rows the
    FTS index selects. `b` is the start (s) of the `step` bucket, 0 without a step.
    """
    grains = () if f.text else tuple(g for g in GRAINS if step is None or step % g == 0)
    combo_filter = _dimension_where(conn, f, _Where(), "")
    parts: list[str] = []
    params: list[Any] = []
    for grain, a, b in split_range(f.start_ns, f.end_ns, grains):
        if grain is None:
            w = _raw_where(conn, f, a, b)
            bucket = f"(a.ts / {step * NS}) * {step}" if step else "0"
            parts.append(f"SELECT {bucket} AS b, a.combo AS combo, count(*) AS n FROM alerts a "
                         f"WHERE {w.render()} GROUP BY 1, 2")
        else:
            w = _Where(["c.bucket >= ?", "c.bucket < ?"], [a // NS, b // NS])
            if combo_filter.sql:
                w.sql.append(f"c.combo IN (SELECT id FROM combos WHERE {combo_filter.render()})")
                w.params += combo_filter.params
            bucket = f"(c.bucket / {step}) * {step}" if step else "0"
            parts.append(f"SELECT {bucket} AS b, c.combo AS combo, c.n AS n FROM cube_{grain} c WHERE {w.render()}")
        params += w.params
    if not parts:
        return "SELECT 0 AS b, 0 AS combo, 0 AS n", []
    return " UNION ALL ".join(parts), params


def total(conn: sqlite3.Connection, f: AlertFilter) -> int:
    sql, params = _segments(conn, f, None)
    return int(conn.execute(f"SELECT coalesce(sum(n), 0) AS n FROM ({sql})", params).fetchone()["n"])


def counts(conn: sqlite3.Connection, f: AlertFilter, top: int = 50) -> dict[str, Any]:
    """Totals by each dimension over the range, biggest first, with the remainder beyond `top` as `other`."""
    sql, params = _segments(conn, f, None)
    per: dict[str, Counter[Any]] = {d: Counter() for d in DIMENSIONS}
    grand = 0
    for r in conn.execute(f"""SELECT c.priority, c.rule, c.hostname, c.source, c.tags, s.n
                              FROM (SELECT combo, sum(n) AS n FROM ({sql}) GROUP BY combo) s
                              JOIN combos c ON c.id = s.combo""", params):
        n = r["n"]
        if n <= 0:
            continue
        grand += n
        per["priority"][r["priority"]] += n
        per["rule"][r["rule"]] += n
        per["hostname"][r["hostname"]] += n
        per["source"][r["source"]] += n
        for tag in orjson.loads(r["tags"]):
            per["tag"][tag] += n
    by: dict[str, Any] = {}
    for dim, counter in per.items():
        items = sorted(counter.items(), key=lambda x: (-x[1], str(x[0])))
        if dim == "priority":
            by[dim] = {"values": [{"value": PRIORITIES[v], "count": n} for v, n in sorted(items)],
                       "distinct": len(items), "other": 0}
        else:
            by[dim] = {"values": [{"value": v, "count": n} for v, n in items[:top]], "distinct": len(items),
                       "other": sum(n for _, n in items[top:])}
    return {"total": grand, "by": by}


def choose_step(start_ns: int, end_ns: int) -> int:
    span = (end_ns - start_ns) / NS
    for step in STEPS:
        if span / step <= MAX_BUCKETS:
            return step
    return STEPS[-1]


def timeline(conn: sqlite3.Connection, f: AlertFilter, step: int | None = None) -> dict[str, Any]:
    """Counts per time bucket and priority, every bucket of the range present (zeros included) for the chart."""
    step = step or choose_step(f.start_ns, f.end_ns)
    first = (f.start_ns // NS // step) * step
    last = ((f.end_ns - 1) // NS // step) * step
    starts = list(range(first, last + 1, step))
    index = {b: i for i, b in enumerate(starts)}
    series: dict[str, list[int]] = {}
    sql, params = _segments(conn, f, step)
    for r in conn.execute(f"""SELECT s.b AS b, c.priority AS priority, sum(s.n) AS n
                              FROM (SELECT b, combo, sum(n) AS n FROM ({sql}) GROUP BY 1, 2) s
                              JOIN combos c ON c.id = s.combo GROUP BY 1, 2""", params):
        if r["n"] > 0 and r["b"] in index:
            series.setdefault(PRIORITIES[r["priority"]], [0] * len(starts))[index[r["b"]]] += r["n"]
    ordered = {p: series[p] for p in PRIORITIES if p in series}
    return {"step": step, "start": first, "buckets": len(starts), "series": ordered,
            "range": {"from": f.start_ns // NS, "to": f.end_ns // NS}}


def encode_cursor(ts: int, rowid: int) -> str:
    return f"{ts}.{rowid}"


def decode_cursor(text: str) -> tuple[int, int]:
    try:
        ts, rowid = text.split(".")
        return int(ts), int(rowid)
    except ValueError:
        raise QueryError(f"before: '{text}' is not a cursor returned by this API") from None


def _page(conn: sqlite3.Connection, f: AlertFilter, limit: int, before: tuple[int, int] | None,
          with_fields: bool) -> list[dict[str, Any]]:
    """Newest-first rows: ids from the narrow table first, then the text of just those rows."""
    w = _raw_where(conn, f, f.start_ns, f.end_ns, common=_is_common(conn, f))
    if before:
        w.sql.append("(a.ts < ? OR (a.ts = ? AND a.id < ?))")
        w.params.extend([before[0], before[0], before[1]])
    rows = list(conn.execute(f"SELECT a.* FROM alerts a WHERE {w.render()} ORDER BY a.ts DESC, a.id DESC LIMIT ?",
                             [*w.params, limit]))
    if rows:
        cols = "id, output, fields, extra" if with_fields else "id, output"
        ids = [r["id"] for r in rows]
        text = {t["id"]: t for t in conn.execute(
            f"SELECT {cols} FROM alert_text WHERE id IN ({','.join('?' * len(ids))})", ids)}
        for r in rows:
            r.update(text.get(r["id"], {"output": ""}))
    return rows


def events(conn: sqlite3.Connection, f: AlertFilter, limit: int = 100,
           before: str | None = None, with_total: bool = True) -> dict[str, Any]:
    """A page of alerts, newest first, with a keyset cursor for the next page (stable while alerts stream in)."""
    if not 1 <= limit <= 1000:
        raise QueryError("limit: must be between 1 and 1000")
    rows = _page(conn, f, limit, decode_cursor(before) if before else None, with_fields=False)
    out = []
    for r in rows:
        alert = row_to_alert({**r, "fields": "{}", "extra": None})
        del alert["output_fields"]
        out.append(alert)
    page: dict[str, Any] = {"events": out,
                            "next": encode_cursor(rows[-1]["ts"], rows[-1]["id"]) if len(rows) == limit else None}
    if with_total and f.text:
        w = _raw_where(conn, f, f.start_ns, f.end_ns)
        n = conn.execute(f"SELECT count(*) AS n FROM (SELECT 1 FROM alerts a WHERE {w.render()} LIMIT ?)",
                         [*w.params, TEXT_TOTAL_CAP + 1]).fetchone()["n"]
        page["total"] = min(n, TEXT_TOTAL_CAP)
        page["total_exact"] = n <= TEXT_TOTAL_CAP
    elif with_total:
        page["total"] = total(conn, f)
        page["total_exact"] = True
    return page


def iter_alerts(conn: sqlite3.Connection, f: AlertFilter, limit: int, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Full alerts matching the filter, newest first, up to `limit` (the export)."""
    cursor: tuple[int, int] | None = None
    left = limit
    while left > 0:
        rows = _page(conn, f, min(batch, left), cursor, with_fields=True)
        for r in rows:
            yield row_to_alert(r)
        if len(rows) < min(batch, left):
            return
        left -= len(rows)
        cursor = (rows[-1]["ts"], rows[-1]["id"])


def event(conn: sqlite3.Connection, uuid: str) -> dict[str, Any] | None:
    row = conn.execute("SELECT a.*, t.output, t.fields, t.extra FROM alerts a JOIN alert_text t ON t.id = a.id "
                       "WHERE a.uuid = ?", (uuid,)).fetchone()
    return row_to_alert(row) if row else None
