"""Microsoft Teams incoming webhook: a MessageCard per alert (Falcosidekick's layout: colour, text, facts).

Teams renders card text as Markdown with some HTML, so alert strings are escaped for both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from outputs import priority
from outputs.escaping import teams_text
from outputs.falco_format import key_fields, text_line
from outputs.http import HttpOutput, send_each
from outputs.model import Alert
from settings.config import ConfigError


@dataclass
class TeamsOptions:
    webhookurl: str = ""
    activityimage: str = ""
    outputformat: str = "all"  # all | text | facts

    maxconcurrentrequests: int = 1  # Falcosidekick's key: alerts in flight at once (1 keeps their order)

    def check(self, where: str) -> None:
        if self.maxconcurrentrequests < 1:
            raise ConfigError(f"{where}.maxconcurrentrequests: must be at least 1")
        if not self.webhookurl.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.webhookurl: the Teams webhook URL is required")
        if self.outputformat not in ("all", "text", "facts"):
            raise ConfigError(f"{where}.outputformat: all, text or facts, got '{self.outputformat}'")


def teams_payload(alert: Alert, o: TeamsOptions) -> dict[str, Any]:
    prio = priority.normalise(alert.get("priority"))
    facts = [{"name": "rule", "value": teams_text(alert.get("rule", ""))},
             {"name": "priority", "value": teams_text(alert.get("priority", ""))},
             {"name": "hostname", "value": teams_text(alert.get("hostname", ""))},
             {"name": "source", "value": teams_text(alert.get("source", ""))},
             {"name": "time", "value": teams_text(alert.get("time", ""))}]
    if alert.get("tags"):
        facts.append({"name": "tags", "value": teams_text(", ".join(map(str, alert["tags"])))})
    if isinstance(alert.get("count"), int):
        facts.append({"name": "count", "value": str(alert["count"])})
    facts += [{"name": teams_text(k), "value": teams_text(v)} for k, v in key_fields(alert)]
    section: dict[str, Any] = {"activityTitle": "Peregrine", "activitySubtitle": teams_text(alert.get("rule", ""))}
    if o.activityimage:
        section["activityImage"] = o.activityimage
    if o.outputformat in ("all", "text"):
        section["text"] = teams_text(text_line(alert))
    if o.outputformat in ("all", "facts"):
        section["facts"] = facts
    return {"@type": "MessageCard", "@context": "https://schema.org/extensions",
            "summary": teams_text(f"{alert.get('priority', '')}: {alert.get('rule', '')}"),
            "themeColor": priority.COLOURS[prio].lstrip("#"), "sections": [section]}


class TeamsOutput(HttpOutput):
    type_name = "teams"
    Options = TeamsOptions

    async def start(self) -> None:
        await super().start()
        self.batch_max = self.options.maxconcurrentrequests

    async def send(self, alerts: list[Alert]) -> None:
        async def one(alert: Alert) -> None:
            await self.request("POST", self.options.webhookurl, content=orjson.dumps(teams_payload(alert, self.options)),
                               headers={"Content-Type": "application/json"})

        await send_each(alerts, one)
