"""The changelog writer's serialisation is Faust's, byte for byte: recovery reads our records as its own."""

from __future__ import annotations

from typing import Any

import faust
import pytest

from processor.changelog import serializers

RECORDS: list[Any] = [
    {"pid": 4242, "ppid": 1, "comm": "sh", "exe": "/bin/sh", "exepath": "/usr/bin/dash", "args": ["-c", "id; cat x"],
     "cwd": "/root", "tty": 34816, "sid": 4242, "pgid": 4242, "vpgid": 4242, "vpid": 4242, "start_ts": 1795940000123456789,
     "env": [], "container_id": "", "uid": 0, "gid": 0, "euid": 0, "loginuid": -1, "cap_permitted": 2**63 - 1,
     "cap_effective": 0, "cap_inheritable": 0, "exe_from_memfd": False, "exe_upper_layer": True, "exe_ino_ctime": 0,
     "exe_ino_mtime": 0, "exit_ts": 0, "exec_ts": 1795940000123456999},
    {"name": "r\u00e9seau \u202e\U0001f600 \"quoted\"\n\ttab\\", "homedir": "/home/\x00x", "shell": ""},
    {"id": "abc", "labels": {"io.kubernetes.pod.name": "web-1", "k": "v"}, "privileged": False, "mounts": [],
     "image": None},
    {}, [], "plain", 0, -2**63, 1.5,
]


@pytest.fixture(scope="module")
def app() -> faust.App:
    return faust.App("changelog-test", broker="kafka://127.0.0.1:1", store="memory://")


def test_table_writes_serialise_to_fausts_own_bytes(app: faust.App) -> None:
    table = app.Table("proctable", default=None, partitions=2, key_type=str)  # as processor/worker.py makes them
    topic = table.changelog_topic
    to_key, to_value = serializers(topic, table.key_serializer, table.value_serializer)
    for key in ("node-1|4242", "n\u00e9|u0", "h|g1", 'q"uote|\\'):
        assert to_key(key) == topic.prepare_key(key, table.key_serializer)[0]
    for rec in RECORDS:
        assert to_value(rec) == topic.prepare_value(rec, table.value_serializer)[0]


def test_other_serialisers_go_through_faust(app: faust.App) -> None:
    topic = app.topic("rawtopic", key_type=bytes, value_type=bytes)
    to_key, to_value = serializers(topic, "raw", "raw")
    assert to_key(b"k|1") == b"k|1" == topic.prepare_key(b"k|1", "raw")[0]
    assert to_value(b"\x00\x01") == b"\x00\x01" == topic.prepare_value(b"\x00\x01", "raw")[0]
