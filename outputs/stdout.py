"""Falco's stdout output: the text line, or one JSON alert per line; flushed before offsets are committed."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from outputs.base import Output
from outputs.falco_format import json_line, text_line
from outputs.model import Alert
from settings.config import ConfigError


@dataclass
class StdoutOptions:
    format: str = "text"  # text | json

    def check(self, where: str) -> None:
        if self.format not in ("text", "json"):
            raise ConfigError(f"{where}.format: 'text' or 'json', got '{self.format}'")


class StdoutOutput(Output):
    type_name = "stdout"
    Options = StdoutOptions
    batch_max = 1000

    async def send(self, alerts: list[Alert]) -> None:
        render = json_line if self.options.format == "json" else text_line
        sys.stdout.write("".join(render(a) + "\n" for a in alerts))
        sys.stdout.flush()
