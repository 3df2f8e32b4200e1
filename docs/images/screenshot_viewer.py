"""The README's viewer picture: a `view --compare` page in headless Chromium, GQA samples that flipped.

    tinyllava-bench view results/demo/runs/demo-share --compare results/demo/runs/demo-base --output /tmp/view.html
    python docs/images/screenshot_viewer.py /tmp/view.html docs/images/viewer.png

Needs Debian's chromium and chromium-driver, and selenium (the dev extra).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def screenshot(page: Path, out: Path, task: str = "gqa") -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import Select, WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        driver.get(page.resolve().as_uri())
        WebDriverWait(driver, 120).until(
            lambda d: d.execute_script("return document.body.dataset.ready") == "1"
        )
        Select(driver.find_element("id", "task")).select_by_value(task)
        Select(driver.find_element("id", "flips")).select_by_value("flipped")
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
