"""A headless Chromium for the classroom tier: Debian's chromium and chromedriver, run as the unprivileged
`nobody` with its background networking and component updates off, so that it contacts nothing but the
classroom on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

ARGS = (
    "--headless=new", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--no-first-run", "--no-default-browser-check",
    "--disable-domain-reliability", "--disable-client-side-phishing-detection", "--metrics-recording-only",
    "--disable-breakpad", "--disable-dev-shm-usage", "--window-size=1400,900",
)  # fmt: skip


def missing() -> str:
    for path in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not os.path.exists(path):
            return f"{path} is missing: run scripts/setup-classroom"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is missing: run scripts/setup-classroom"
    return ""


def chromium(tmp: Path) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    home = tmp / "chromium"
    home.mkdir()
    shutil.chown(home, "nobody", "nogroup")
    wrapper = tmp / "chromedriver"  # the driver, and the browser it starts, as nobody
    wrapper.write_text(
        "#!/bin/sh\nexec setpriv --reuid=nobody --regid=nogroup --clear-groups -- "
        f'env HOME="{home}" /usr/bin/chromedriver "$@"\n'
    )
    wrapper.chmod(0o755)
    tmp.chmod(0o755)  # nobody reaches the wrapper and its profile
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for a in (*ARGS, f"--user-data-dir={home / 'profile'}"):
        options.add_argument(a)
    return webdriver.Chrome(options=options, service=Service(str(wrapper)))


SCREEN_JS = """const b = window.classroomTerm.buffer.active; const lines = [];
for (let i = 0; i < b.length; i++) lines.push(b.getLine(i).translateToString(true));
return lines.join("\\n");"""
