"""`peregrine ui`: the web dashboard and event explorer over the alerts topic."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from peregrine_cli.common import config_from_args, fail


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("ui", help="web UI: dashboard, event explorer, export (own consumer of the alerts topic)")
    p.add_argument("--port", type=int, help="HTTP port (default ui.port of peregrine.yaml, 2802)")
    p.add_argument("--listen", help="bind address (default ui.listen, 127.0.0.1)")
    p.add_argument("--db", help="SQLite store (default <state_dir>/ui/alerts.db)")
    p.add_argument("--retention-days", type=float, help="drop alerts older than this (default ui.retention_days, 7)")
    p.add_argument("--max-alerts", type=int, help="keep at most this many alerts (default ui.max_alerts, 5,000,000)")
    p.add_argument("--reset-token", action="store_true", help="generate a new access token (the old one stops working)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from outputs.ui.server import run_ui
    from outputs.ui.store import Retention

    cfg = config_from_args(args)
    for key in ("port", "listen", "retention_days", "max_alerts"):
        if getattr(args, key) is None:
            setattr(args, key, getattr(cfg.ui, key))
    if args.retention_days <= 0 or args.max_alerts <= 0:
        fail("--retention-days and --max-alerts must be positive")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run_ui(cfg, args.port, args.listen, args.db, stop, reset_token=args.reset_token,
               retention=Retention(days=args.retention_days, max_rows=args.max_alerts))
    except OSError as exc:  # bind failure, or an unwritable state dir / store file
        where = exc.filename or f"{args.listen}:{args.port}"
        fail(f"ui: {where}: {exc.strerror or exc}")
    except (ValueError, RuntimeError) as exc:  # unreadable token file, store from another schema version
        fail(f"ui: {exc}")
    except KeyboardInterrupt:
        stop.set()
    return 0
