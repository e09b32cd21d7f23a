"""Who may read alerts: one generated access token (no default password), and browser sessions made from it.

The token is generated at first start, printed once, and only its scrypt hash is kept in the state directory.
Browsers exchange it for a random session id (HttpOnly, SameSite=Strict cookie); API clients send it as
`Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SESSION_COOKIE = "peregrine_ui_session"
SESSION_TTL_S = 12 * 3600
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def _scrypt(token: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(token.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)


@dataclass
class AccessToken:
    """The stored hash of the UI's access token; `new_token` holds the clear text only in the run that made it."""

    path: Path
    salt: bytes
    digest: bytes
    params: dict[str, int]
    new_token: str | None = None
    _verified: set[bytes] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load_or_create(cls, state_dir: Path, reset: bool = False) -> AccessToken:
        path = state_dir / "ui-token.json"
        if path.exists() and not reset:
            try:
                data = json.loads(path.read_text())
                return cls(path, bytes.fromhex(data["salt"]), bytes.fromhex(data["scrypt"]),
                           {k: int(data[k]) for k in ("n", "r", "p")})
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{path}: unreadable token file ({exc}); remove it or use --reset-token") from None
        token = secrets.token_urlsafe(24)
        salt = secrets.token_bytes(16)
        digest = _scrypt(token, salt, **_SCRYPT)
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"salt": salt.hex(), "scrypt": digest.hex(), **_SCRYPT}, fh)
        os.replace(tmp, path)
        return cls(path, salt, digest, dict(_SCRYPT), new_token=token)

    def verify(self, token: str) -> bool:
        """Constant-time check; a token that passed once is remembered by its SHA-256 so API calls stay cheap."""
        if not token or len(token) > 512:
            return False
        quick = hashlib.sha256(token.encode()).digest()
        with self._lock:
            if quick in self._verified:
                return True
        ok = hmac.compare_digest(_scrypt(token, self.salt, **self.params), self.digest)
        if ok:
            with self._lock:
                self._verified.add(quick)
        return ok


class Sessions:
    """Server-side browser sessions: random ids with an expiry; a restart logs everyone out."""

    def __init__(self, ttl_s: int = SESSION_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._expiry: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(self) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = time.monotonic()
            self._expiry = {k: v for k, v in self._expiry.items() if v > now}
            self._expiry[sid] = now + self.ttl_s
        return sid

    def valid(self, sid: str | None) -> bool:
        if not sid:
            return False
        with self._lock:
            expiry = self._expiry.get(sid)
            return expiry is not None and expiry > time.monotonic()

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._expiry.pop(sid or "", None)
