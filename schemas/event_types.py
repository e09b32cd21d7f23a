"""The fixed part of what the events topic carries, whatever the rules: the events processors build their thread
table from, and the sensor's meta events. Sensors ship these plus the event types the loaded rules read; events
traced only for the sensor's own fd and process tables (close, dup, ... when no rule reads them) stay on the node,
as Falco's state-only events never reach its rules."""

from __future__ import annotations

# What the processors' thread table is built from (processor/state.py).
LIFECYCLE_TYPES = frozenset({
    "clone", "clone3", "fork", "vfork", "execve", "execveat", "procexit",
    "setuid", "setresuid", "setreuid", "setgid", "setresgid", "setregid", "chdir", "fchdir",
})
# The sensor's own events: the /proc snapshot, uid/gid names, container metadata, loss reports.
META_TYPES = frozenset({"snapshot", "user", "group", "container", "drop"})
ALWAYS_SHIPPED = LIFECYCLE_TYPES | META_TYPES
