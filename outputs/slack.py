"""Slack incoming webhook: one readable message per alert (rule, priority colour, host, key fields).

Every alert-derived string is escaped for mrkdwn, so a command line holding `<!channel>` or `<url|text>` shows
as text instead of paging a channel or forging a link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from outputs import priority
from outputs.escaping import slack_code, slack_mrkdwn
from outputs.falco_format import alert_datetime, key_fields, text_line
from outputs.http import HttpOutput, send_each
from outputs.model import Alert
from settings.config import ConfigError


@dataclass
class SlackOptions:
    webhookurl: str = ""
    channel: str = ""
    username: str = "Peregrine"
    icon: str = ""
    footer: str = "Peregrine"
    outputformat: str = "all"  # all | text | fields (Falcosidekick's values)

    maxconcurrentrequests: int = 1  # Falcosidekick's key: alerts in flight at once (1 keeps their order)

    def check(self, where: str) -> None:
        if self.maxconcurrentrequests < 1:
            raise ConfigError(f"{where}.maxconcurrentrequests: must be at least 1")
        if not self.webhookurl.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.webhookurl: the Slack incoming-webhook URL is required")
        if self.outputformat not in ("all", "text", "fields"):
            raise ConfigError(f"{where}.outputformat: all, text or fields, got '{self.outputformat}'")


def slack_payload(alert: Alert, o: SlackOptions) -> dict[str, Any]:
    prio = priority.normalise(alert.get("priority"))
    fields: list[dict[str, Any]] = [
        {"title": "rule", "value": slack_mrkdwn(alert.get("rule", "")), "short": True},
        {"title": "priority", "value": slack_mrkdwn(alert.get("priority", "")), "short": True},
        {"title": "hostname", "value": slack_mrkdwn(alert.get("hostname", "")), "short": True},
        {"title": "source", "value": slack_mrkdwn(alert.get("source", "")), "short": True},
    ]
    if alert.get("tags"):
        fields.append({"title": "tags", "value": slack_mrkdwn(", ".join(map(str, alert["tags"]))), "short": False})
    if isinstance(alert.get("count"), int):
        fields.append({"title": "count", "value": str(alert["count"]), "short": True})
    for key, value in key_fields(alert):
        fields.append({"title": slack_mrkdwn(key), "value": f"`{slack_code(value)}`", "short": len(str(value)) < 36})
    text = slack_mrkdwn(text_line(alert))
    attachment: dict[str, Any] = {"fallback": text, "color": priority.COLOURS[prio], "mrkdwn_in": ["fields", "text"],
                                  "footer": slack_mrkdwn(o.footer), "ts": int(alert_datetime(alert).timestamp())}
    if o.outputformat in ("all", "text"):
        attachment["text"] = text
    if o.outputformat in ("all", "fields"):
        attachment["fields"] = fields
    payload: dict[str, Any] = {"text": slack_mrkdwn(f"{alert.get('priority', '')}: {alert.get('rule', '')}"),
                               "username": o.username, "attachments": [attachment]}
    if o.icon:
        payload["icon_url"] = o.icon
    if o.channel:
        payload["channel"] = o.channel
    return payload


class SlackOutput(HttpOutput):
    type_name = "slack"
    Options = SlackOptions

    async def start(self) -> None:
        await super().start()
        self.batch_max = self.options.maxconcurrentrequests

    async def send(self, alerts: list[Alert]) -> None:
        async def one(alert: Alert) -> None:
            await self.request("POST", self.options.webhookurl, content=orjson.dumps(slack_payload(alert, self.options)),
                               headers={"Content-Type": "application/json"})

        await send_each(alerts, one)
