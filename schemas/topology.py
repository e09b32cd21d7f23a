"""Every topic Peregrine uses, defined once: rendered as Kafka admin calls, Bicep for Event Hubs, and docs.

What Azure pre-creates (Event Hubs has no topic auto-creation for us) is rendered from this list, so it is
always what the code uses; `check_fits` proves the list fits an Event Hubs tier.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from settings.config import Config

DAY_MS = 24 * 3600 * 1000
HOUR_MS = 3600 * 1000
# Written by Azure Monitor (the AKS diagnostic setting), read by a later Kubernetes-audit source.
KUBE_AUDIT_TOPIC = "peregrine.kube-audit"
KUBE_AUDIT_PARTITIONS = 4
# Event Hubs keeps a compacted hub's tombstones this long.
TOMBSTONE_RETENTION_HOURS = 24


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

    @property
    def compacted(self) -> bool:
        return self.cleanup_policy == "compact"


@dataclass(frozen=True)
class EventHubsTier:
    """Per-namespace quotas of an Event Hubs tier (Microsoft's event-hubs-quotas page)."""

    name: str
    max_event_hubs: int
    max_partitions: int
    max_retention_days: int
    compaction: bool = True


EVENTHUBS_STANDARD = EventHubsTier("Standard", max_event_hubs=10, max_partitions=32, max_retention_days=7)
EVENTHUBS_PREMIUM = EventHubsTier("Premium", max_event_hubs=100, max_partitions=100, max_retention_days=90)
EVENTHUBS_TIERS = {t.name.lower(): t for t in (EVENTHUBS_STANDARD, EVENTHUBS_PREMIUM)}

# Least privilege per role (namespace-level authorization rules): who may send and who may listen.
EVENTHUBS_ROLE_RIGHTS: dict[str, tuple[str, ...]] = {
    "sensor": ("Send",),
    "processor": ("Listen", "Send"),
    "outputs": ("Listen",),
    "ui": ("Listen",),
}


def changelog_topic(cfg: Config, table: str) -> str:
    """Faust names a table's changelog `<app_id>-<table>-changelog`."""
    return f"{cfg.worker.app_id}-{table}-changelog"


def outputs_dlq_topic(cfg: Config) -> str:
    """One dead-letter topic shared by every output (keyed by output name): a topic per output would not fit 10 hubs."""
    return f"{cfg.kafka.topics.alerts}.dlq"


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
    topics += [
        TopicSpec(outputs_dlq_topic(cfg), 1, 7 * DAY_MS,
                  purpose="alerts an output gave up on, keyed by output name, with the reason in headers"),
        TopicSpec(KUBE_AUDIT_TOPIC, KUBE_AUDIT_PARTITIONS, 7 * DAY_MS,
                  purpose="AKS kube-audit logs streamed by the cluster's diagnostic setting (Azure writes it)"),
    ]
    return topics


def check_fits(topics: list[TopicSpec], tier: EventHubsTier = EVENTHUBS_STANDARD) -> list[str]:
    """Every way the topology breaks the tier's quotas, one line each (empty when it fits)."""
    problems = []
    if len(topics) > tier.max_event_hubs:
        problems.append(f"{len(topics)} topics, but Event Hubs {tier.name} allows {tier.max_event_hubs} event hubs "
                        f"per namespace")
    names = [t.name for t in topics]
    problems += [f"{n}: defined twice" for n in sorted({n for n in names if names.count(n) > 1})]
    for t in topics:
        if not 1 <= t.partitions <= tier.max_partitions:
            problems.append(f"{t.name}: {t.partitions} partitions, {tier.name} allows 1..{tier.max_partitions}")
        if t.compacted and not tier.compaction:
            problems.append(f"{t.name}: compacted, {tier.name} has no log compaction")
        if not t.compacted and not 0 < t.retention_ms <= tier.max_retention_days * DAY_MS:
            problems.append(f"{t.name}: retention {t.retention_ms} ms, {tier.name} keeps 1 hour to "
                            f"{tier.max_retention_days} days")
        if t.cleanup_policy not in ("delete", "compact"):
            problems.append(f"{t.name}: cleanup policy '{t.cleanup_policy}' has no Event Hubs equivalent")
    return problems


# -- renderings -------------------------------------------------------------------------------------------------

def render_admin(topics: list[TopicSpec], bootstrap: str = "kafka:9092", replication_factor: int = 1,
                 tool: str = "/opt/kafka/bin/kafka-topics.sh") -> str:
    """kafka-topics.sh calls (the Kafka admin API from a shell), one per topic; idempotent."""
    lines = []
    for t in topics:
        args = [tool, "--bootstrap-server", bootstrap, "--create", "--if-not-exists", "--topic", t.name,
                "--partitions", str(t.partitions), "--replication-factor", str(replication_factor)]
        for key, value in t.kafka_config().items():
            args += ["--config", f"{key}={value}"]
        lines.append(shlex.join(args))
    return "\n".join(lines) + "\n"


def _bicep_str(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def render_bicep(topics: list[TopicSpec], tier: EventHubsTier = EVENTHUBS_STANDARD) -> str:
    """The Event Hubs namespace, one event hub per topic, and one authorization rule per role."""
    hubs = []
    for t in topics:
        retention_h = max(1, t.retention_ms // HOUR_MS) if not t.compacted else 0
        hubs.append(f"  {{ name: {_bicep_str(t.name)}, partitions: {t.partitions}, "
                    f"cleanupPolicy: '{'Compact' if t.compacted else 'Delete'}', retentionHours: {retention_h} }}")
    roles = [f"  {{ name: 'peregrine-{role}', rights: [{', '.join(_bicep_str(r) for r in rights)}] }}"
             for role, rights in EVENTHUBS_ROLE_RIGHTS.items()]
    return BICEP_TEMPLATE.format(sku=tier.name, hubs="\n".join(hubs), roles="\n".join(roles),
                                 tombstone=TOMBSTONE_RETENTION_HOURS, audit=_bicep_str(KUBE_AUDIT_TOPIC))


def render_markdown(topics: list[TopicSpec], tier: EventHubsTier = EVENTHUBS_STANDARD) -> str:
    rows = ["| topic | partitions | cleanup | retention | purpose |", "|---|---|---|---|---|"]
    for t in topics:
        retention = "forever (compacted)" if t.compacted else f"{t.retention_ms / DAY_MS:g} days"
        rows.append(f"| `{t.name}` | {t.partitions} | {t.cleanup_policy} | {retention} | {t.purpose} |")
    fits = check_fits(topics, tier)
    verdict = (f"Fits Event Hubs {tier.name}: {len(topics)} of {tier.max_event_hubs} event hubs, at most "
               f"{max(t.partitions for t in topics)} of {tier.max_partitions} partitions each."
               if not fits else f"Does NOT fit Event Hubs {tier.name}: " + "; ".join(fits))
    rights = ", ".join(f"{role}: {'+'.join(r)}" for role, r in EVENTHUBS_ROLE_RIGHTS.items())
    return "\n".join(["# Peregrine topics", "", *rows, "", verdict, "",
                       f"Event Hubs authorization rules (namespace level, least privilege): {rights}.", ""])


BICEP_TEMPLATE = """// Generated by `peregrine topology --format bicep` from schemas/topology.py: do not edit by hand.
// The Event Hubs namespace Peregrine talks Kafka to, one event hub per topic, one authorization rule per role.
@description('Event Hubs namespace name (globally unique; the Kafka endpoint is <name>.servicebus.windows.net:9093).')
param namespaceName string

param location string = resourceGroup().location

@description('Throughput units (Standard) or processing units (Premium).')
@minValue(1)
param capacity int = 1

@description('Extra throughput units Azure may add under load (0 disables auto-inflate; Standard only).')
@minValue(0)
param maximumThroughputUnits int = 0

var eventHubs = [
{hubs}
]

var roles = [
{roles}
]

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {{
  name: namespaceName
  location: location
  sku: {{
    name: '{sku}'
    tier: '{sku}'
    capacity: capacity
  }}
  properties: {{
    minimumTlsVersion: '1.2'
    isAutoInflateEnabled: maximumThroughputUnits > 0
    maximumThroughputUnits: maximumThroughputUnits
  }}
}}

resource hubs 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = [for hub in eventHubs: {{
  parent: namespace
  name: hub.name
  properties: {{
    partitionCount: hub.partitions
    retentionDescription: hub.cleanupPolicy == 'Compact' ? {{
      cleanupPolicy: 'Compact'
      tombstoneRetentionTimeInHours: {tombstone}
    }} : {{
      cleanupPolicy: 'Delete'
      retentionTimeInHours: hub.retentionHours
    }}
  }}
}}]

resource roleRules 'Microsoft.EventHub/namespaces/authorizationRules@2024-01-01' = [for role in roles: {{
  parent: namespace
  name: role.name
  properties: {{
    rights: role.rights
  }}
}}]

// Azure Monitor needs Manage+Send+Listen on the rule a diagnostic setting streams through.
resource diagnosticsRule 'Microsoft.EventHub/namespaces/authorizationRules@2024-01-01' = {{
  parent: namespace
  name: 'azure-diagnostics'
  properties: {{
    rights: [
      'Manage'
      'Listen'
      'Send'
    ]
  }}
}}

output namespaceId string = namespace.id
output kafkaBootstrap string = '${{namespaceName}}.servicebus.windows.net:9093'
output kubeAuditEventHub string = {audit}
output diagnosticsRuleId string = diagnosticsRule.id
output roleRuleIds array = [for (role, i) in roles: roleRules[i].id]
"""

