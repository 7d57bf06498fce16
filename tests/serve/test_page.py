"""End to end: the page in headless Chromium uploads an image and shows the verdict and the overlay.

Needs Debian's chromium and chromium-driver (.ci/run installs them); skipped with a reason when absent.
"""

import shutil
import socket
import threading
import time
import pytest

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


def listening_socket() -> socket.socket:
    """A socket on a port the system picks, listening already: nothing can take the port between choosing and
    serving (two suites on one machine never collide), and a browser that connects early waits in its backlog."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@pytest.fixture(scope="module")
def server(forced_runs):
    """The page over forced runs (conftest.forced_runs): every upload is a defect with a class 3 mask."""
    import uvicorn

    from steelinspect.serve.app import ServeConfig, create_app

    sock = listening_socket()
    port = sock.getsockname()[1]
    app = create_app(ServeConfig(binary=forced_runs["binary"], multiclass=forced_runs["multiclass"],
                                 segment=forced_runs["segment"], engine="torch"))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # start-up loads three models; bounded, with a message, on a busy machine
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start within 120 s" if thread.is_alive() else "the server failed to start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def test_upload_shows_verdict_and_overlay(server, browser, real_sample, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server)
    WebDriverWait(browser, 30).until(EC.text_to_be_present_in_element((By.ID, "status"), "classifier"))
    image = real_sample / "train_images" / "2930b4f52.jpg"
    browser.find_element(By.ID, "files").send_keys(str(image))
    verdict = WebDriverWait(browser, 120).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".card .verdict")))
    assert verdict.text.startswith("defect")
    assert browser.find_element(By.CSS_SELECTOR, ".card .name").text == "2930b4f52.jpg"
    base = browser.find_element(By.CSS_SELECTOR, ".card img.base")
    assert base.get_attribute("src").startswith("data:image/jpeg") and base.get_attribute("naturalWidth") == "1600"
    rows = browser.find_elements(By.CSS_SELECTOR, ".card table.probs tbody tr td")
    assert len(rows) == 5 and all(0 <= float(td.text) <= 1 for td in rows)
    # The overlay: one layer (class 3), shown over the image, and hidden by its toggle.
    layers = browser.find_elements(By.CSS_SELECTOR, ".card img.layer")
    toggles = browser.find_elements(By.CSS_SELECTOR, ".card .toggles input")
    assert len(layers) == len(toggles) == 1 and layers[0].is_displayed()
    assert layers[0].get_attribute("src").startswith("data:image/png") and layers[0].get_attribute("naturalWidth") == "1600"
    toggles[0].click()
    assert not layers[0].is_displayed()
    toggles[0].click()
    assert layers[0].is_displayed()
    defects = browser.find_elements(By.CSS_SELECTOR, ".card table.defects tbody tr")
    assert len(defects) == 1
    assert [td.text for td in defects[0].find_elements(By.TAG_NAME, "td")] == ["3", "409600", "0, 0, 1600, 256"]
    assert browser.save_screenshot(str(tmp_path / "page.png"))


def test_bad_upload_shows_an_error(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    browser.find_element(By.ID, "files").send_keys(str(bad))
    verdict = WebDriverWait(browser, 60).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".card .verdict")))
    assert verdict.text == "error"
    assert "not a readable image" in browser.find_element(By.CSS_SELECTOR, ".card .error-text").text
