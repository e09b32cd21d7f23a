"""peregrine.yaml: one Falco-like configuration file for every role, overridable by PEREGRINE_* variables.

Environment overrides use `__` for nesting: `PEREGRINE_KAFKA__BOOTSTRAP_SERVERS=host:9093` sets
`kafka.bootstrap_servers`; values are parsed as YAML scalars (`true`, `8`, `[a, b]`).
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_NAME = "peregrine.yaml"
ENV_PREFIX = "PEREGRINE_"


class ConfigError(ValueError):
    """A configuration problem, with the file or variable that caused it."""


@dataclass
class TopicNames:
    events: str = "peregrine.events"
    alerts: str = "peregrine.alerts"
    rules: str = "peregrine.rules"
    events_dlq: str = "peregrine.events.dlq"
    hunt: str = "peregrine.hunt"


@dataclass
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    # local: plaintext on loopback. eventhubs: SASL_SSL/PLAIN/$ConnectionString, gzip, size caps (issue 7).
    profile: str = "local"
    security_protocol: str = ""
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_ca_location: str = ""
    compression: str = ""
    max_record_bytes: int = 1_000_000
    events_partitions: int = 8
    alerts_partitions: int = 4
    replication_factor: int = 1
    topics: TopicNames = field(default_factory=TopicNames)
    # The local broker (peregrine kafka start).
    version: str = "3.9.1"
    port: int = 9092
    controller_port: int = 9093


@dataclass
class SensorConfig:
    batch_max_events: int = 4096
    batch_max_bytes: int = 900_000
    linger_ms: int = 100
    ring_buffer_pages: int = 4096  # 16 MiB: ~0.6 s of opens at 150k/s while user space is busy
    journal_max_bytes: int = 1 << 30
    metrics_port: int = 8766
    argv_max: int = 32
    syscalls: list[str] = field(default_factory=list)  # extra syscalls, like Falco's base_syscalls.custom_set
    # A keyframe /proc snapshot this often (0: only at start): `peregrine hunt` starts its process state there.
    snapshot_interval_s: int = 3600
    # Container runtimes' state directories read for container.* metadata (sensor/container_runtime.py);
    # a key left out keeps its default, '' turns that source off.
    container_state_roots: dict[str, str] = field(default_factory=lambda: {
        "containerd": "/run/containerd/io.containerd.runtime.v2.task",
        "containers_run": "/run/containers/storage/overlay-containers",
        "containers_storage": "/var/lib/containers/storage/overlay-containers",
        "docker": "/var/lib/docker/containers",
    })
    # CRI sockets asked for container and pod labels and the pod IP (sensor/cri.py); those that do not exist are
    # skipped, an empty list asks none.
    cri_sockets: list[str] = field(default_factory=lambda: ["/run/containerd/containerd.sock", "/run/crio/crio.sock"])


@dataclass
class WorkerConfig:
    app_id: str = "peregrine-worker"
    metrics_port: int = 8765
    web_port: int = 6066
    proc_table_max_per_host: int = 262_144
    proc_purge_grace_s: int = 300
    dns_refresh_s: float = 30.0  # how often the names rules compare fd.sip.name & co. with are resolved again
    stall_timeout_s: float = 30.0  # an events partition with records waiting and none delivered this long is read directly
    fault_pause_events_fetch: bool = False  # fault injection (tests): Faust is made to stop delivering every partition


@dataclass
class UiConfig:
    port: int = 2802
    listen: str = "127.0.0.1"
    retention_days: float = 7.0
    max_alerts: int = 5_000_000


@dataclass
class AppendOutput:
    match: dict[str, Any] = field(default_factory=dict)
    extra_output: str = ""
    extra_fields: list[Any] = field(default_factory=list)
    suggested_output: bool = False


@dataclass
class Config:
    hostname: str = ""
    state_dir: str = ".state"
    rules_files: list[str] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)
    rule_matching: str = "first"
    priority: str = "debug"
    json_output: bool = False
    time_format_iso_8601: bool = True
    append_output: list[AppendOutput] = field(default_factory=lambda: [AppendOutput(suggested_output=True)])
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    sensor: SensorConfig = field(default_factory=SensorConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    outputs_config: str = ""

    @property
    def state_path(self) -> Path:
        path = Path(self.state_dir)
        return path if path.is_absolute() else PROJECT_ROOT / path

    @property
    def host(self) -> str:
        return self.hostname or os.environ.get("FALCO_HOSTNAME") or socket.gethostname()


T = TypeVar("T")


def _build(cls: type[T], data: dict[str, Any], where: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{key}' (known: {', '.join(sorted(known))})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value or {}, f"{where}.{key}")  # type: ignore[arg-type]
        elif key == "append_output":
            kwargs[key] = [_build(AppendOutput, item, f"{where}.append_output[{i}]") for i, item in enumerate(value or [])]
        else:
            kwargs[key] = value
    return cls(**kwargs)


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def load_config(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> Config:
    """Defaults, then the YAML file (explicit, $PEREGRINE_CONFIG or ./peregrine.yaml), then PEREGRINE_* variables."""
    env = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    source = path or env.get("PEREGRINE_CONFIG")
    if source is None and Path(DEFAULT_CONFIG_NAME).exists():
        source = DEFAULT_CONFIG_NAME
    where = "defaults"
    if source:
        where = str(source)
        try:
            loaded = yaml.safe_load(Path(source).read_text())
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read configuration: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: invalid YAML: {exc}") from exc
        data = loaded or {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name == "PEREGRINE_CONFIG":
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        _set_path(data, parts, yaml.safe_load(raw) if raw else "")
    return _build(Config, data, where)
