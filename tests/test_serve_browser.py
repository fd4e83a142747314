"""The real page in headless Chromium (Debian's `chromium`, which .ci/run installs), driven by Playwright:
drop an image, wait for the result, move the slider by keyboard and by mouse, download it and compare it
with what superres.upscale makes of the same file; a bad file's message; the keyboard's way in; the zip.

The test's screenshot is docs/serve.png when SUPERRES_SCREENSHOT names that path."""

import base64
import os
import shutil
import zipfile

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("playwright")
pytest.importorskip("uvicorn")

from playwright.sync_api import sync_playwright

from conftest import live_server
from superres.api import ImageUpscaler
from superres.imaging.io import Picture, read_image, write_image
from superres.web.app import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")


@pytest.fixture
def live():
    server = Server(device="cpu")
    with live_server(server) as (host, port):
        yield f"http://{host}:{port}/", server


def drop(page, path, name, mime="image/png"):
    """Drop a file on the drop zone, as a user dragging it from a file manager would."""
    data = base64.b64encode(path.read_bytes()).decode()
    transfer = page.evaluate_handle(
        """([b64, name, mime]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, { type: mime }));
            return transfer;
        }""",
        [data, name, mime],
    )
    page.dispatch_event("#drop", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def test_drop_compare_download_in_a_real_browser(live, tmp_path):
    from skimage import data

    url, server = live
    source = tmp_path / "astronaut.png"
    write_image(source, Picture(np.ascontiguousarray(data.astronaut()[30:190, 150:350])))  # 200x160
    expected = ImageUpscaler(device="cpu")(read_image(source))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(accept_downloads=True, viewport={"width": 960, "height": 900})
        page.goto(url)
        page.wait_for_selector("#model option[value='mdsr-medium']", state="attached")

        drop(page, source, "astronaut.png")
        card = page.locator(".card").nth(0)
        card.locator(".download").wait_for(state="visible", timeout=120_000)
        assert "400 x 320" in card.locator(".status").inner_text()
        assert card.evaluate("c => c.classList.contains('done')")

        slider = card.locator(".slider")  # by keyboard: 50 -> 30
        slider.focus()
        for _ in range(20):
            page.keyboard.press("ArrowLeft")
        assert slider.input_value() == "30"
        assert card.locator(".before").evaluate("e => e.style.clipPath") == "inset(0px 70% 0px 0px)"
        box = card.locator(".after").bounding_box()  # by mouse: press at 80% of the width
        page.mouse.click(box["x"] + 0.8 * box["width"], box["y"] + box["height"] / 2)
        assert abs(float(slider.input_value()) - 80) < 1.5
        page.select_option("#enlarge", "nearest")
        assert card.locator(".compare").evaluate("e => e.classList.contains('nearest')")

        with page.expect_download() as download:
            card.locator(".download").click()
        assert download.value.suggested_filename == "astronaut_x2.png"
        download.value.save_as(tmp_path / "downloaded.png")
        got = read_image(tmp_path / "downloaded.png")
        assert got.size == (320, 400) and np.array_equal(got.pixels, expected.pixels)

        (tmp_path / "notes.png").write_bytes(b"these are notes, not a picture")
        drop(page, tmp_path / "notes.png", "notes.png")
        bad = page.locator(".card").nth(1)
        bad.locator(".status[role=alert]").wait_for(timeout=30_000)
        assert bad.locator(".status").inner_text() == "notes.png: not an image, or a format that cannot be read"

        with page.expect_file_chooser() as chooser:  # the keyboard's way in: Enter on the drop zone
            page.focus("#drop")
            page.keyboard.press("Enter")
        chooser.value.set_files(str(source))
        page.locator(".card").nth(2).locator(".download").wait_for(state="visible", timeout=120_000)
        assert page.locator("#summary").inner_text() == "2 done, 1 failed of 3"

        with page.expect_download() as download:
            page.click("#zip")
        download.value.save_as(tmp_path / "all.zip")
        with zipfile.ZipFile(tmp_path / "all.zip") as z:
            assert z.testzip() is None
            assert z.namelist() == ["astronaut_x2.png", "astronaut_x2 (2).png"]
            assert z.read("astronaut_x2.png") == (tmp_path / "downloaded.png").read_bytes()

        slider.fill("50")  # for the picture: half input, half result
        page.locator(".card").nth(2).evaluate("c => c.remove()")
        page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
        if os.environ.get("SUPERRES_SCREENSHOT"):
            shutil.copy(tmp_path / "serve.png", os.environ["SUPERRES_SCREENSHOT"])
        browser.close()
    assert list(server.queue.folder.iterdir()) == []  # results fetched: the private folder is empty
