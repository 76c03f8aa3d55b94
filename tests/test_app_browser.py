"""End to end in a real browser: headless Chromium, driven by Playwright, against a
live ``streamlit run`` of the app started here.

Upload a PDF, ask a question answered in it, see the answer and its source.
The screenshot goes to tmp_path; with ``KBQA_SAVE_SCREENSHOT=1`` it is also
copied to ``docs/screenshots/app.png``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PDF = FIXTURES / "pdfs" / "text" / "crazyones.pdf"
SCREENSHOT = ROOT / "docs" / "screenshots" / "app.png"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make test)"),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def live_app(tmp_path: Path) -> Iterator[str]:
    """``streamlit run app/web/main.py`` on a free port over an empty home; its URL."""
    port = _free_port()
    env = dict(os.environ)
    env["KBQA_HOME"] = str(tmp_path / "home")
    env.setdefault("KBQA_LLM_MODEL", "smollm2-135m-instruct")
    env.setdefault("KBQA_EMBEDDING_MODEL", "all-MiniLM-L6-v2")
    env.pop("KBQA_KB", None)
    log = open(tmp_path / "streamlit.log", "wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "app" / "web" / "main.py"),
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],  # fmt: skip
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.close()
                output = (tmp_path / "streamlit.log").read_text(errors="replace")
                pytest.fail(f"streamlit did not start:\n{output[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_upload_ask_and_see_the_cited_source(live_app: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=120_000)  # the first answer loads the models
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1100})
            page.set_default_timeout(120_000)
            page.goto(live_app)
            expect(page.get_by_text("This knowledge base is empty.")).to_be_visible()

            # Upload: the file goes to the background worker; the list shows it when done.
            page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(PDF)
            sidebar = page.locator('[data-testid="stSidebar"]')
            expect(sidebar.get_by_text("Documents · 1")).to_be_visible()
            expect(sidebar.get_by_text("Last upload · 1 added")).to_be_visible()
            listed = sidebar.get_by_text("crazyones.pdf", exact=True).filter(visible=True)
            expect(listed).to_have_count(1)
            expect(sidebar.get_by_text("1 page · 2 passages · today")).to_be_visible()

            # Ask: the answer streams in, then its sources appear under it.
            box = page.locator('[data-testid="stChatInputTextArea"]')
            expect(box).to_be_enabled()
            box.fill("Who are the crazy ones?")
            box.press("Enter")
            answer = page.locator(".kbqa-answer").last
            expect(answer).to_be_visible()
            expect(page.locator(".kbqa-cursor")).to_have_count(0)
            expect(page.get_by_text("Sources · 1")).to_be_visible()
            expect(answer).to_contain_text("[1]")
            text = answer.inner_text().lower()
            assert any(word in text for word in ("rebels", "misfits", "troublemakers")), text
            source = page.locator(".kbqa-source-head").first
            expect(source).to_contain_text("crazyones.pdf")
            expect(source).to_contain_text("page 1")
            expect(page.locator("mark.kbqa-cited").first).to_be_visible()
            picture = page.locator('[data-testid="stImage"] img').first
            expect(picture).to_be_visible()
            page.wait_for_function(  # the page picture has loaded and is a real picture
                "(img) => img.complete && img.naturalWidth > 100", arg=picture.element_handle()
            )

            page.wait_for_timeout(500)  # let the last layout settle before the picture
            shot = tmp_path / "app.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 20_000
    if os.environ.get("KBQA_SAVE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)
