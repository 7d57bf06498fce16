"""Regenerate docs/screenshot.png: the inspection page over the demo's models, two real images uploaded.

    .venv/bin/python docs/screenshot.py [--runs runs/demo/runs] [--images ../shared/severstal-sample/train_images]

Needs `make demo` first and Debian's chromium + chromium-driver (as the page test does).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import threading
import time
from pathlib import Path

IMAGES = ("2930b4f52.jpg", "112b06482.jpg")


def _trim(path: Path) -> None:
    """Cut the empty page below the last card."""
    import cv2
    import numpy as np

    image = cv2.imread(str(path))
    background = image[-5, 5].astype(int)
    rows = np.flatnonzero((np.abs(image.astype(int) - background).sum(axis=2) > 10).any(axis=1))
    cv2.imwrite(str(path), image[: rows[-1] + 20])


def main() -> None:
    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from steelinspect.serve.app import ServeConfig, create_app

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs/demo/runs"))
    parser.add_argument("--images", type=Path, default=Path("../shared/severstal-sample/train_images"))
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("screenshot.png"))
    args = parser.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServeConfig(binary=args.runs / "binary", multiclass=args.runs / "multiclass",
                                 segment=args.runs / "segment"))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.1)

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", "--window-size=1280,1400"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}")
        WebDriverWait(driver, 30).until(EC.text_to_be_present_in_element((By.ID, "status"), "classifier"))
        driver.find_element(By.ID, "files").send_keys("\n".join(str((args.images / n).resolve()) for n in IMAGES))
        WebDriverWait(driver, 120).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card .verdict")) == len(IMAGES))
        time.sleep(1)  # let the overlay images paint
        driver.save_screenshot(str(args.out))
        _trim(args.out)
    finally:
        driver.quit()
        server.should_exit = True
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
