"""Worker metrics, with Falco's names where Falco has one (falcosecurity_falco_*), Peregrine's otherwise."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes

RULE_MATCHES = Counter("falcosecurity_falco_rules_matches_total", "Rule matches", ["rule_name", "priority", "source"],
                       registry=REGISTRY)
EVENTS = Counter("falcosecurity_falco_num_evts_total", "Events processed by the rules engine", registry=REGISTRY)
RECORDS = Counter("peregrine_worker_records_total", "Event batch records consumed", ["topic", "partition"],
                  registry=REGISTRY)
DLQ = Counter("peregrine_worker_dlq_records_total", "Records and events sent to the dead-letter topic", ["reason"],
              registry=REGISTRY)
ALERTS = Counter("peregrine_worker_alerts_produced_total", "Alerts acknowledged by the alerts topic", registry=REGISTRY)
RULES_LOADS = Counter("peregrine_worker_rules_loads_total", "Rule set loads (result=ok|failed)", ["result"],
                      registry=REGISTRY)
RELOAD_TS = Gauge("falcosecurity_falco_reload_timestamp_nanoseconds", "Last successful rules load", registry=REGISTRY)
N_THREADS = Gauge("falcosecurity_falco_n_threads", "Processes in the thread table (all hosts of this worker)",
                  registry=REGISTRY)
N_DROPS_FULL_THREADTABLE = Gauge("falcosecurity_falco_n_drops_full_threadtable",
                                 "Processes not tracked because a host's table was full", registry=REGISTRY)
PURGED = Gauge("peregrine_worker_threads_purged", "Exited processes purged from the table after the grace period",
               registry=REGISTRY)
STATE_ENTRIES = Gauge("peregrine_worker_state_entries", "Entries in each worker table (all hosts of this worker)",
                      ["table"], registry=REGISTRY)
DNS_NAMES = Gauge("peregrine_worker_dns_names", "Names the rules compare fd.sip.name & co. with (state=resolved|unresolved)",
                  ["state"], registry=REGISTRY)
STALLS = Counter("peregrine_worker_partition_stalls_total",
                 "Times Faust stopped delivering an events partition while records waited (faust-streaming #629); the "
                 "worker then reads that partition itself", ["partition"], registry=REGISTRY)
STALL_RECORDS = Counter("peregrine_worker_stall_records_total",
                        "Records the worker read itself from a partition Faust stopped delivering", registry=REGISTRY)
HOSTS = Gauge("peregrine_worker_hosts", "Hosts with processes in this worker's thread table", registry=REGISTRY)
CONSUMER_LAG = Gauge("peregrine_worker_consumer_lag", "Records behind the end of the partition", ["topic", "partition"],
                     registry=REGISTRY)
BATCH_SECONDS = Histogram("peregrine_worker_batch_seconds", "Time to process one event batch record",
                          buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5), registry=REGISTRY)
OFFSET_GAPS = Gauge("peregrine_worker_offset_gaps", "Records that arrived past a skipped offset (seeked back and re-read)",
                    registry=REGISTRY)
REPLAYS_SKIPPED = Gauge("peregrine_worker_replays_skipped", "Records re-delivered after they were processed (dropped)",
                        registry=REGISTRY)
