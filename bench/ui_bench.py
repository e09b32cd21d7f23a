"""Load bench for the UI store: ingest N synthetic alerts, then time dashboard, table and search queries.

Every time is also given as a ratio to a bare `SELECT count(*) FROM alerts` measured in the same run on the
same file, so numbers from different machines compare.

    .venv/bin/python bench/ui_bench.py --alerts 1000000
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from outputs.ui import queries
from outputs.ui.alert_row import alert_to_row
from outputs.ui.demo import synthetic_alerts
from outputs.ui.export import csv_chunks
from outputs.ui.store import NS, AlertStore, Retention, connect


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    fn()  # warm the page cache and statement cache: the dashboard is hit repeatedly in real use
    runs = []
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alerts", type=int, default=1_000_000)
    ap.add_argument("--days", type=float, default=7.0, help="time span the alerts are spread over")
    ap.add_argument("--batch", type=int, default=2000, help="alerts per insert transaction (the ingest batch)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--db", help="store file (default: a temporary directory, removed afterwards)")
    ap.add_argument("--reuse", action="store_true", help="with --db: query an already filled store, no ingest")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="ui-bench-")
    db = Path(args.db) if args.db else Path(tmp.name) / "alerts.db"
    now = time.time_ns()
    start = now - int(args.days * 86400 * NS)
    store = AlertStore(db, Retention(days=args.days + 1, max_rows=args.alerts * 2))

    t0 = time.perf_counter()
    batch: list[Any] = []
    decode_s = 0.0
    if args.reuse:
        start = store.conn.execute("SELECT min(ts) AS t FROM alerts").fetchone()["t"]
        now = store.conn.execute("SELECT max(ts) AS t FROM alerts").fetchone()["t"] + NS
    for alert in synthetic_alerts(0 if args.reuse else args.alerts, start, now, seed=7):
        d0 = time.perf_counter()
        batch.append(alert_to_row(alert))
        decode_s += time.perf_counter() - d0
        if len(batch) >= args.batch:
            store.insert(batch)
            batch = []
    if batch:
        store.insert(batch)
    ingest_s = time.perf_counter() - t0
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*"))

    conn = connect(db, readonly=True)
    sample = conn.execute("SELECT a.uuid, t.output FROM alerts a JOIN alert_text t ON t.id = a.id "
                          "ORDER BY a.id DESC LIMIT 1 OFFSET 777").fetchone()
    rare = next(w for w in sample["output"].split() if w.startswith("container_name=")).split("=", 1)[1]
    day = queries.AlertFilter(now - 86400 * NS, now)
    week = queries.AlertFilter(start, now)

    def f(base: queries.AlertFilter, **kw: Any) -> queries.AlertFilter:
        return queries.AlertFilter(**{**base.__dict__, **kw})

    def dashboard(flt: queries.AlertFilter) -> Callable[[], Any]:
        return lambda: (queries.counts(conn, flt), queries.timeline(conn, flt))

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("baseline: SELECT count(*) FROM alerts", lambda: conn.execute("SELECT count(*) AS n FROM alerts").fetchone()),
        ("dashboard, last 24 h (counts by 5 dimensions + timeline)", dashboard(day)),
        ("dashboard, all 7 days", dashboard(week)),
        ("dashboard, 7 days, priority=Critical + host filter", dashboard(f(week, priorities=(2,), hostnames=("node-00.prod.example",)))),
        ("dashboard, 7 days, tag=mitre_execution", dashboard(f(week, tags=("mitre_execution",)))),
        ("dashboard, 7 days, two tags", dashboard(f(week, tags=("mitre_execution", "k8s")))),
        ("dashboard, 7 days, full-text 'shadow' (raw rows + FTS)", dashboard(f(week, text="shadow"))),
        (f"dashboard, 7 days, full-text rare term '{rare}'", dashboard(f(week, text=rare))),
        ("event table, newest 100 of 7 days + total", lambda: queries.events(conn, week, 100)),
        ("event table, rule filter, newest 100 + total",
         lambda: queries.events(conn, f(week, rules=("Write below etc",)), 100)),
        (f"search rare term '{rare}', newest 100 + total", lambda: queries.events(conn, f(week, text=rare), 100)),
        ("search common term 'shadow', newest 100 + total", lambda: queries.events(conn, f(week, text="shadow"), 100)),
        ("search prefix 'kwork*' + priority=Critical", lambda: queries.events(conn, f(week, text="kwork*", priorities=(2,)), 100)),
        ("event detail by uuid", lambda: queries.event(conn, sample["uuid"])),
        ("export 10,000 alerts as CSV", lambda: sum(len(c) for c in csv_chunks(queries.iter_alerts(conn, week, 10_000)))),
    ]
    results = [(name, *timed(fn, args.repeat)) for name, fn in cases]
    base = results[0][1]
    total = conn.execute("SELECT count(*) AS n FROM alerts").fetchone()["n"]
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"SQLite {connect.__globals__['sqlite3'].sqlite_version}")
    if not args.reuse:
        print(f"ingested {total:,} alerts over {args.days:g} days in {ingest_s:.1f} s "
              f"({total / ingest_s:,.0f} alerts/s, of which decoding {decode_s:.1f} s), store {size / 2**20:,.0f} MiB")
    else:
        print(f"reused store with {total:,} alerts, {size / 2**20:,.0f} MiB")
    print()
    print("| query | median ms | × baseline |")
    print("|---|---:|---:|")
    for name, secs, _ in results:
        print(f"| {name} | {secs * 1000:.1f} | {secs / base:.1f} |")
    store.close()
    conn.close()
    if not args.db:
        tmp.cleanup()


if __name__ == "__main__":
    main()
