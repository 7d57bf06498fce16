"""End to end, the inspection station in headless Chromium: a reviewer works through the REVIEW queue with the
keyboard, then finds the reviews in History and the coil on its strip map; the database holds what was pressed.

Needs Debian's chromium and chromium-driver (as test_page.py); skipped with a reason when absent.
"""

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from tests.data.fixtures import write_image
from tests.serve.conftest import live_server

pytestmark = pytest.mark.slow
START = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
# (coil, frame, p_defect, classes, region box per class: x, y, w, h), in the order recorded. With bands 0.3/0.7
# three are REVIEW, with uncertainties 1.0 (A/1), 0.75 (A/3), 0.5 (B/0): the queue's order. Coil A is recorded out
# of frame order (the strip must sort it) and last (so it is the newest coil).
FRAMES = [
    ("C-B", 0, 0.60, [1], {1: (100, 40, 300, 60)}),
    ("C-B", 1, 0.95, [4], {4: (900, 10, 200, 200)}),
    ("C-A", 2, 0.90, [3], {3: (700, 100, 400, 80)}),
    ("C-A", 0, 0.10, [], {}),
    ("C-A", 3, 0.45, [2], {2: (1200, 20, 150, 150)}),
    ("C-A", 1, 0.50, [1], {1: (50, 50, 500, 100)}),
]


def regions(boxes: dict):
    from steelinspect.inspect_log import regions_from_masks

    masks = np.zeros((4, 256, 1600), bool)
    for cls, (x, y, w, h) in boxes.items():
        masks[cls - 1, y:y + h, x:x + w] = True
    return regions_from_masks(masks)


def band(t1: float, t2: float) -> dict:
    """T1, T2 and a precision-recall curve over thresholds 0, 0.1, ..., 1 (precision rises, recall falls)."""
    thresholds = [k / 10 for k in range(11)]
    return {"t1": t1, "t2": t2, "curve": {"threshold": thresholds, "precision": [0.5 + t / 2 for t in thresholds],
                                          "recall": [1 - t * t for t in thresholds]}}


@pytest.fixture(scope="module")
def station(tiny_runs, tmp_path_factory):
    """The server over the tiny runs with a SQLite log of 6 inspections of two coils and one reviewer, anna."""
    from steelinspect.inspect_log import Bands, open_log
    from steelinspect.serve.app import ServeConfig, create_app
    from steelinspect.serve.tokens import add_token

    root = tmp_path_factory.mktemp("station")
    url = f"sqlite:///{root / 'log.db'}"
    ids = {}
    with open_log(url, Bands(0.3, 0.7)) as log:
        for k, (coil, frame, p, classes, boxes) in enumerate(FRAMES):
            image = root / "frames" / f"{coil}-{frame}.jpg"
            write_image(image, seed=k)
            row = {"ImageId": image.name, "p_defect": p, "classes": " ".join(map(str, classes)),
                   **{f"p_class_{c}": (0.8 if c in classes else 0.1) for c in (1, 2, 3, 4)}}
            ids[coil, frame] = log.record(row, regions(boxes), {"test": "station"}, coil=coil, frame=frame,
                                          path=image, at=START + timedelta(minutes=k))
    (root / "frames" / "C-A-0.jpg").unlink()  # moved away since: its inspection shows no picture, and says why
    token_file = root / "tokens"
    token = add_token(token_file, "anna")
    # Tuned bands (as tune-bands writes them) in a copy of the binary run: the Review tab draws their curves.
    from steelinspect.runs.bands import write_bands

    binary = Path(shutil.copytree(tiny_runs["binary"], root / "binary"))
    multiclass = Path(shutil.copytree(tiny_runs["multiclass"], root / "multiclass"))
    write_bands(binary, {"step1": band(0.3, 0.7)})
    write_bands(multiclass, {"classes": {"3": band(0.2, 0.6)}})
    app = create_app(ServeConfig(binary=binary, multiclass=multiclass, engine="torch", db=url,
                                 token_file=token_file))
    with live_server(app) as base:
        yield {"url": base, "db": url, "ids": ids, "token": token}


