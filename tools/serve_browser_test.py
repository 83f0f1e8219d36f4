#!/usr/bin/env python3
"""Drives `gsasr serve`'s page in Debian's chromium (headless, through chromium-driver and the
selenium client from PyPI; no browser download): upload the bundled photo, run x3, move the
comparison slider, zoom a region chosen by dragging, toggle the Gaussian overlay, download the
result. Fails on the first thing that does not happen; saves screenshots.

    python3 tools/serve_browser_test.py [--screenshots docs] [-m Models/default] [--binary PATH]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from serve_common import ROOT, Server, find_binary, request, wait_until

PHOTO = os.path.join(ROOT, "Examples/seeding_160x120.png")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--screenshots", help="folder for the screenshots (default: a temporary one)")
    ap.add_argument("-m", "--model", default=os.path.join(ROOT, "Models/default"))
    ap.add_argument("--binary")
    a = ap.parse_args()
    binary = find_binary(a.binary)
    tmp = tempfile.mkdtemp(prefix="gsasr-browser-")
    shots = a.screenshots or tmp
    os.makedirs(shots, exist_ok=True)
    downloads = os.path.join(tmp, "downloads")
    os.makedirs(downloads)
    server = Server(binary, ["-m", a.model], os.path.join(tmp, "serve.log"))
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1500", "--force-device-scale-factor=1"]:
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": downloads,
                                           "download.prompt_for_download": False})
    d = webdriver.Chrome(service=Service(driver_path), options=opts)
    js = d.execute_script
    try:
        d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": downloads})
        d.get(server.base + "/")
        assert "GSASR" in d.title, d.title
        wait_until(lambda: js("return document.getElementById('model').options.length") >= 1, 10, "/api/info")

        # 1. Upload (the file input behind the drop zone) and choose x3.
        d.find_element(By.ID, "file").send_keys(PHOTO)
        wait_until(lambda: d.find_element(By.ID, "go").is_enabled(), 10, "the Upscale button")
        scale = d.find_element(By.ID, "scale")
        scale.clear()
        scale.send_keys("3")
        assert js("return document.getElementById('scaleRange').value") == "3", "the slider does not follow the box"
        d.find_element(By.ID, "go").click()

        # 2. Progress while it runs, then the comparison.
        stages = set()

        def done():
            stages.add(d.find_element(By.ID, "stage").text)
            return js("const i = document.getElementById('imgGsasr'); return i.complete && i.naturalWidth > 0 "
                      "&& !document.getElementById('resultSection').hidden")
        wait_until(done, 300, "the result")
        wait_until(lambda: js("return document.getElementById('imgBicubic').naturalWidth") == 480, 10, "bicubic")
        size = js("const i = document.getElementById('imgGsasr'); return [i.naturalWidth, i.naturalHeight]")
        assert size == [480, 360], size
        progress = [s for s in stages if "%" in s or "Waiting" in s or "Uploading" in s]
        print(f"stages seen: {sorted(stages)}")
        assert progress, f"no progress shown: {stages}"
        job = js("return document.getElementById('imgGsasr').src").split("/api/jobs/")[1].split("/")[0]

        # 3. The before/after slider.
        clip0 = js("return document.getElementById('imgGsasr').style.clipPath")
        slider = d.find_element(By.ID, "slider")
        slider.click()
        for _ in range(30):
            slider.send_keys(Keys.ARROW_LEFT)
        clip1 = js("return document.getElementById('imgGsasr').style.clipPath")
        assert clip0 != clip1, f"the slider did not move the split ({clip0} -> {clip1})"
        print(f"slider: {clip0} -> {clip1}")
        d.save_screenshot(os.path.join(shots, "serve-compare.png"))

        # 4. Deep zoom of a region chosen by dragging over the image.
        img = d.find_element(By.ID, "imgBicubic")
        w, h = img.size["width"], img.size["height"]
        ActionChains(d).move_to_element_with_offset(img, int(-w * 0.10), int(-h * 0.05)).click_and_hold() \
            .move_by_offset(int(w * 0.15), int(h * 0.15)).release().perform()
        region = d.find_element(By.ID, "region").get_attribute("value")
        rx, ry, rw, rh = map(int, region.split(","))
        assert rw >= 8 and rh >= 8, region
        wait_until(lambda: (js("return document.getElementById('zoomSection').dataset.ready") or "")
                   .startswith("region=" + region.replace(",", "%2C")), 30, "the zoom")
        zsize = js("const i = document.getElementById('zoomGsasr'); return [i.naturalWidth, i.naturalHeight]")
        bsize = js("const i = document.getElementById('zoomBicubic'); return [i.naturalWidth, i.naturalHeight]")
        assert zsize == [rw * 4, rh * 4] == bsize, (region, zsize, bsize)
        print(f"zoom: region {region} at x4 -> {zsize}")

        # 5. The Gaussians: overlay on, the zoom changes to the version with ellipses.
        plain = js("return document.getElementById('zoomGsasr').src")
        d.find_element(By.ID, "overlay").click()
        wait_until(lambda: (js("return document.getElementById('zoomSection').dataset.ready") or "")
                   .endswith("overlay=1"), 30, "the overlay")
        assert js("return document.getElementById('zoomGsasr').src") != plain
        caption = d.find_element(By.ID, "zoomGsasrCap").text
        assert "Gaussians" in caption, caption
        q = f"region={region}&zoom=4"
        _, _, with_overlay = request("GET", f"{server.base}/api/jobs/{job}/zoom.png?{q}&overlay=1")
        _, _, without = request("GET", f"{server.base}/api/jobs/{job}/zoom.png?{q}")
        assert with_overlay != without, "the overlay image is the plain render"
        d.execute_script("document.getElementById('zoomSection').scrollIntoView()")
        d.save_screenshot(os.path.join(shots, "serve-zoom-overlay.png"))

        # 6. Download: the file is the result.
        d.find_element(By.CSS_SELECTOR, "#download button").click()
        path = wait_until(lambda: next((os.path.join(downloads, f) for f in os.listdir(downloads)
                                        if f.endswith(".png")), None), 30, "the download")
        wait_until(lambda: os.path.getsize(path) > 0, 10, "the download to finish")
        time.sleep(0.5)
        _, _, result = request("GET", f"{server.base}/api/jobs/{job}/result.png")
        assert open(path, "rb").read() == result, "the downloaded file is not the result"
        print(f"download: {os.path.basename(path)}, {len(result)} bytes, identical to result.png")
        errors = d.find_element(By.ID, "error").text
        assert not errors, f"the page shows an error: {errors}"
        print(f"browser test passed; screenshots in {shots}")
    finally:
        d.quit()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
