"""The dashboard in a real headless Chromium (Debian's, driven by Playwright).

Skips cleanly where no browser is installed (``.ci/run`` installs Debian's chromium).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import httpx
import pytest
from service_support import served

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")
def test_dashboard_turns_a_row_to_margin_call_live(tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    profile = tempfile.mkdtemp(prefix="pm-chromium-")
    try:
        with served(tmp_path) as (base, desk, keys), sync_api.sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=FLAGS
            )
            try:
                page = ctx.new_page()
                page.goto(f"{base}/dashboard")
                assert "/dashboard/login" in page.url
                page.fill("#key", keys["risk"])
                page.click("#signin")
                page.wait_for_selector("#accounts tbody tr")
                rows = page.locator("#accounts tbody tr")
                assert rows.count() == 12
                page.wait_for_function("document.getElementById('live').textContent === 'live'")
                healthy = [
                    r
                    for r in desk.view.margins.values()
                    if r.status.value == "healthy" and any(p.currency == "BTC" for p in r.pools)
                ]
                assert healthy
                target = healthy[0].account_id
                assert page.locator(f"#row-{target} td.status").inner_text() == "healthy"
                # a market move through the API: BTC falls 45 %
                btc = desk.view.states["BTC"]
                up = {
                    "underlying": "BTC",
                    "time": "2026-02-25T10:00:00Z",
                    "index": btc.index * 0.55,
                    "perpetual": btc.index * 0.55,
                }
                r = httpx.post(
                    f"{base}/v1/market",
                    json={"updates": [up]},
                    headers={"Authorization": f"Bearer {keys['risk']}"},
                    timeout=30,
                )
                assert r.status_code == 200, r.text
                want = desk.view.margins[target].status.value
                assert want != "healthy"
                page.wait_for_function(
                    f"document.querySelector('#row-{target} td.status').textContent === '{want}'",
                    timeout=15_000,
                )
                assert page.locator("#feed li").count() >= 1
                # the account page: heatmap with the binding cell, and a what-if
                page.goto(f"{base}/dashboard/accounts/acct-001")
                page.wait_for_selector("svg.heatmap rect.binding")
                page.fill("#wi-instrument", "BTC-PERPETUAL")
                page.fill("#wi-quantity", "0.01")
                page.click("#wi-run")
                page.wait_for_selector("#wi-result p")
                text = page.locator("#wi-result p").inner_text()
                assert "ACCEPTED" in text or "REFUSED" in text
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
