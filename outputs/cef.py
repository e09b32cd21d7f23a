"""ArcSight CEF in Falcosidekick's layout and severities, with the escaping Falcosidekick leaves out.

`CEF:0|Falcosecurity|Falco|1.0|Falco Event|<rule>|<severity>|uuid= start= msg= source= hostname= outputfields= tags=`
"""

from __future__ import annotations

from outputs import priority
from outputs.escaping import cef_header, cef_value
from outputs.falco_format import alert_datetime
from outputs.model import Alert


def cef_line(alert: Alert) -> str:
    header = "|".join(["CEF:0", "Falcosecurity", "Falco", "1.0", "Falco Event",
                       cef_header(alert.get("rule", "")),
                       str(priority.CEF_SEVERITY[priority.normalise(alert.get("priority"))])])
    start = alert_datetime(alert).strftime("%Y-%m-%dT%H:%M:%SZ")
    ext = [("uuid", alert.get("uuid", "")), ("start", start), ("msg", alert.get("output", "")),
           ("source", alert.get("source", ""))]
    if alert.get("hostname"):
        ext.append(("hostname", alert["hostname"]))
    fields = alert.get("output_fields") or {}
    ext.append(("outputfields", " ".join(f"{k}:{v}" for k, v in sorted(fields.items()))))
    if alert.get("tags"):
        ext.append(("tags", ",".join(str(t) for t in alert["tags"])))
    if isinstance(alert.get("count"), int):
        ext.append(("cnt", alert["count"]))
    return header + "|" + " ".join(f"{k}={cef_value(v)}" for k, v in ext)
