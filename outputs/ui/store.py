"""The embedded alert store: SQLite in WAL mode, FTS5 over output/rule/fields, and count cubes for the dashboard.

Writes come from one ingest thread; the web server reads through its own connections (WAL readers never block
the writer). Every batch is one transaction: rows, tags, full-text index and the per-minute/hour/day count cubes
move together, and the cubes are decremented exactly when retention deletes rows, so dashboard counts read from
the cubes always equal a `count(*)` over the raw rows.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outputs.ui.alert_row import AlertRow

NS = 1_000_000_000
# Cube grains in seconds, coarsest first: a range is split into whole days, then hours, then minutes, then raw rows.
GRAINS = (86_400, 3_600, 60)
SCHEMA_VERSION = "2"

# `alerts` is narrow (what filters, cubes and ordering read) so range scans stay in cache; the wide text lives
# in `alert_text`, read only for the rows shown, exported, or matched by full-text search.
_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS alerts (
        id INTEGER PRIMARY KEY,
        uuid TEXT NOT NULL UNIQUE,
        ts INTEGER NOT NULL,
        priority INTEGER NOT NULL,
        rule TEXT NOT NULL,
        hostname TEXT NOT NULL,
        source TEXT NOT NULL,
        tags TEXT NOT NULL,
        combo INTEGER NOT NULL)""",
    # Every distinct (priority, rule, hostname, source, tag set) once: cubes count by this small integer, so
    # summing and grouping never touch text. In Falco tags come with the rule, so tag sets add few combinations.
    """CREATE TABLE IF NOT EXISTS combos (
        id INTEGER PRIMARY KEY, priority INTEGER NOT NULL, rule TEXT NOT NULL, hostname TEXT NOT NULL,
        source TEXT NOT NULL, tags TEXT NOT NULL, UNIQUE (priority, rule, hostname, source, tags))""",
    """CREATE TABLE IF NOT EXISTS alert_text (
        id INTEGER PRIMARY KEY, rule TEXT NOT NULL, output TEXT NOT NULL, fields TEXT NOT NULL, extra TEXT)""",
    "CREATE INDEX IF NOT EXISTS alerts_ts ON alerts(ts)",
    "CREATE INDEX IF NOT EXISTS alerts_priority ON alerts(priority, ts)",
    "CREATE INDEX IF NOT EXISTS alerts_rule ON alerts(rule, ts)",
    "CREATE INDEX IF NOT EXISTS alerts_hostname ON alerts(hostname, ts)",
    "CREATE INDEX IF NOT EXISTS alerts_source ON alerts(source, ts)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS alerts_fts USING fts5(
        output, rule, fields, content='alert_text', content_rowid='id', tokenize='unicode61')""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
]
for _g in GRAINS:
    _SCHEMA.append(f"""CREATE TABLE IF NOT EXISTS cube_{_g} (
        bucket INTEGER NOT NULL, combo INTEGER NOT NULL, n INTEGER NOT NULL,
        PRIMARY KEY (bucket, combo)) WITHOUT ROWID""")

_INSERT = """INSERT OR IGNORE INTO alerts (uuid, ts, priority, rule, hostname, source, tags, combo)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)"""
_INSERT_TEXT = "INSERT INTO alert_text (id, rule, output, fields, extra) VALUES (?, ?, ?, ?, ?)"


def connect(path: Path | str, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the pragmas every user of the store needs (WAL, busy timeout, rows as dicts)."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
    else:
        Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        os.chmod(path, 0o600)  # alerts are sensitive; SQLite gives the -wal/-shm files the same mode
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA cache_size=-65536")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA mmap_size=1073741824")
    conn.row_factory = _dict_row
    return conn


def _dict_row(cursor: sqlite3.Cursor, row: tuple[object, ...]) -> dict[str, object]:
    return {d[0]: v for d, v in zip(cursor.description, row, strict=True)}


@dataclass(frozen=True)
class Retention:
    """How much the store keeps: whichever bound is hit first wins (oldest alerts go first)."""

    days: float = 7.0
    max_rows: int = 5_000_000


@dataclass
class InsertResult:
    received: int
    inserted: int  # the rest were duplicates (same uuid) of stored alerts


