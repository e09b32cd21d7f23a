"""Escaping for every format we write: alert text carries attacker-chosen paths, command lines and names.

Each function makes a value inert in one syntax, so a crafted `proc.cmdline` cannot add a CEF extension,
close a syslog SD-ELEMENT, ping `@channel` in Slack or inject markup into Teams or HTML.
"""

from __future__ import annotations

import html as _html
import re

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def cef_header(value: object) -> str:
    """CEF header field: `\\` and `|` escaped; no line breaks allowed in the header."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return _CONTROL.sub(" ", text.replace("\r\n", " ").replace("\n", " ").replace("\r", " "))


def cef_value(value: object) -> str:
    """CEF extension value: `\\`, `=` escaped, CR/LF written as `\\r`/`\\n` (CEF spec, ArcSight)."""
    text = str(value).replace("\\", "\\\\").replace("=", "\\=")
    return _CONTROL.sub(" ", text.replace("\r", "\\r").replace("\n", "\\n"))


def cef_key(value: object) -> str:
    """CEF extension keys are alphanumeric; anything else is dropped."""
    return re.sub(r"[^A-Za-z0-9_.]", "", str(value)) or "field"


def sd_param_value(value: object) -> str:
    """RFC 5424 PARAM-VALUE: `"`, `\\` and `]` must be escaped with a backslash (section 6.3.3)."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")
    return _CONTROL.sub(" ", text.replace("\r", " ").replace("\n", " "))


def sd_name(value: object, limit: int = 32) -> str:
    """RFC 5424 SD-NAME: printable US-ASCII except `=`, space, `]`, `"`; at most 32 characters."""
    text = re.sub(r'[^\x21-\x7e]|[= \]"]', "_", str(value))
    return (text or "_")[:limit]


def header_token(value: object, limit: int) -> str:
    """RFC 5424 header fields (HOSTNAME, APP-NAME, MSGID): printable US-ASCII, no space; NILVALUE when empty."""
    text = re.sub(r"[^\x21-\x7e]", "_", str(value or ""))[:limit]
    return text or "-"


def slack_mrkdwn(value: object) -> str:
    """Slack's three control characters (`&`, `<`, `>`): stops `<!channel>` pings and forged `<url|links>`."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_code(value: object) -> str:
    """Text shown inside a Slack code span: backticks cannot end the span early."""
    return slack_mrkdwn(value).replace("`", "\u02cb")


def html(value: object) -> str:
    return _html.escape(str(value), quote=True)


_MARKDOWN = re.compile(r"([\\`*_\[\]#])")


def teams_text(value: object) -> str:
    """Teams renders card text as Markdown with some HTML: escape both, so neither links nor tags survive."""
    return _MARKDOWN.sub(r"\\\1", html(value)).replace("\r", " ").replace("\n", "<br>")
