"""Drive ``diffrestore-demo`` in a real browser: Debian's ``chromium`` and ``chromium-driver`` through
selenium (nothing downloaded at run time). Used by the browser test and ``scripts/demo_screenshot.py``.

``serve_demo`` starts the demo in a subprocess on a free loopback port and waits until it answers;
``restore_in_browser`` uploads a file, presses Restore and waits for the before/after slider.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator, Optional, Sequence

from PIL import Image

BROWSER_NAMES = ("chromium", "chromium-browser")
DRIVER_NAME = "chromedriver"


def missing_browser() -> Optional[str]:
    """Why the browser cannot run here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[demo,dev]')"
    if not any(shutil.which(name) for name in BROWSER_NAMES) or not shutil.which(DRIVER_NAME):
        return "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_demo(args: Sequence[str] = (), cwd: Optional[Path] = None, env: Optional[dict] = None,
               timeout: float = 600.0, log: Optional[Path] = None) -> Iterator[str]:
    """Run ``diffrestore-demo --port P *args`` until the block ends (then Ctrl-C it); yields its URL."""
    port = free_port()
    out = open(log, "wb") if log else subprocess.DEVNULL
    process = subprocess.Popen([sys.executable, "-m", "diffrestore.deploy.demo", "--port", str(port), *args],
                               cwd=cwd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for(url, process, timeout)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            out.close()


def wait_for(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"diffrestore-demo exited with status {process.returncode} before serving {url}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"diffrestore-demo did not answer at {url} within {timeout:.0f} s")


def chromium(profile: Path, width: int = 1400, height: int = 1100):
    """A headless chromium driven by Debian's chromedriver, its profile in ``profile``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(name) for name in BROWSER_NAMES if shutil.which(name))
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which(DRIVER_NAME)), options=options)


def restore_in_browser(driver, url: str, image: Path, timeout: float = 600.0) -> tuple[Image.Image, str]:
    """Open the demo, upload ``image``, press Restore; returns (the restored image the page shows, the
    messages box's text)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout)
    driver.get(url)
    wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, "#upload input[type=file]"))).send_keys(
        str(Path(image).resolve()))
    wait.until(ready.text_to_be_present_in_element((By.ID, "upload"), Path(image).stem))  # the stem, then the suffix
    wait.until(ready.element_to_be_clickable((By.ID, "restore"))).click()
    shown = wait.until(lambda d: _restored_image(d))
    message = driver.find_element(By.CSS_SELECTOR, "#message textarea").get_attribute("value")
    with urllib.request.urlopen(shown.get_attribute("src"), timeout=30) as response:
        return Image.open(io.BytesIO(response.read())).convert("RGB"), message


def _restored_image(driver):
    """The slider's restored image once it is loaded and visible (else False, to keep waiting)."""
    from selenium.webdriver.common.by import By

    for element in driver.find_elements(By.CSS_SELECTOR, "#slider img"):
        source = element.get_attribute("src") or ""
        loaded = driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", element)
        if "_restored" in source and loaded and element.is_displayed():
            return element
    return False
