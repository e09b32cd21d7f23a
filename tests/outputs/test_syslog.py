"""Syslog output against a real rsyslogd (Debian's): RFC 5424 over UDP, TCP and mutual TLS, in JSON and CEF."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from outputs_helpers import HOSTILE, build_output, make_alert, send, wait_for
from servers import Rsyslog, make_pki

from outputs.cef import cef_line
from outputs.syslog import SyslogOptions, rfc5424


@pytest.fixture(scope="module")
def rsyslog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rsyslog]:
    root = tmp_path_factory.mktemp("rsyslog")
    server = Rsyslog(root, make_pki(root / "pki"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """A strict CEF reader: 7 header fields split on unescaped '|', extensions split before unescaped ' key='."""
    assert line.startswith("CEF:")
    header, pos = [], 0
    for _ in range(7):
        m = re.compile(r"((?:[^|\\]|\\.)*)\|").match(line, pos)
        assert m, f"truncated CEF header: {line!r}"
        header.append(re.sub(r"\\(.)", r"\1", m.group(1)))
        pos = m.end()
    ext_text = line[pos:]
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9_.]+)=", ext_text))
    ext = {}
    for i, m in enumerate(keys):
        end = keys[i + 1].start() if i + 1 < len(keys) else len(ext_text)
        raw = ext_text[m.end():end]
        # an unescaped '=' in a value would have started a new key: the split above must be unambiguous
        assert not re.search(r"(?<!\\)=", raw.replace("\\\\", "")), f"unescaped '=' in {raw!r}"
        ext[m.group(1)] = re.sub(r"\\(.)", lambda c: {"n": "\n", "r": "\r"}.get(c.group(1), c.group(1)), raw)
    return header, ext


def parse_sd(sd: str) -> list[tuple[str, dict[str, str]]]:
    """RFC 5424 STRUCTURED-DATA, strictly: every PARAM-VALUE quoted with only \\" \\\\ \\] escapes."""
    elements, pos = [], 0
    element = re.compile(r'\[([^ =\]"]+)((?: [^ =\]"]+="(?:[^"\\\]]|\\["\\\]])*")*)\]')
    while pos < len(sd):
        m = element.match(sd, pos)
        assert m, f"malformed structured data at {sd[pos:]!r}"
        params = {k: re.sub(r'\\(["\\\]])', r"\1", v)
                  for k, v in re.findall(r' ([^ =\]"]+)="((?:[^"\\\]]|\\["\\\]])*)"', m.group(2))}
        elements.append((m.group(1), params))
        pos = m.end()
    return elements


@pytest.mark.parametrize("protocol", ["udp", "tcp", "tls"])
@pytest.mark.parametrize("fmt", ["json", "cef"])
def test_rfc5424_to_rsyslog(rsyslog: Rsyslog, protocol: str, fmt: str) -> None:
    before = len(rsyslog.lines())
    alerts = [make_alert(1, priority="Critical"), make_alert(2, priority="Notice", **HOSTILE)]
    tls = {"ca_file": str(rsyslog.pki.ca), "cert_file": str(rsyslog.pki.client_cert),
           "key_file": str(rsyslog.pki.client_key)}
    port = {"udp": rsyslog.udp, "tcp": rsyslog.tcp, "tls": rsyslog.tls}[protocol]
    output = build_output("syslog", host="127.0.0.1", port=port, protocol=protocol, format=fmt,
                          facility="local3", tls=tls if protocol == "tls" else {})
    send(output, alerts)
    lines = rsyslog.wait_lines(before + 2)[before:]
    assert len(lines) == 2
    for line, alert in zip(sorted(lines, key=lambda x: "Notice" in x), alerts, strict=True):
        pri, ts, host, app, msgid, sd, msg = line.split("|", 6)
        severity = {"Critical": 2, "Notice": 5}[alert["priority"]]
        assert int(pri) == 19 * 8 + severity
        assert ts.startswith("2026-11-28T21:00:13.")
        assert (host, app, msgid) == ("test-host", "falco", "alert")
        assert parse_sd(sd) == [("peregrine@32473", {"uuid": alert["uuid"], "rule": alert["rule"],
                                                     "priority": alert["priority"], "source": "syscall"})]
        if fmt == "json":
            assert json.loads(msg) == alert
        else:
            header, ext = parse_cef(msg)
            assert header == ["CEF:0", "Falcosecurity", "Falco", "1.0", "Falco Event", alert["rule"],
                              {"Critical": "8", "Notice": "4"}[alert["priority"]]]
            assert list(ext) == ["uuid", "start", "msg", "source", "hostname", "outputfields", "tags"]
            assert ext["msg"] == alert["output"]
            assert ext["uuid"] == alert["uuid"] and ext["start"] == "2026-11-28T21:00:13Z"
            assert ext["tags"] == "filesystem,mitre_credential_access"


def test_cef_injection_cannot_add_fields_or_lines() -> None:
    alert = make_alert(3, rule="Rule | with = and \\ in it", **HOSTILE)
    line = cef_line(alert)
    assert "\n" not in line and "\r" not in line
    header, ext = parse_cef(line)
    assert header[5] == "Rule | with = and \\ in it" and len(header) == 7
    assert set(ext) == {"uuid", "start", "msg", "source", "hostname", "outputfields", "tags"}
    assert "proc.cmdline:" + HOSTILE["proc.cmdline"] in ext["outputfields"]
    assert "fd.name:" + HOSTILE["fd.name"] in ext["outputfields"]


def test_structured_data_injection_stays_one_element() -> None:
    alert = make_alert(4, rule='x"] [evil@1 a="b', hostname="host name\nwith\x00junk")
    message = rfc5424(alert, SyslogOptions()).decode()
    assert "\n" not in message
    _pri_version, _ts, host, _app, _procid, _msgid, rest = message.split(" ", 6)
    assert host == "host_name_with_junk"
    end = rest.index("] ") + 1
    # the first unescaped "]" closes the one element; the JSON MSG follows
    while rest[end - 2] == "\\":
        end = rest.index("] ", end) + 1
    assert parse_sd(rest[:end]) == [("peregrine@32473", {"uuid": alert["uuid"], "rule": 'x"] [evil@1 a="b',
                                                         "priority": "Warning", "source": "syscall"})]
    assert json.loads(rest[end + 1:]) == alert


def test_tcp_reconnects_after_server_restart(rsyslog: Rsyslog, tmp_path: Path) -> None:
    output = build_output("syslog", port=rsyslog.tcp, protocol="tcp")
    import asyncio

    def wait_uuid(uid: str) -> None:
        wait_for(lambda: any(uid in line for line in rsyslog.lines()), timeout=30, what=f"alert {uid} in rsyslog")

    async def go() -> None:
        await output.start()
        await output.send([make_alert(10)])
        wait_uuid(make_alert(10)["uuid"])
        rsyslog.stop()
        rsyslog.start()
        # The old connection is dead: the output notices (readable socket) and reconnects instead of
        # writing the next frame into a closed socket and losing it.
        await output.send([make_alert(11)])
        await output.close()
        wait_uuid(make_alert(11)["uuid"])

    asyncio.run(go())
