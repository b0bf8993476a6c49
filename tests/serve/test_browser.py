"""The page of ``mammo serve`` driven in headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
installed by ``make test``): real images uploaded, findings read from the table and from the canvas's
pixels, the controls used from the keyboard, downloads checked, bad inputs answered on the page.
Screenshots go to ``test-artifacts/browser/`` (``$MAMMOFLOW_TEST_ARTIFACTS``)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.serve.conftest import REPO

ARTIFACTS = Path(os.environ.get("MAMMOFLOW_TEST_ARTIFACTS", REPO / "test-artifacts")) / "browser"
COUNT_COLOURS = """
const canvas = arguments[0];
const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
let outline = 0, boxes = 0;
for (let i = 0; i < data.length; i += 4) {
  const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
  if (r > 230 && g < 70 && b < 70) outline++;
  else if ((r > 230 && g > 190 && b < 50) || (r > 200 && g < 30 && b > 200)) boxes++;
}
return [outline, boxes];
"""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium through chromedriver, downloads into a temporary folder."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("MAMMOFLOW_REQUIRE_BROWSER"):
            pytest.fail("chromium and chromedriver are not installed; 'make test' installs them (apt-get)")
        pytest.skip("chromium and chromedriver are absent: apt-get install chromium chromium-driver (make test does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1400"):
        options.add_argument(argument)
    session = webdriver.Chrome(service=Service(driver), options=options)
    downloads = tmp_path_factory.mktemp("downloads")
    session.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    session.downloads = downloads
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield session
    session.quit()


def wait(condition, timeout: float = 60, what: str = "the page"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            found = condition()
        except Exception:  # the element is not there yet
            found = None
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def result_named(browser, name: str):
    from selenium.webdriver.common.by import By

    return next(
        a
        for a in browser.find_elements(By.CSS_SELECTOR, "article.result")
        if a.find_element(By.CSS_SELECTOR, ".name").text == name
    )


def test_real_images_get_findings_a_person_can_check(browser, server, mias_dir, busi_dir):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(server.url)
    models = wait(
        lambda: "finetune" in browser.find_element(By.ID, "models").text and browser.find_element(By.ID, "models")
    )
    assert "classifier" in models.text and "val_dice" in models.text and "mias (24)" in models.text
    assert "not a medical device" in browser.find_element(By.ID, "notice").text
    film, frame = mias_dir / "mdb012.pgm", busi_dir / "Dataset_BUSI_with_GT" / "benign" / "benign (100).png"
    browser.find_element(By.ID, "files").send_keys(f"{film}\n{frame}")
    wait(lambda: "2 of 2" in browser.find_element(By.ID, "status").text, what="both predictions")
    assert browser.find_element(By.ID, "errors").text == ""

    with open(film, "rb") as f:  # what the API says of the same film
        expected = requests.post(f"{server.url}/v1/predict", files={"file": (film.name, f)}, timeout=120).json()[
            "predictions"
        ][0]
    article = result_named(browser, "mdb012.pgm")
    rows = article.find_elements(By.CSS_SELECTOR, ".findings tbody tr")
    [lesion] = expected["lesions"]
    x0, y0, x1, y1 = lesion["box"]
    assert len(rows) == 1 and rows[0].text.startswith(
        f"1 {round((x0 + x1) / 2)}, {round((y0 + y1) / 2)} {x1 - x0} × {y1 - y0}"
    )
    assert lesion["malignancy_text"] in rows[0].text
    canvas = article.find_element(By.CSS_SELECTOR, "canvas.view")
    article.location_once_scrolled_into_view
    browser.save_screenshot(str(ARTIFACTS / "mdb012-findings.png"))
    outline, boxes = browser.execute_script(COUNT_COLOURS, canvas)
    assert outline > 50 and boxes > 50, (outline, boxes)  # drawn pixels, not just the DOM

    toggle = article.find_element(By.CSS_SELECTOR, ".show-overlay")
    toggle.send_keys(Keys.SPACE)  # the keyboard toggles the overlay
    assert browser.execute_script(COUNT_COLOURS, canvas) == [0, 0]
    toggle.send_keys(Keys.SPACE)
    whole = canvas.screenshot_as_png
    article.find_element(By.XPATH, ".//button[text()='Zoom to 1']").click()
    assert canvas.screenshot_as_png != whole
    browser.save_screenshot(str(ARTIFACTS / "mdb012-zoomed.png"))
    article.find_element(By.CSS_SELECTOR, ".whole").send_keys(Keys.ENTER)
    assert canvas.screenshot_as_png == whole

    verdict = article.find_element(By.CSS_SELECTOR, ".verdict")
    threshold = article.find_element(By.CSS_SELECTOR, ".malignancy-threshold")
    threshold.send_keys(Keys.HOME)  # threshold 0: every finding is called malignant
    assert "suspicious for malignancy" in verdict.text and verdict.get_attribute("data-called") == "true"
    [row] = article.find_elements(By.CSS_SELECTOR, ".findings tbody tr")  # the table is drawn anew
    assert row.text.split()[-4] == "malignant"
    threshold.send_keys(Keys.END)  # threshold 1
    assert (
        "not called malignant" in verdict.text
        and "benign" in article.find_element(By.CSS_SELECTOR, ".findings tbody").text
    )

    article.find_element(By.CSS_SELECTOR, ".download-json").click()
    saved = wait(lambda: next(browser.downloads.glob("mdb012.findings.json"), None), what="the JSON download")
    downloaded = json.loads(wait(lambda: saved.read_text()))
    assert downloaded["lesions"] == expected["lesions"] and "pictures" not in downloaded
    article.find_element(By.CSS_SELECTOR, ".download-png").click()
    picture = wait(lambda: next(browser.downloads.glob("mdb012.overlay.png"), None), what="the PNG download")
    pixels = np.asarray(wait(lambda: Image.open(picture).convert("RGB")))
    assert pixels.shape[:2] == (1024, 1024) and ((pixels[..., 0] > 230) & (pixels[..., 1] < 70)).sum() > 100

    detection = article.find_element(By.CSS_SELECTOR, ".detection-threshold")
    detection.send_keys(Keys.END)  # detection threshold 1: the server finds nothing any more
    wait(lambda: "No lesion found" in verdict.text, what="the re-thresholded prediction")
    assert article.find_elements(By.CSS_SELECTOR, ".findings tbody tr") == []
    assert browser.execute_script(COUNT_COLOURS, canvas) == [0, 0]

    ultrasound = result_named(browser, "benign (100).png")
    assert "ultrasound frame" in ultrasound.find_element(By.CSS_SELECTOR, ".warnings").text
    assert len(ultrasound.find_elements(By.CSS_SELECTOR, ".findings tbody tr")) == 1
    ultrasound.location_once_scrolled_into_view
    browser.save_screenshot(str(ARTIFACTS / "busi-findings.png"))


def test_bad_inputs_get_one_line_reasons_on_the_page(browser, server, bad_uploads):
    from selenium.webdriver.common.by import By

    browser.get(server.url)
    wait(lambda: "finetune" in browser.find_element(By.ID, "models").text)
    browser.find_element(By.ID, "files").send_keys("\n".join(str(path) for path, _ in bad_uploads.values()))
    browser.find_element(By.ID, "url").send_keys("gs://someone-elses-bucket/scan.dcm")
    browser.find_element(By.CSS_SELECTOR, "#url-form button").click()
    errors = wait(
        lambda: (
            len(browser.find_elements(By.CSS_SELECTOR, "#errors li")) == len(bad_uploads) + 1
            and browser.find_elements(By.CSS_SELECTOR, "#errors li")
        ),
        what="every refusal",
    )
    lines = [item.text for item in errors]
    for name, (_, reason) in bad_uploads.items():
        assert any(line.startswith(name) and reason in line for line in lines), (name, lines)
    assert any(line.startswith("gs://someone-elses-bucket/scan.dcm") and "reads no URLs" in line for line in lines)
    assert all("\n" not in line for line in lines)
    assert browser.find_elements(By.CSS_SELECTOR, "article.result") == []
    browser.save_screenshot(str(ARTIFACTS / "bad-inputs.png"))
