"""Create the topology's topics through the admin API with the configured profile's credentials."""

from __future__ import annotations

from schemas.topology import TopicSpec, topology
from settings.config import Config
from settings.kafka_clients import admin_config, explain_kafka_error


class TopicCreationError(RuntimeError):
    """A topic the topology needs could not be created; names the topic and the broker's reason."""


def create_topics(cfg: Config, specs: list[TopicSpec] | None = None, timeout_s: float = 30.0) -> list[str]:
    """Create the missing topics (idempotent); returns the names created."""
    from confluent_kafka.admin import AdminClient, NewTopic

    errors: list[object] = []
    conf = admin_config(cfg.kafka)
    conf["error_cb"] = errors.append
    admin = AdminClient(conf)
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
    except Exception as exc:
        raise TopicCreationError(explain_kafka_error(errors[-1] if errors else exc, cfg.kafka)) from exc
    wanted = [s for s in (specs or topology(cfg)) if s.name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics([NewTopic(s.name, s.partitions, cfg.kafka.replication_factor,
                                            config=s.kafka_config()) for s in wanted])
    for name, fut in futures.items():
        try:
            fut.result(timeout_s)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise TopicCreationError(f"topic {name}: creation failed on {cfg.kafka.bootstrap_servers}: {exc}") from exc
    return [s.name for s in wanted]
