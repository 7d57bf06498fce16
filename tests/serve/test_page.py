"""End to end: the page in headless Chromium uploads an image and shows the verdict and the overlay.

Needs Debian's chromium and chromium-driver (.ci/run installs them); skipped with a reason when absent.
"""

import shutil

import pytest

from tests.serve.conftest import csp_violations, live_server

pytestmark = pytest.mark.slow
# File names that are HTML: were they parsed as HTML, their handlers would set window.pwned and open an alert.
HOSTILE_IMAGE = '<img src=x onerror="window.pwned=1;alert(1)">.jpg'
HOSTILE_BROKEN = "<svg onload=window.pwned=2;alert(2)>.png"


@pytest.fixture(scope="module")
def server(forced_runs):
    """The page over forced runs (conftest.forced_runs): every upload is a defect with a class 3 mask."""
    from steelinspect.serve.app import ServeConfig, create_app

    app = create_app(ServeConfig(binary=forced_runs["binary"], multiclass=forced_runs["multiclass"],
                                 segment=forced_runs["segment"], engine="torch"))
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def hostile_server(forced_runs, real_sample, tmp_path_factory):
    """--data holding the real sample plus an image and a broken file whose names are HTML."""
    from steelinspect.serve.app import ServeConfig, create_app

    root = tmp_path_factory.mktemp("hostile-page") / "data"
    shutil.copytree(real_sample / "train_images", root / "train_images")
    shutil.copy(real_sample / "train.csv", root / "train.csv")
    shutil.copy(real_sample / "train_images" / "2930b4f52.jpg", root / "train_images" / HOSTILE_IMAGE)
    (root / "train_images" / HOSTILE_BROKEN).write_bytes(b"not an image")
    app = create_app(ServeConfig(binary=forced_runs["binary"], multiclass=forced_runs["multiclass"], data=root,
                                 engine="torch"))
    with live_server(app) as url:
        yield url


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
    assert csp_violations(browser) == []  # the page works within its Content-Security-Policy


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


def test_hostile_file_names_are_shown_as_text_and_never_run(hostile_server, browser):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(hostile_server)
    WebDriverWait(browser, 30).until(EC.visibility_of_element_located((By.ID, "tab-browse"))).click()
    WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#image-list li")) == 32)
    names = {e.text: e for e in browser.find_elements(By.CSS_SELECTOR, "#image-list li .image-id")}
    assert {HOSTILE_IMAGE, HOSTILE_BROKEN} <= set(names)

    names[HOSTILE_BROKEN].click()  # its error message names the file
    error = WebDriverWait(browser, 60).until(
        EC.visibility_of_element_located((By.CSS_SELECTOR, "#browse-detail .error-text")))
    assert error.text.startswith(HOSTILE_BROKEN + ": not a readable image")
    names[HOSTILE_IMAGE].click()
    WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#browse-detail .card")) == 2)
    shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#browse-detail .card .name")]
    assert shown == [f"{HOSTILE_IMAGE}: ground truth", f"{HOSTILE_IMAGE}: prediction"]

    # Nothing ran: no alert, no flag, no element made from a name.
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
    assert browser.execute_script("return window.pwned") is None
    assert browser.find_elements(By.CSS_SELECTOR, "#image-list img, #image-list svg, img[src='x']") == []
