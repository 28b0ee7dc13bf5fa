"""``diffrestore-demo``: its settings and messages, then the real page served on loopback with the bundled
model (2 denoising steps, to keep CI fast), driven through ``gradio_client`` and through Debian's chromium.

Without chromium, chromedriver or selenium the browser test is skipped on a developer's machine and FAILS
under CI (``CI`` set): ``.ci/run`` installs them, and a CI that skipped it would pass a broken page.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio")
from diffrestore.cli.files import UsageError  # noqa: E402
from diffrestore.deploy.browser import chromium, missing_browser, restore_in_browser, serve_demo  # noqa: E402
from diffrestore.deploy.demo import (DemoSettings, ProgressRestorer, Request, check_upload, main,  # noqa: E402
                                     parse_args, restore_options, unique_names)
from diffrestore.io import ImageLoadError  # noqa: E402
from diffrestore.pipeline import RestoreOptions  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "lq"
FACE = EXAMPLES / "pgdiff_0040.png"
PHOTO = EXAMPLES / "gfpgan_00.jpg"
MAX_SIDE = 1000


# --------------------------------------------------------------------------------------------------
# without a server


def test_page_settings_become_the_cli_options():
    options = restore_options(DemoSettings(), Request(mode="whole photo", fidelity=0.0, preset="quality", seed=7))
    assert (options.start_t, options.cfg_scale, options.seed, options.aligned) == (400, 2.0, 7, False)
    assert restore_options(DemoSettings(), Request()).start_t == 100  # fidelity 0.5 is the default preset
    assert restore_options(DemoSettings(overrides=["steps=2"]), Request()).steps == 2
    with pytest.raises(UsageError, match="preset 'fastest': must be one of"):
        restore_options(DemoSettings(), Request(preset="fastest"))
    with pytest.raises(UsageError, match="--fidelity: must be in"):
        restore_options(DemoSettings(), Request(fidelity=1.5))


def test_bad_uploads_get_the_cli_messages(tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    with pytest.raises(ImageLoadError, match=r"^notes\.png: not an image or an unsupported format$"):
        check_upload(fake, DemoSettings())
    wide = tmp_path / "wide.png"
    Image.new("RGB", (1200, 300)).save(wide)
    with pytest.raises(ImageLoadError, match=r"^wide\.png: 1200x300 px; the demo takes images up to 1000 px a side"):
        check_upload(wide, DemoSettings(max_side=1000))
    with pytest.raises(ImageLoadError, match=r"^wide\.png: 0\.0 MB; the demo takes files up to 0\.001 MB"):
        check_upload(wide, DemoSettings(max_upload_mb=0.001))


def test_progress_follows_the_pipeline_steps():
    from test_pipeline import R, tiny_pipeline

    restorer = ProgressRestorer(tiny_pipeline(), RestoreOptions(steps=3, start_t=50, device="cpu", aligned=True))
    reports = []
    restorer.progress = lambda fraction, text: reports.append((round(fraction, 3), text))
    restorer.restore_aligned([Image.new("RGB", (R, R), (90, 60, 40))] * 2)
    assert reports == [(0.333, "denoising 2 face(s): step 1 of 3"), (0.667, "denoising 2 face(s): step 2 of 3"),
                       (1.0, "denoising 2 face(s): step 3 of 3")]


def test_uploads_of_one_name_keep_their_own_results():
    assert unique_names(["face.png", "b.jpg", "face.png", "face.png"]) == [
        "face.png", "b.jpg", "face (2).png", "face (3).png"]


def test_base_install_pulls_neither_gradio_nor_onnxruntime():
    from importlib.metadata import requires

    optional = [r for r in requires("diffrestore") if r.split()[0].lower().startswith(("gradio", "onnxruntime",
                                                                                         "selenium"))]
    assert optional and all("extra ==" in r for r in optional), optional


def test_command_binds_loopback_and_checks_options_before_loading(capsys):
    assert parse_args([]).host == "127.0.0.1"
    assert main(["steps=0"]) == 2
    assert "diffrestore-demo: --steps 0: must be at least 1" in capsys.readouterr().err
    assert main(["--max-side", "0"]) == 2
    assert "--max-side 0: must be > 0" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# the page, served


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo on a free loopback port, in a working folder, HOME and TMPDIR of its own; afterwards,
    those are checked: nothing written in the working folder or HOME, its temporary folder removed."""
    root = tmp_path_factory.mktemp("demo")
    places = {name: root / name for name in ("cwd", "home", "tmp")}
    for place in places.values():
        place.mkdir()
    env = {"HOME": str(places["home"]), "TMPDIR": str(places["tmp"])}
    with serve_demo(["--device", "cpu", "--max-side", str(MAX_SIDE), "steps=2"], cwd=places["cwd"], env=env,
                    log=root / "demo.log") as url:
        yield url, places
    assert not list(places["cwd"].iterdir()) and not list(places["home"].iterdir())
    assert not list(places["tmp"].glob("diffrestore-demo-*")), "the demo's temporary folder was left behind"


def differs_from(restored: Image.Image, path: Path) -> float:
    """Mean absolute difference in 8-bit levels between ``restored`` and the input at its size."""
    original = Image.open(path).convert("RGB").resize(restored.size, Image.BICUBIC)
    return float(np.abs(np.asarray(restored, np.float64) - np.asarray(original, np.float64)).mean())


def test_api_restores_faces_and_photos_and_reports_bad_files(demo, tmp_path):
    from gradio_client import Client, handle_file

    url, places = demo
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    wide = tmp_path / "wide.png"
    Image.new("RGB", (MAX_SIDE + 100, 300)).save(wide)
    client = Client(url, verbose=False, download_files=str(tmp_path / "downloads"))
    slider, choices, gallery, downloads, message = client.predict(
        [handle_file(FACE), handle_file(fake), handle_file(PHOTO), handle_file(wide)], "auto", 0.5, "default", 0,
        api_name="/restore")
    assert message.splitlines() == [
        "done 2 (3 faces), failed 2", "FAILED notes.png: not an image or an unsupported format",
        f"FAILED wide.png: {MAX_SIDE + 100}x300 px; the demo takes images up to {MAX_SIDE} px a side "
        "(diffrestore --lq FILE takes any size)"]
    labels = [label for label, _ in choices["choices"]]
    assert labels == ["pgdiff_0040.png", "gfpgan_00.jpg (photo)", "gfpgan_00.jpg face 1", "gfpgan_00.jpg face 2"]
    restored = [Image.open(path).convert("RGB") for path in downloads]
    assert [image.size for image in restored] == [Image.open(FACE).size, Image.open(PHOTO).size]
    assert differs_from(restored[0], FACE) > 2
    assert differs_from(restored[1], PHOTO) > 0.05  # two small faces changed, the background kept
    assert np.array_equal(np.asarray(Image.open(slider[1]).convert("RGB")), np.asarray(restored[0]))


def test_browser_uploads_a_face_and_shows_it_restored(demo, tmp_path):
    reason = missing_browser()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the browser test cannot run in CI: {reason}")
        pytest.skip(reason)
    url, _ = demo
    driver = chromium(tmp_path / "profile")
    try:
        shown, message = restore_in_browser(driver, url, FACE, timeout=600)
        driver.save_screenshot(str(tmp_path / "demo.png"))
    finally:
        driver.quit()
    assert message == "done 1 (1 faces), failed 0"
    assert shown.size == Image.open(FACE).size
    assert differs_from(shown, FACE) > 2
    screenshot = Image.open(tmp_path / "demo.png")
    assert screenshot.format == "PNG" and screenshot.width >= 1000
