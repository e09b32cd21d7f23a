"""File output: Falco text or JSON lines, fsynced before commit, rotated by size like Falco's file_output + logrotate."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from outputs.base import Output
from outputs.falco_format import json_line, text_line
from outputs.model import Alert, DeliveryError
from settings.config import ConfigError


@dataclass
class FileOptions:
    path: str = ""
    format: str = "json"       # text | json
    max_bytes: int = 100 << 20  # rotate when the file would grow past this; 0 = never
    backups: int = 5            # path.1 .. path.N kept
    fsync: bool = True

    def check(self, where: str) -> None:
        if not self.path:
            raise ConfigError(f"{where}.path: the file to write is required")
        if self.format not in ("text", "json"):
            raise ConfigError(f"{where}.format: 'text' or 'json', got '{self.format}'")


class FileOutput(Output):
    type_name = "file"
    Options = FileOptions
    batch_max = 1000
    _fh: IO[bytes] | None = None

    @property
    def path(self) -> Path:
        return Path(self.options.path)

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def _open(self) -> IO[bytes]:
        if self._fh is None:
            self._fh = open(self.path, "ab")
        return self._fh

    def _rotate(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for i in range(self.options.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.options.backups > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink()

    async def send(self, alerts: list[Alert]) -> None:
        render = json_line if self.options.format == "json" else text_line
        data = "".join(render(a) + "\n" for a in alerts).encode()
        try:
            size = self.path.stat().st_size if self.path.exists() else 0
            if self.options.max_bytes and size and size + len(data) > self.options.max_bytes:
                self._rotate()
            fh = self._open()
            fh.write(data)
            fh.flush()
            if self.options.fsync:
                os.fsync(fh.fileno())
        except OSError as exc:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            raise DeliveryError(f"{self.path}: {exc.strerror or exc}") from exc

    async def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
