"""The studio in a real browser: Debian's chromium driven headless by Playwright. Load the page, see the grid,
switch a variation off and see the grid change, pick a whole class, edit a per-class range, save a config; the
screenshot is kept as an artefact
(test-artifacts/studio.png, or $MIXREAL_TEST_ARTIFACTS)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _need(what: str, ok: bool):
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing: scripts/setup.sh --test installs it")
        pytest.skip(f"{what} not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_page_in_chromium(default_models, tmp_path):
    _need("chromium", CHROMIUM is not None)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright", False)
    port = _free_port()
    server = subprocess.Popen([sys.executable, "cli.py", "studio", "--models", str(default_models), "--port",
                               str(port), "--no-browser", "--save-dir", str(tmp_path)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.3)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_function("document.getElementById('grid').src.startsWith('data:image/png')", timeout=60_000)
            before = page.eval_on_selector("#grid", "e => e.src")
            page.uncheck('#section-background input[data-path="background.enabled"]')
            page.wait_for_function(f"document.getElementById('grid').src !== {before!r}", timeout=60_000)
            assert page.inner_text("#error") == ""
            framed = page.eval_on_selector("#grid", "e => e.src")
            page.check('#controls input[data-off="camera.fill"]')  # bounding-sphere framing instead
            page.wait_for_function(f"document.getElementById('grid').src !== {framed!r}", timeout=60_000)
            assert page.inner_text("#error") == ""
            # a whole class at once: every car model checked, more images in the grid
            cars = page.eval_on_selector_all('#models div[data-class="car"] label.model', "e => e.length")
            one_class = page.eval_on_selector("#grid", "e => e.src")
            page.check('#models input[data-class="car"]')
            page.wait_for_function(f"document.getElementById('grid').src !== {one_class!r}", timeout=60_000)
            checked = page.eval_on_selector_all('#models div[data-class="car"] label.model input:checked',
                                                "e => e.length")
            assert cars > 1 and checked == cars
            # the per-class camera elevation is a table of rows: set cars to a view from straight above
            row = page.locator('#controls table[data-ranges="camera.elevation_by_class"] tr', has=page.locator(
                'input.cls[value="car"]'))
            row.locator('input[type="number"]').nth(0).fill("80")
            from_above = page.eval_on_selector("#grid", "e => e.src")
            row.locator('input[type="number"]').nth(1).fill("89")
            page.wait_for_function(f"document.getElementById('grid').src !== {from_above!r}", timeout=60_000)
            assert page.inner_text("#error") == ""
            page.click("#grid", position={"x": 10, "y": 10})
            assert '"params"' in page.inner_text("#params")
            page.fill("#save-name", "from-browser.toml")
            page.click("#save")
            page.wait_for_function("document.getElementById('saved').textContent.includes('mixreal render')")
            page.screenshot(path=str(tmp_path / "studio.png"), full_page=True)
            browser.close()
        saved = (tmp_path / "from-browser.toml").read_text()
        assert "[background]\nenabled = false" in saved and 'fill = "none"' in saved
        assert "car = [80.0, 89.0]" in saved
        assert (tmp_path / "studio.png").stat().st_size > 10_000
        # the artefact outlives pytest's tmp_path: where CI (or a person) can look at what the browser saw
        keep = Path(os.environ.get("MIXREAL_TEST_ARTIFACTS", REPO / "test-artifacts"))
        keep.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tmp_path / "studio.png", keep / "studio.png")
    finally:
        server.terminate()
        server.wait(timeout=10)
