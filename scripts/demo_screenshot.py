"""The README's screenshot of ``diffrestore-demo``: the demo served with the bundled model (default preset),
an example face uploaded and restored in Debian's headless chromium, the page saved as a small JPEG.

    python scripts/demo_screenshot.py --out docs/demo.jpg
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image

from diffrestore.deploy.browser import chromium, missing_browser, restore_in_browser, serve_demo

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--face", type=Path, default=ROOT / "examples/lq/pgdiff_0040.png")
    p.add_argument("--out", type=Path, default=ROOT / "docs/demo.jpg")
    p.add_argument("--width", type=int, default=1100, help="width of the saved JPEG, pixels")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="passed to diffrestore-demo")
    args = p.parse_args()
    reason = missing_browser()
    if reason:
        raise SystemExit(f"demo_screenshot: {reason}")
    with tempfile.TemporaryDirectory() as scratch, serve_demo(["--device", "cpu", *args.overrides]) as url:
        driver = chromium(Path(scratch) / "profile", height=760)
        try:
            _, message = restore_in_browser(driver, url, args.face)
            driver.save_screenshot(str(Path(scratch) / "page.png"))
        finally:
            driver.quit()
        page = Image.open(Path(scratch) / "page.png").convert("RGB")
        page = page.resize((args.width, round(page.height * args.width / page.width)), Image.LANCZOS)
        page.save(args.out, quality=80, optimize=True)
    print(f"{args.out}: {message!r}")


if __name__ == "__main__":
    main()
