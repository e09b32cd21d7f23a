"""Every topic Peregrine uses, defined once: rendered as Kafka admin calls, Bicep for Event Hubs, and docs."""

from __future__ import annotations

from dataclasses import dataclass, field

from settings.config import Config

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int
    cleanup_policy: str = "delete"
    purpose: str = ""
    config: dict[str, str] = field(default_factory=dict)

    def kafka_config(self) -> dict[str, str]:
        conf = {"cleanup.policy": self.cleanup_policy, "retention.ms": str(self.retention_ms)}
        conf.update(self.config)
        return conf


def changelog_topic(cfg: Config, table: str) -> str:
    """Faust names a table's changelog `<app_id>-<table>-changelog`."""
    return f"{cfg.worker.app_id}-{table}-changelog"


WORKER_TABLES = ("proctable", "containers", "users")


def topology(cfg: Config) -> list[TopicSpec]:
    t = cfg.kafka.topics
    events_p = cfg.kafka.events_partitions
    topics = [
        TopicSpec(t.events, events_p, 7 * DAY_MS, purpose="syscall event batches (Avro EventBatch), keyed by host"),
        TopicSpec(t.alerts, cfg.kafka.alerts_partitions, 7 * DAY_MS, purpose="Falco JSON alerts"),
        TopicSpec(t.rules, 1, -1, "compact", purpose="published rule files, keyed by file name"),
        TopicSpec(t.events_dlq, 1, 7 * DAY_MS, purpose="undecodable event records and engine failures"),
        TopicSpec(t.hunt, 1, 7 * DAY_MS, purpose="retro-hunt results (Falco JSON alerts)"),
    ]
    # Table changelogs must be co-partitioned with the events topic: a host's state lives beside its events.
    topics += [TopicSpec(changelog_topic(cfg, name), events_p, -1, "compact", purpose=f"worker table '{name}'")
               for name in WORKER_TABLES]
    return topics