class AlertStore:
    """The writer side: schema, batch insert with dedup by uuid, retention pruning."""

    def __init__(self, path: Path | str, retention: Retention | None = None) -> None:
        self.path = Path(path)
        self.retention = retention or Retention()
        self.conn = connect(self.path)
        self._lock = threading.Lock()
        with self._lock:
            self.conn.execute("BEGIN")
            for stmt in _SCHEMA:
                self.conn.execute(stmt)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            self.conn.execute("COMMIT")
            version = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()["value"]
        if version != SCHEMA_VERSION:
            raise RuntimeError(f"{self.path}: store schema {version}, this version needs {SCHEMA_VERSION}: "
                               "move the file away (the UI refills from the alerts topic)")
        self._combos: dict[tuple[Any, ...], int] = {}
        self._load_combos()

    def _load_combos(self) -> None:
        self._combos = {(r["priority"], r["rule"], r["hostname"], r["source"], r["tags"]): r["id"]
                        for r in self.conn.execute("SELECT * FROM combos")}

    def _combo(self, key: tuple[Any, ...]) -> int:
        found = self._combos.get(key)
        if found is None:
            cur = self.conn.execute("INSERT INTO combos (priority, rule, hostname, source, tags) VALUES (?, ?, ?, ?, ?)",
                                    key)
            found = self._combos[key] = int(cur.lastrowid or 0)
        return found

    def close(self) -> None:
        self.conn.close()

    def insert(self, rows: Iterable[AlertRow]) -> InsertResult:
        """One transaction per batch: alerts, tags, FTS and cubes; duplicates of stored uuids are ignored."""
        given = list(rows)
        batch: dict[str, AlertRow] = {}
        for r in given:
            batch.setdefault(r.uuid, r)  # the first occurrence of a uuid in the batch wins
        if not batch:
            return InsertResult(0, 0)
        with self._lock:
            c = self.conn
            c.execute("BEGIN IMMEDIATE")
            try:
                last = c.execute("SELECT coalesce(max(id), 0) AS m FROM alerts").fetchone()["m"]
                params = [r.index_params() for r in batch.values()]
                c.executemany(_INSERT, [(*p, self._combo(p[2:])) for p in params])
                new = c.execute("SELECT id, uuid FROM alerts WHERE id > ?", (last,)).fetchall()
                if new:
                    c.executemany(_INSERT_TEXT, [(n["id"], *batch[n["uuid"]].text_params()) for n in new])
                    self._index_new(last)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                self._load_combos()  # ids handed out in the rolled-back transaction are gone
                raise
        return InsertResult(len(given), len(new))

    def _index_new(self, last_id: int) -> None:
        """FTS and cubes for rows with id > last_id (rowids only grow: retention deletes the oldest)."""
        c = self.conn
        c.execute("""INSERT INTO alerts_fts (rowid, output, rule, fields)
                     SELECT id, output, rule, fields FROM alert_text WHERE id > ?""", (last_id,))
        self._cube_add("a.id > ?", (last_id,), sign=1)

    def _cube_add(self, where: str, params: tuple[object, ...], sign: int) -> None:
        for g in GRAINS:
            self.conn.execute(f"""INSERT INTO cube_{g} (bucket, combo, n)
                SELECT (a.ts / {g * NS}) * {g}, a.combo, {sign} * count(*) FROM alerts a WHERE {where} GROUP BY 1, 2
                ON CONFLICT DO UPDATE SET n = n + excluded.n""", params)

    def prune(self, now_ns: int | None = None, chunk: int = 50_000) -> int:
        """Delete what retention no longer allows, oldest first, in chunks so readers and ingest keep going."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        cutoff = now_ns - int(self.retention.days * 86_400 * NS)
        deleted = 0
        while True:
            with self._lock:
                total = self.conn.execute("SELECT count(*) AS n FROM alerts").fetchone()["n"]
                excess = max(0, total - self.retention.max_rows)
                done = self._delete_oldest(cutoff, min(chunk, excess) if excess else 0, chunk)
            deleted += done
            if done < chunk:
                return deleted

    def _delete_oldest(self, cutoff_ns: int, excess: int, chunk: int) -> int:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("DROP TABLE IF EXISTS temp.doomed")
            c.execute("CREATE TEMP TABLE doomed (id INTEGER PRIMARY KEY)")
            c.execute("INSERT INTO doomed SELECT id FROM alerts WHERE ts < ? ORDER BY ts LIMIT ?", (cutoff_ns, chunk))
            found = c.execute("SELECT count(*) AS n FROM doomed").fetchone()["n"]
            if found < excess:
                c.execute("""INSERT OR IGNORE INTO doomed SELECT id FROM alerts
                             WHERE id NOT IN (SELECT id FROM doomed) ORDER BY ts LIMIT ?""", (excess - found,))
            n = c.execute("SELECT count(*) AS n FROM doomed").fetchone()["n"]
            if n:
                where = "a.id IN (SELECT id FROM temp.doomed)"
                self._cube_add(where, (), sign=-1)
                newest = c.execute(f"SELECT max(ts) AS m FROM alerts a WHERE {where}").fetchone()["m"]
                for g in GRAINS:
                    bound = (newest // (g * NS)) * g
                    c.execute(f"DELETE FROM cube_{g} WHERE bucket <= ? AND n <= 0", (bound,))
                c.execute("""INSERT INTO alerts_fts (alerts_fts, rowid, output, rule, fields)
                             SELECT 'delete', id, output, rule, fields FROM alert_text
                             WHERE id IN (SELECT id FROM temp.doomed)""")
                c.execute("DELETE FROM alert_text WHERE id IN (SELECT id FROM temp.doomed)")
                c.execute("DELETE FROM alerts WHERE id IN (SELECT id FROM temp.doomed)")
            c.execute("DROP TABLE temp.doomed")
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return int(n)
