"""Make docs/console.png: the console's playground after one streamed answer, at 1280x800.

Starts ``relaystack run`` with the offline default (models preloaded, a throw-away home), asks
the embedded chat model one question through the playground itself, as a user would, then has
Debian's Chromium (headless, the browser tests' set-up: tests/console/console_browser.py) take
the picture. Regenerate it with ``scripts/console-screenshot`` whenever the console changes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "console")]

from console_browser import DESKTOP, Browser, why_no_browser  # noqa: E402

from support.server import start_server  # noqa: E402

QUESTION = "Give three tips for writing clear emails, as a short list."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console.png")
    args = parser.parse_args()
    reason = why_no_browser()
    if reason:
        print(f"cannot take the screenshot: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="relaystack-screenshot-") as home:
        server = start_server(None, home=Path(home), env={"RELAYSTACK_PRELOAD": "true"}, wait_ready=True,
                              timeout_s=180)
        browser = Browser(server.base_url)
        try:
            browser.size(*DESKTOP)
            browser.open("playground")
            browser.wait(lambda: browser.all("#chat-model option"), "the model list")
            system = browser.css("#chat-system")
            system.send_keys("You are a concise assistant.")
            # temperature 0: the same answer every time the picture is made
            browser.js("const t = document.querySelector('#chat-temperature'); t.value = '0';"
                       "t.dispatchEvent(new Event('input'))")
            browser.css("#chat-input").send_keys(QUESTION)
            browser.click("#chat-send")
            browser.wait(lambda: browser.text("#m-usage") not in ("", "–"), "the answer", timeout=120)
            browser.js("document.activeElement.blur()")
            errors = browser.errors()
            if errors:
                print(f"the browser logged errors: {errors}", file=sys.stderr)
                return 1
            args.out.parent.mkdir(parents=True, exist_ok=True)
            browser.screenshot(args.out.stem, args.out.parent)
        finally:
            browser.close()
            server.stop()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
