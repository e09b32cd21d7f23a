"""End to end in Debian's headless Chromium, driven over the DevTools protocol: alerts go through the real alerts
topic into the UI's store; the test logs in, reads the dashboard, filters, searches, opens a detail view and
watches a new alert arrive live. Screenshots of each step are kept under artifacts/ui/."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from test_ui_support import HOSTILE, produce, running_ui, wait_for

from outputs.ui.demo import synthetic_alert, synthetic_alerts
from outputs.ui.store import NS
from settings.config import Config

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "artifacts" / "ui"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--hide-scrollbars", "--window-size=1440,1000"]

pytestmark = [pytest.mark.kafka, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")]


class Page:
    """A DevTools-protocol session on one page: evaluate JS, wait for conditions, take screenshots."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.errors: list[str] = []

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        await self.ws.send_str(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads((await self.ws.receive(timeout=60)).data)
            if msg.get("method") == "Runtime.exceptionThrown":
                self.errors.append(json.dumps(msg["params"]["exceptionDetails"])[:500])
            if msg.get("method") == "Log.entryAdded" and msg["params"]["entry"]["level"] == "error":
                self.errors.append(msg["params"]["entry"].get("text", ""))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg["result"]

    async def js(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"JS error in {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def until(self, expression: str, what: str, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what} ({expression})")
            await asyncio.sleep(0.2)

    async def settled(self, before: str | None) -> str:
        """Wait for the app to finish a refresh that started after `before` (body[data-ready] changes)."""
        return str(await self.until(
            f"document.body.dataset.loading === '' && document.body.dataset.ready !== {json.dumps(before)} "
            "&& document.body.dataset.ready", "the page to settle"))

    async def ready_mark(self) -> str | None:
        value = await self.js("document.body.dataset.ready || null")
        return str(value) if value else None

    async def screenshot(self, name: str) -> Path:
        data = await self.send("Page.captureScreenshot", format="png")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        path.write_bytes(base64.b64decode(data["data"]))
        return path


async def _open_page(port: int) -> tuple[aiohttp.ClientSession, Page]:
    session = aiohttp.ClientSession()
    targets = await (await session.get(f"http://127.0.0.1:{port}/json/list")).json()
    page_target = next(t for t in targets if t["type"] == "page")
    ws = await session.ws_connect(page_target["webSocketDebuggerUrl"], max_msg_size=0)
    page = Page(ws)
    for domain in ("Page", "Runtime", "Log"):
        await page.send(f"{domain}.enable")
    await page.send("Emulation.setDeviceMetricsOverride", width=1440, height=1000, deviceScaleFactor=1, mobile=False)
    return session, page


async def _navigate(page: Page, url: str) -> None:
    await page.send("Page.navigate", url=url)
    await page.until("document.readyState === 'complete'", f"{url} to load")


def _launch_chromium(profile: Path) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    port_file = profile / "DevToolsActivePort"
    wait_for(lambda: port_file.exists() and port_file.read_text().strip(), "Chromium's DevTools port", 60)
    return proc, int(port_file.read_text().split()[0])


async def _scenario(page: Page, ui_url: str, token: str, alerts: list[dict[str, Any]], cfg: Config) -> None:
    # 1. Everything but the login form is closed: the dashboard URL shows the login form.
    await _navigate(page, ui_url + "#dashboard?since=24h")
    assert await page.js("!!document.querySelector('input[name=token]')")
    await page.screenshot("01-login")
    await page.js(f"document.getElementById('token').value = {json.dumps(token)}; "
                  "document.querySelector('form').submit(); true")
    await page.until("location.pathname === '/' && !!document.getElementById('prio-cards')", "the app after login")
    await page.settled(None)
    page.errors.clear()  # the 401 of the login form itself is expected
    await page.until(f"document.getElementById('total-count').textContent === '{len(alerts):,}'",
                     "the dashboard total to match the alerts on the topic")
    expected_rules = {a["rule"] for a in alerts}
    shown_rules = set(await page.js("[...document.querySelectorAll('#by-rule .label')].map(e => e.textContent)"))
    assert shown_rules and shown_rules <= expected_rules
    assert await page.js("document.querySelectorAll('#timeline rect.bar').length") > 0
    await page.screenshot("02-dashboard")

    # 2. Filter on a priority through the filter menu: counts follow.
    critical = sum(a["priority"] == "Critical" for a in alerts)
    mark = await page.ready_mark()
    await page.js("var s = document.getElementById('add-priority'); s.value = 'Critical'; "
                  "s.dispatchEvent(new Event('change')); true")
    await page.settled(mark)
    await page.until(f"document.getElementById('total-count').textContent === '{critical:,}'", "filtered total")
    assert await page.js("document.querySelector('.chip[data-dim=priority] span').textContent") == "Critical"
    await page.screenshot("03-dashboard-critical")

    # 3. Event table with the filter, then a full-text search for a hostile container name.
    mark = await page.ready_mark()
    await page.js("document.getElementById('nav-events').click(); true")
    await page.settled(mark)
    rows = await page.js("[...document.querySelectorAll('#events-body tr')].map(r => r.children[1].textContent)")
    assert rows and set(rows) == {"Critical"} and len(rows) == min(critical, 100)
    mark = await page.ready_mark()
    await page.js("document.querySelector('.chip[data-dim=priority] button').click(); true")
    await page.settled(mark)
    mark = await page.ready_mark()
    await page.js("var q = document.getElementById('search'); q.value = 'onerror'; "
                  "q.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'})); true")
    await page.settled(mark)
    outputs = await page.js("[...document.querySelectorAll('#events-body td.output')].map(td => td.textContent)")
    assert len(outputs) == 1 and HOSTILE[1] in outputs[0], outputs
    await page.screenshot("04-events-search")

    # 4. Detail view of a hostile alert: the payloads are shown as text and none of them ran.
    mark = await page.ready_mark()
    await page.js("var q = document.getElementById('search'); q.value = 'window'; "
                  "q.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'})); true")
    await page.settled(mark)
    await page.js("document.querySelector('#events-body tr').click(); true")
    await page.until("!document.getElementById('detail').hidden && !!document.getElementById('ancestry')",
                     "the detail view")
    detail = await page.js("document.getElementById('detail').innerText")
    assert any(h in detail for h in HOSTILE)
    chain = await page.js("[...document.querySelectorAll('#ancestry .pname')].map(e => e.textContent)")
    assert chain[:3] == ["systemd", "containerd", "containerd-shim"] and len(chain) == 5
    fields = await page.js("document.querySelectorAll('#detail-fields tr').length")
    assert fields >= 18
    await page.screenshot("05-detail")
    assert await page.js("typeof window.__xss") == "undefined"
    assert await page.js("document.querySelectorAll('#events-body img, #detail img, #events-body svg, #detail svg, "
                         "#events-body script, #detail script').length") == 0
    await page.js("document.getElementById('detail-close').click(); true")

    # 5. Live table: an alert produced now shows up without a reload.
    mark = await page.ready_mark()
    await page.js("var q = document.getElementById('search'); q.value = ''; "
                  "q.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'})); true")
    await page.settled(mark)
    fresh = synthetic_alert(random.Random(77), time.time_ns(), 123_456)
    fresh["rule"] = "Live arrival check"
    produce(cfg, [fresh])
    await page.until(f"[...document.querySelectorAll('#events-body tr')].some(r => r.dataset.uuid === '{fresh['uuid']}')",
                     "the new alert in the live table", timeout=45)
    await page.screenshot("06-events-live")
    assert await page.js("typeof window.__xss") == "undefined"
    assert not page.errors, page.errors


def test_dashboard_filter_search_detail_and_live_table_in_chromium(kafka_config: Config, tmp_path: Path):
    now = time.time_ns()
    rng = random.Random(5)
    alerts = list(synthetic_alerts(400, now - 20 * 3600 * NS, now - 60 * NS, seed=21))
    alerts += [synthetic_alert(rng, now - (30 + i) * NS, 50_000 + i, hostile=h) for i, h in enumerate(HOSTILE)]
    produce(kafka_config, alerts)
    with running_ui(kafka_config, tmp_path / "ui.db", consume=True) as ui:
        client = ui.client()
        wait_for(lambda: client.get("/api/counts").json()["total"] == len(alerts), "ingest from the alerts topic")
        profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=tmp_path))
        proc, port = _launch_chromium(profile)

        async def drive() -> None:
            session, page = await _open_page(port)
            try:
                await _scenario(page, ui.url, ui.token, alerts, kafka_config)
            finally:
                await page.ws.close()
                await session.close()

        try:
            asyncio.run(drive())
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
