"""Open WebUI in front of ``kbqa api``, end to end in a real browser (issue 23).

    python bench/open_webui.py [--version 0.12.4] [--venv build/open-webui-venv]
                               [--screenshot docs/screenshots/open-webui.png]
                               [--out bench/results/open_webui.json]

Not a test (``make test`` never runs it: Open WebUI is a ~7 GB install with its
dependencies). It installs ``open-webui==VERSION`` into its own virtual environment
(once; reused while the version matches), builds the default knowledge base from
corpora/ in a temporary folder, starts ``kbqa api`` on a free loopback port and
Open WebUI beside it (``WEBUI_AUTH=False``, ``OPENAI_API_BASE_URL`` = kbqa's
``/v1``, its own retrieval, title, tag and follow-up generation off, offline), then
in headless Chromium (Debian's, as the browser test uses) asks ``--question`` of the
model ``default`` and checks what a person sees: the answer, the sources block with
the document's name and page, and that following the link opens the page picture
with the passage marked. It saves a screenshot of the chat and records the versions.
``--smoke``: no install; skips (with the reason) unless Open WebUI is installed already.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import add_smoke_flag, skip, write_result  # noqa: E402

KBQA = str(Path(sys.executable).with_name("kbqa"))
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
QUESTION = "¿Cuántos parámetros tiene GPT-3?"
SOURCE = "introduccion-a-los-llm.pdf"
DOCS = ROOT / "docs" / "integrations.md"
# Beside the documented settings (docs/integrations.md): offline, nothing stored
# between runs, no embedding model of its own to load.
OFFLINE_ENV = {
    "WEBUI_SECRET_KEY": "kbqa-bench-only",
    "OFFLINE_MODE": "True",
    "HF_HUB_OFFLINE": "1",
    "RAG_EMBEDDING_ENGINE": "openai",
    "ENABLE_AUTOCOMPLETE_GENERATION": "False",
    "ENABLE_VERSION_UPDATE_CHECK": "False",
    "ENABLE_PERSISTENT_CONFIG": "False",
}


def documented_settings() -> dict[str, str]:
    """The environment docs/integrations.md starts Open WebUI with (its example)."""
    page = DOCS.read_text(encoding="utf-8")
    found = re.search(r"<!-- example: open-webui -->\n```sh\n(.*?)\n```", page, re.S)
    if not found:
        raise SystemExit("docs/integrations.md has no open-webui example")
    return dict(re.findall(r"\b([A-Z_]+)=(\S+)", found.group(1)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def installed_version(venv: Path) -> str | None:
    pip = venv / "bin" / "pip"
    if not pip.exists():
        return None
    shown = subprocess.run([str(pip), "show", "open-webui"], capture_output=True, text=True)
    found = re.search(r"^Version: (\S+)", shown.stdout, re.M)
    return found.group(1) if found else None


def install(venv: Path, version: str) -> float:
    """Seconds spent installing ``open-webui==version`` into ``venv`` (0: already there)."""
    if installed_version(venv) == version:
        return 0.0
    started = time.perf_counter()
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, f"open-webui=={version}"], check=True)
    return time.perf_counter() - started


def wait_for(check: Any, what: str, process: subprocess.Popen[bytes], timeout_s: float) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            if check():
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{what} did not start in {timeout_s:.0f} s")


def start(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(command, env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)


def chat_in_browser(webui: str, kbqa: str, question: str, screenshot: Path) -> dict[str, Any]:
    """Ask in Open WebUI as a person would; what was shown, and the source page opened."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 560})
        page.goto(f"{webui}/?models=default", wait_until="load", timeout=120_000)
        welcome = page.get_by_text("Okay, Let's Go!")  # the release notes, on a first visit
        try:
            welcome.click(timeout=20_000)
        except Exception:  # noqa: BLE001 - not shown: nothing to dismiss
            pass
        box = page.locator("#chat-input")
        box.click(timeout=60_000)
        page.keyboard.type(question)
        asked = time.perf_counter()
        page.keyboard.press("Enter")
        link = page.locator(f'a[href^="{kbqa}/v1/sources/"]').first
        link.wait_for(timeout=180_000)
        shown_s = time.perf_counter() - asked
        page.wait_for_timeout(1500)  # the stream's last piece, then the message settles
        message = link.locator("xpath=ancestor::*[contains(@class, 'chat-assistant')][1]")
        text = (message.inner_text() if message.count() else page.inner_text("body")).strip()
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot))
        label = link.inner_text()
        href = link.get_attribute("href") or ""
        with page.context.expect_page(timeout=30_000) as opened:
            link.click()
        source = opened.value
        source.wait_for_load_state("load")
        width = source.evaluate("document.getElementById('page')?.naturalWidth ?? 0")
        marked = source.locator("#passage mark").count()
        source.screenshot(path=str(screenshot.with_name("open-webui-source.png")))
        chromium = browser.version
        browser.close()
    return {
        "answer_shown_s": round(shown_s, 2),
        "message_text": text,
        "link_label": label,
        "link": href,
        "source_page_picture_width": width,
        "source_page_marks": marked,
        "chromium": chromium,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", default="0.12.4", help="open-webui version to install")
    parser.add_argument("--venv", type=Path, default=ROOT / "build" / "open-webui-venv")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument(
        "--answer-style",
        choices=["evidence", "short", "sentence"],
        default="evidence",
        help="kbqa's KBQA_ANSWER_STYLE (short, sentence: the evidence quoted, then the model's)",
    )
    parser.add_argument("--source", default=SOURCE, help="the document the answer must cite")
    parser.add_argument(
        "--screenshot", type=Path, default=ROOT / "docs" / "screenshots" / "open-webui.png"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "open_webui.json")
    add_smoke_flag(parser)
    args = parser.parse_args()
    if not CHROMIUM.exists():
        skip(args.out, "needs Debian's chromium (/usr/bin/chromium)", args)
    if args.smoke and installed_version(args.venv) != args.version:
        skip(args.out, f"open-webui {args.version} is not installed in {args.venv}", args)
    install_s = install(args.venv, args.version)

    with tempfile.TemporaryDirectory(prefix="kbqa-open-webui-") as temporary:
        folder = Path(temporary)
        env = {
            **os.environ,
            "KBQA_HOME": str(folder / "kbqa"),
            "KBQA_ANSWER_STYLE": args.answer_style,
        }
        env.pop("KBQA_API_KEY", None)
        kb = folder / "kbqa" / "default"
        ingest = [KBQA, "ingest", str(ROOT / "corpora"), "--kb", str(kb), "--no-progress"]
        subprocess.run(ingest, env=env, check=True, stdout=subprocess.DEVNULL)
        kbqa_url = f"http://127.0.0.1:{free_port()}"
        webui_url = f"http://127.0.0.1:{free_port()}"
        kbqa_port, webui_port = kbqa_url.rsplit(":", 1)[1], webui_url.rsplit(":", 1)[1]
        api = start([KBQA, "api", "-v", "--kb", str(kb), "--port", kbqa_port], env,
                    folder / "kbqa.log", folder)  # fmt: skip
        webui_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folder),
            "DATA_DIR": str(folder / "open-webui"),
            **documented_settings(),
            "OPENAI_API_BASE_URL": f"{kbqa_url}/v1",
            **OFFLINE_ENV,
        }
        serve = [str(args.venv / "bin" / "open-webui"), "serve", "--host", "127.0.0.1",
                 "--port", webui_port]  # fmt: skip
        webui = start(serve, webui_env, folder / "open-webui.log", folder)
        try:
            kbqa_log = folder / "kbqa.log"  # `-v`: it says when the models are loaded
            wait_for(lambda: "models loaded" in kbqa_log.read_text(errors="replace"),
                     "kbqa api", api, 600)  # fmt: skip
            webui_s = wait_for(
                lambda: httpx.get(f"{webui_url}/api/version").is_success, "open-webui", webui, 600
            )
            version = httpx.get(f"{webui_url}/api/version").json().get("version")
            seen = chat_in_browser(webui_url, kbqa_url, args.question, args.screenshot)
        finally:
            for process in (webui, api):
                process.terminate()
                process.wait(60)
            logs = {p.stem: p.read_text(errors="replace")[-3000:] for p in folder.glob("*.log")}

    page = re.search(rf"{re.escape(args.source)}, p\. (\d+)", seen["link_label"])
    checks = {
        "source_named_with_page": bool(page),
        "sources_heading_shown": bool(re.search(r"\b(Sources|Fuentes)\b", seen["message_text"])),
        "source_page_shows_picture": seen["source_page_picture_width"] > 0,
        "passage_marked": seen["source_page_marks"] > 0,
    }
    result = {
        "open_webui_version": version,
        "install_s": round(install_s, 1),
        "open_webui_start_s": round(webui_s, 1),
        "question": args.question,
        "answer_style": args.answer_style,
        "checks": checks,
        "passed": all(checks.values()),
        "screenshot": str(args.screenshot.relative_to(ROOT))
        if args.screenshot.is_relative_to(ROOT)
        else str(args.screenshot),
        **seen,
    }
    if not result["passed"]:
        result["logs"] = logs
    write_result(args.out, result, args)
    print(json.dumps({k: result[k] for k in ("open_webui_version", "checks", "passed")}, indent=1))
    sys.exit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