def test_review_history_and_coil_with_the_keyboard(station, browser):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait

    from steelinspect.inspect_log import open_log

    ids = station["ids"]
    wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))  # the page re-renders
    frame_id = lambda: browser.find_element(By.ID, "review-frame").get_attribute("data-inspection-id")  # noqa: E731
    text = lambda sel: browser.find_element(By.CSS_SELECTOR, sel).text  # noqa: E731
    press = lambda *keys: ActionChains(browser).send_keys(*keys).perform()  # noqa: E731 (to the focused element)

    def reviews():
        with open_log(station["db"]) as log:
            return {i: log.reviews(i) for i in ids.values() if log.reviews(i)}

    browser.get(station["url"])
    wait.until(EC.visibility_of_element_located((By.ID, "tab-review"))).click()
    wait.until(lambda b: frame_id() == str(ids["C-A", 1]))  # the most uncertain first
    wait.until(lambda b: text("#review-count").startswith("3 frame"))
    wait.until(lambda b: b.find_element(By.CSS_SELECTOR, "#review-frame .card img.base").get_attribute("naturalWidth")
               == "1600")
    layers = browser.find_elements(By.CSS_SELECTOR, "#review-frame img.layer")
    assert [e.get_attribute("data-cls") for e in layers] == ["1"]  # its region, drawn from the stored RLE

    # The tuned bands: step 1's curve and class 3's, their T1 and T2 marked and stated.
    wait.until(lambda b: "T2" in text("#bands-note"))
    note = text("#bands-note")
    assert browser.find_element(By.ID, "bands-canvas").is_displayed()
    assert browser.execute_script("const c = document.getElementById('bands-canvas');"
                                  "return c.getContext('2d').getImageData(0, 0, c.width, c.height).data"
                                  ".filter((v, i) => i % 4 === 3 && v > 0).length") > 5000  # drawn on
    assert "step 1 (defect): T1 = 0.300 (precision 0.650, recall 0.910), T2 = 0.700" in note
    assert "class 3: T1 = 0.200 (precision 0.600, recall 0.960), T2 = 0.600" in note

    press("n")  # next, previous
    wait.until(lambda b: frame_id() == str(ids["C-A", 3]))
    press("p")
    wait.until(lambda b: frame_id() == str(ids["C-A", 1]))

    # Without a token the review is refused, and the page says why.
    press("a")
    wait.until(lambda b: "401" in text("#review-message"))
    assert "token" in text("#review-message") and reviews() == {}

    # Typing the token (which may hold a, x, n, p or 1-4) reviews nothing.
    field = browser.find_element(By.ID, "token")
    field.send_keys(station["token"], Keys.ENTER)
    browser.execute_script("document.activeElement.blur()")
    wait.until(lambda b: text("#token-status") == "reviewer: anna")
    assert frame_id() == str(ids["C-A", 1]) and reviews() == {}
    assert browser.execute_script("return sessionStorage.getItem('steelinspect.token')") == station["token"]

    press("a")  # confirm
    wait.until(lambda b: frame_id() == str(ids["C-A", 3]))
    wait.until(lambda b: text("#review-count").startswith("2 frame"))
    press("x")  # no defect
    wait.until(lambda b: frame_id() == str(ids["C-B", 0]))
    press("3", Keys.ENTER)  # the model said class 1; add class 3
    wait.until(lambda b: frame_id() is None and "Nothing left" in text("#review-frame"))
    wait.until(lambda b: text("#review-count").startswith("0 frame"))

    got = reviews()
    assert set(got) == {ids["C-A", 1], ids["C-A", 3], ids["C-B", 0]}
    assert all(len(r) == 1 and r[0].reviewer == "anna" for r in got.values())
    assert (got[ids["C-A", 1]][0].verdict, got[ids["C-A", 1]][0].classes) == ("confirm", None)
    assert (got[ids["C-A", 3]][0].verdict, got[ids["C-A", 3]][0].classes) == ("correct", ())
    assert (got[ids["C-B", 0]][0].verdict, got[ids["C-B", 0]][0].classes) == ("correct", (1, 3))

    # History, reviewed only: those three, newest first; a row opens the inspection with its review.
    browser.find_element(By.ID, "tab-history").click()
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#history-table tbody tr")) == len(FRAMES))
    Select(browser.find_element(By.ID, "history-filter-reviewed")).select_by_value("true")
    browser.find_element(By.CSS_SELECTOR, "#history-filters button[type=submit]").click()
    rows = lambda: [r.get_attribute("data-inspection-id")  # noqa: E731
                    for r in browser.find_elements(By.CSS_SELECTOR, "#history-table tbody tr")]
    wait.until(lambda b: len(rows()) == 3)
    assert rows() == [str(i) for i in sorted(got, reverse=True)]
    assert browser.find_element(By.ID, "history-next").get_attribute("disabled") == "true"
    dates = "document.getElementById('history-filter-since').value = arguments[0];" \
            "document.getElementById('history-filter-until').value = arguments[1];"
    browser.execute_script(dates, "2026-11-21", "")  # all were inspected on 2026-11-20 (UTC)
    browser.find_element(By.CSS_SELECTOR, "#history-filters button[type=submit]").click()
    wait.until(lambda b: rows() == [] and "No inspection" in text("#history-message"))
    browser.execute_script(dates, "2026-11-20", "2026-11-20")  # one day: both ends included
    browser.find_element(By.CSS_SELECTOR, "#history-filters button[type=submit]").click()
    wait.until(lambda b: len(rows()) == 3)
    browser.find_element(By.CSS_SELECTOR, f"#history-table tbody tr[data-inspection-id='{ids['C-B', 0]}']").click()
    wait.until(lambda b: "anna" in text("#history-detail table.reviews"))
    assert "class 1, 3" in text("#history-detail table.reviews")

    # Coil A (the newest): its 4 frames in frame order, each defect in its class, counts of frames per class.
    browser.find_element(By.ID, "tab-coil").click()
    select = Select(wait.until(EC.presence_of_element_located((By.ID, "coil-select"))))
    wait.until(lambda b: len(select.options) == 2)
    assert select.first_selected_option.get_attribute("value") == "C-A"
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#coil-strip .coil-frame")) == 4)
    strip = browser.find_elements(By.CSS_SELECTOR, "#coil-strip .coil-frame")
    assert [f.get_attribute("data-frame") for f in strip] == ["0", "1", "2", "3"]
    assert [[d.get_attribute("data-cls") for d in f.find_elements(By.CSS_SELECTOR, ".coil-defect")] for f in strip] \
        == [[], ["1"], ["3"], ["2"]]
    assert text("#coil-counts").split("\n") == ["class 1: 1", "class 2: 1", "class 3: 1", "class 4: 0"]
    assert browser.find_element(By.ID, "coil-report-csv").get_attribute("href").endswith("/api/log/coil/C-A/report.csv")
    strip[2].click()
    wait.until(lambda b: "NG" in text("#coil-detail .verdict"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#coil-detail img.layer[data-cls='3']")) == 1
    strip[0].click()
    wait.until(lambda b: "OK" in text("#coil-detail .verdict"))
    assert text("#coil-detail .notice").startswith("no picture: ")
    assert browser.find_elements(By.CSS_SELECTOR, "#coil-detail img") == []
    select.select_by_value("C-B")
    wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#coil-strip .coil-frame")) == 2)
    assert text("#coil-counts").split("\n") == ["class 1: 1", "class 2: 0", "class 3: 0", "class 4: 1"]

    # The page kept to its Content-Security-Policy and raised no error; the one refused request is the 401 above.
    log = browser.get_log("browser")
    assert [e for e in log if "Content Security Policy" in e["message"]] == []
    errors = [e["message"] for e in log if e["level"] == "SEVERE"]
    assert len(errors) == 1 and "/review" in errors[0] and "401" in errors[0], errors
