"""Per-output counters on /metrics: Falcosidekick's names where it has one, `peregrine_outputs_*` for the rest."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

# Falcosidekick: falcosecurity_falcosidekick_outputs_total{destination,status=ok|error}, one per alert and attempt.
OUTPUTS = Counter("falcosecurity_falcosidekick_outputs", "Alerts sent to an output, by result",
                  ["destination", "status"])
CONSUMED = Counter("peregrine_outputs_consumed", "Records read from the alerts topic", ["output"])
SENT = Counter("peregrine_outputs_sent", "Alerts the destination acknowledged", ["output", "type"])
FAILED = Counter("peregrine_outputs_failed", "Delivery attempts that failed (alerts)", ["output", "type"])
RETRIED = Counter("peregrine_outputs_retried", "Delivery retries after a failure", ["output", "type"])
DEAD_LETTERED = Counter("peregrine_outputs_dead_lettered", "Alerts written to the output's dead-letter topic",
                        ["output", "type", "reason"])
FILTERED = Counter("peregrine_outputs_filtered", "Alerts this output does not take (priority, rule, tag)", ["output"])
DEDUPLICATED = Counter("peregrine_outputs_deduplicated", "Alerts dropped as repeats of an id already handled",
                       ["output"])
AGGREGATED = Counter("peregrine_outputs_aggregated", "Alerts folded into an aggregated alert", ["output"])
PAUSED = Gauge("peregrine_outputs_paused", "1 while the output's consumption is paused (destination down)",
               ["output"])
LATENCY = Histogram("peregrine_outputs_send_seconds", "Time for the destination to acknowledge one send",
                    ["output", "type"])


def serve(address: str, port: int) -> None:
    """Start /metrics; a taken port is a one-line user error raised as OSError."""
    start_http_server(port, addr=address)
