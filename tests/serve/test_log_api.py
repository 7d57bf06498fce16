"""The inspection station's API (/api/log/*, /api/auth/whoami, uploads recorded) on a real SQLite file and a real
PostgreSQL server: tokens on every write, the review queue's order, history filters and pages, coils and their
reports."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import quote
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np
import pytest

pytest.importorskip("sqlalchemy", reason="the inspection log needs the db extra: pip install -e '.[db]'")
pytest.importorskip("alembic", reason="the inspection log needs the db extra: pip install -e '.[db]'")

from fastapi.testclient import TestClient

from steelinspect.constants import IMAGE_SHAPE
from steelinspect.infer.cascade import PredictConfig
from steelinspect.infer.inspect import Inspector
from steelinspect.inspect_log import open_log, regions_from_masks
from steelinspect.serve.app import ServeConfig, create_app
from steelinspect.serve.tokens import add_token

pytestmark = pytest.mark.slow

T0 = datetime(2026, 3, 1, 6, 0, tzinfo=timezone.utc)
HOSTILE = '<script>alert("coil")</script>'


def row(image_id: str, p_defect: float, classes: str = "") -> dict:
    return {"ImageId": image_id, "p_defect": p_defect, "has_defect": bool(classes), "classes": classes,
            "p_class_1": 0.1, "p_class_2": 0.1, "p_class_3": 0.9 if "3" in classes else 0.1, "p_class_4": 0.1}


def class3_regions() -> list:
    masks = np.zeros((4, *IMAGE_SHAPE), dtype=bool)
    masks[2, 10:40, 100:300] = True
    masks[2, 100:120, 900:1000] = True
    return regions_from_masks(masks)


@pytest.fixture(scope="module")
def inspector(tiny_runs):
    return Inspector(tiny_runs["binary"], tiny_runs["multiclass"], config=PredictConfig(batch_size=1, workers=1,
                                                                                         engine="torch"))


@pytest.fixture
def station(log_url, tiny_runs, inspector, tmp_path):
    """A log with two coils and loose frames, a token for "anna", and the app serving both."""
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.full(IMAGE_SHAPE, 120, np.uint8))
    ids = {}
    with open_log(log_url) as log:  # default bands: OK < 0.3 <= REVIEW <= 0.7 < NG
        record = lambda name, p, **kw: log.record(row(name, p, kw.pop("classes", "")), kw.pop("regions", ()),
                                                  {"binary": {"w": 1}}, **kw)
        # Coil C1 recorded out of frame order: the coil view puts it back in order.
        ids["c1_f2"] = record("c1-2.jpg", 0.9, classes="3", regions=class3_regions(), coil="C1", frame=2,
                              path=image, at=T0 + timedelta(minutes=2))
        ids["c1_f0"] = record("c1-0.jpg", 0.1, coil="C1", frame=0, at=T0)
        ids["c1_f1"] = record("c1-1.jpg", 0.45, classes="1", coil="C1", frame=1, at=T0 + timedelta(minutes=1))
        ids["hostile"] = record('<img src=x onerror="alert(1)">.jpg', 0.8, classes="4", coil=HOSTILE, frame=0,
                                at=T0 + timedelta(minutes=3))
        ids["r_mid"] = record("mid.jpg", 0.5, at=T0 + timedelta(minutes=4))  # uncertainty 1
        ids["r_low"] = record("low.jpg", 0.35, at=T0 + timedelta(minutes=5))  # uncertainty 0.25
        ids["r_mid2"] = record("mid2.jpg", 0.5, at=T0 + timedelta(minutes=6))  # uncertainty 1, a later id
        ids["missing"] = record("gone.jpg", 0.9, classes="3", path=tmp_path / "gone.jpg", at=T0 + timedelta(minutes=7))
    token = add_token(tmp_path / "tokens.txt", "anna")
    config = ServeConfig(binary=tiny_runs["binary"], multiclass=tiny_runs["multiclass"], engine="torch", db=log_url,
                         token_file=tmp_path / "tokens.txt", max_upload_mb=1.0, max_request_mb=2.0)
    with TestClient(create_app(config, inspector)) as client:
        yield client, token, ids, log_url


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def png(value: int = 90) -> bytes:
    return cv2.imencode(".png", np.full((256, 1600), value, np.uint8))[1].tobytes()


def test_every_write_needs_the_right_token_and_reviews_carry_its_reviewer(station):
    client, token, ids, url = station
    review = f"/api/log/inspection/{ids['r_mid']}/review"
    upload = dict(files=[("files", ("a.png", png(), "image/png"))])
    writes = [lambda h: client.post(review, json={"verdict": "confirm"}, headers=h),
              lambda h: client.post("/api/predict", headers=h, **upload),
              lambda h: client.get("/api/auth/whoami", headers=h)]
    for write in writes:
        for headers in ({}, auth("not-the-token"), {"Authorization": f"Basic {token}"}, auth(token + "x")):
            refused = write(headers)
            assert refused.status_code == 401, refused.text
            assert refused.headers["www-authenticate"] == "Bearer" and isinstance(refused.json()["detail"], str)
    with open_log(url) as log:
        assert log.reviews(ids["r_mid"]) == [] and log.count() == 8  # nothing was written

    assert client.get("/api/auth/whoami", headers=auth(token)).json() == {"reviewer": "anna"}
    answer = client.post(review, json={"verdict": "correct", "classes": [2, 4], "note": "seen <b>twice</b>"},
                         headers=auth(token))
    assert answer.status_code == 200, answer.text
    uploaded = client.post("/api/predict", headers=auth(token), data={"coil": "UP-1"},
                           files=[("files", ("a.png", png(), "image/png")),
                                  ("files", ("notes.txt", b"not an image", "text/plain"))])
    assert uploaded.status_code == 200, uploaded.text
    good, bad = uploaded.json()
    assert isinstance(good["inspection_id"], int) and "error" in bad
    with open_log(url) as log:
        [stored] = log.reviews(ids["r_mid"])
        assert stored.id == answer.json()["review_id"] and stored.reviewer == "anna"
        assert stored.verdict == "correct" and stored.classes == (2, 4) and stored.note == "seen <b>twice</b>"
        entry = log.entry(good["inspection_id"])
        assert entry.image_id == "a.png" and entry.coil == "UP-1" and entry.path is None
        assert entry.p_defect == pytest.approx(good["p_defect"])
        assert log.models(entry.model_set_id)["source"] == "upload"
        [problem] = log.problems()
        assert problem.source == "upload" and problem.path == "notes.txt" and "not a readable image" in problem.message
    assert bad["problem_id"] == problem.id
    big = client.post("/api/predict", headers=auth(token),
                      files=[("files", ("big.png", b"\x89PNG\r\n\x1a\n" + b"0" * (3 * 2**19), "image/png"))])
    [too_large] = big.json()  # over --max-upload-mb (1 MB here): that file's error, kept as a problem
    assert "larger than 1 MB" in too_large["error"]
    with open_log(url) as log:
        assert [p.path for p in log.problems()] == ["big.png", "notes.txt"]
        assert too_large["problem_id"] == log.problems()[0].id
    detail = client.get(f"/api/log/inspection/{ids['r_mid']}").json()
    assert detail["reviewed"] is True
    assert detail["reviews"][0]["reviewer"] == "anna" and detail["reviews"][0]["classes"] == [2, 4]


def test_reviews_are_checked_at_the_boundary(station):
    client, token, ids, url = station
    h = auth(token)
    post = lambda inspection, body: client.post(f"/api/log/inspection/{inspection}/review", json=body, headers=h)
    foreign = client.get(f"/api/log/inspection/{ids['c1_f2']}").json()["defects"][0]["id"]
    cases = [
        ({"verdict": "maybe"}, "verdict must be one of confirm, correct, reject_region"),
        ({"verdict": "correct", "classes": [5]}, "classes must be a list of class ids 1 to 4"),
        ({"verdict": "correct", "classes": [0]}, "classes must be a list of class ids 1 to 4"),
        ({"verdict": "correct", "classes": ["3"]}, "classes must be a list of class ids 1 to 4"),
        ({"verdict": "correct", "classes": [True]}, "classes must be a list of class ids 1 to 4"),
        ({"verdict": "correct"}, "needs the true classes"),
        ({"verdict": "confirm", "classes": [1]}, "'correct' verdict only"),
        ({"verdict": "reject_region", "defect_id": foreign}, f"has no region with id {foreign}"),
        ({"verdict": "reject_region"}, "needs the region's defect_id"),
        ({"verdict": "reject_region", "defect_id": "1"}, "defect_id must be"),
        ({"verdict": "confirm", "note": 3}, "note must be text"),
        ({"verdict": "confirm", "note": "x" * 2001}, "at most 2000 characters"),
        ({"verdict": "confirm", "reviewer": "mallory"}, "unknown field(s) 'reviewer'"),
        (["confirm"], "must be a JSON object"),
    ]
    for body, reason in cases:
        answer = post(ids["r_mid"], body)
        assert answer.status_code == 400 and reason in answer.json()["detail"], (body, answer.text)
    raw = client.post(f"/api/log/inspection/{ids['r_mid']}/review", content=b"{not json", headers=h)
    assert raw.status_code == 400
    huge = client.post(f"/api/log/inspection/{ids['r_mid']}/review", content=b" " * 20_000, headers=h)
    assert huge.status_code == 413
    assert post(999_999, {"verdict": "confirm"}).status_code == 404
    assert client.get("/api/log/inspection/999999").status_code == 404
    assert client.get("/api/log/inspection/abc").status_code == 404
    with open_log(url) as log:
        assert not log.reviewed_ids(ids.values())  # none of the refused reviews was stored
    region = client.get(f"/api/log/inspection/{ids['c1_f2']}").json()["defects"][1]["id"]
    assert post(ids["c1_f2"], {"verdict": "reject_region", "defect_id": region}).status_code == 200
    assert post(ids["c1_f2"], {"verdict": "confirm", "classes": []}).status_code == 200  # [] with confirm: none


def test_review_queue_is_most_uncertain_first_and_drops_reviewed_frames(station):
    client, token, ids, _ = station
    queue = [e["id"] for e in client.get("/api/log/review").json()["entries"]]
    # REVIEW band: 0.5 (twice, uncertainty 1: id order), 0.45 (0.5), 0.35 (0.25).
    assert queue == [ids["r_mid"], ids["r_mid2"], ids["c1_f1"], ids["r_low"]]
    assert [e["id"] for e in client.get("/api/log/review", params={"limit": 2}).json()["entries"]] == queue[:2]
    summary = client.get("/api/log/summary").json()
    assert summary["enabled"] is True and summary["total"] == 8 and summary["to_review"] == 4
    assert summary["bands"] == {"OK": 1, "REVIEW": 4, "NG": 3}
    assert client.post(f"/api/log/inspection/{ids['r_mid']}/review", json={"verdict": "confirm"},
                       headers=auth(token)).status_code == 200
    entries = client.get("/api/log/review").json()["entries"]
    assert [e["id"] for e in entries] == queue[1:]
    first = entries[0]
    assert set(first) == {"id", "image_id", "coil", "frame", "inspected_at", "p_defect", "p_class", "classes",
                          "band", "uncertainty", "reviewed"}
    assert first["band"] == "REVIEW" and first["uncertainty"] == pytest.approx(1.0) and first["reviewed"] is False
    assert datetime.fromisoformat(first["inspected_at"]) == T0 + timedelta(minutes=6)
    assert client.get("/api/log/summary").json()["to_review"] == 3
    assert client.get("/api/log/review", params={"limit": 0}).status_code == 400


def test_history_filters_and_keyset_pages(station):
    client, token, ids, _ = station
    history = lambda **params: client.get("/api/log/history", params=params)
    everything = history(limit=1000).json()
    assert [e["id"] for e in everything["entries"]] == sorted(ids.values(), reverse=True)
    assert everything["next_after"] is None
    seen, after = [], None
    while True:
        page = history(limit=3, **({"after": after} if after else {})).json()
        assert len(page["entries"]) <= 3
        seen += [e["id"] for e in page["entries"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == sorted(ids.values(), reverse=True)

    ids_of = lambda **params: {e["id"] for e in history(**params).json()["entries"]}
    assert ids_of(coil="C1") == {ids["c1_f0"], ids["c1_f1"], ids["c1_f2"]}
    assert ids_of(band="NG") == {ids["c1_f2"], ids["hostile"], ids["missing"]}
    assert ids_of(class_id=3) == {ids["c1_f2"], ids["missing"]}
    assert ids_of(coil="C1", band="REVIEW") == {ids["c1_f1"]}
    since, until = (T0 + timedelta(minutes=1)).isoformat(), (T0 + timedelta(minutes=3)).isoformat()
    assert ids_of(since=since, until=until) == {ids["c1_f1"], ids["c1_f2"]}  # until is exclusive
    assert ids_of(since="2026-03-01T07:05:00+01:00") == {ids["r_low"], ids["r_mid2"], ids["missing"]}
    assert ids_of(since="2026-03-01T06:07:00Z") == {ids["missing"]}
    raw = client.get("/api/log/history?since=2026-03-01T07:07:00+01:00").json()["entries"]  # "+" unescaped
    assert [e["id"] for e in raw] == [ids["missing"]]
    assert client.post(f"/api/log/inspection/{ids['r_low']}/review", json={"verdict": "confirm"},
                       headers=auth(token)).status_code == 200
    reviewed = history(reviewed="true").json()["entries"]
    assert [e["id"] for e in reviewed] == [ids["r_low"]] and reviewed[0]["reviewed"] is True
    assert ids["r_low"] not in ids_of(reviewed="false") and len(ids_of(reviewed="false")) == 7
    for params, reason in (({"band": "MAYBE"}, "band must be one of"), ({"class_id": 7}, "class_id must be 1 to 4"),
                           ({"since": "yesterday"}, "ISO-8601"), ({"since": "2026-03-01T06:00:00"}, "time zone"),
                           ({"reviewed": "perhaps"}, "true or false"), ({"limit": 5000}, "limit must be"),
                           ({"after": "x"}, "after must be a whole number")):
        answer = history(**params)
        assert answer.status_code == 400 and reason in answer.json()["detail"], (params, answer.text)


def test_coil_view_in_frame_order_with_counts(station):
    client, token, ids, url = station
    coils = client.get("/api/log/coils").json()["coils"]
    assert [c["coil"] for c in coils] == [HOSTILE, "C1"]  # newest coil first
    c1 = coils[1]
    assert c1["frames"] == 3 and c1["counts"] == {"1": 1, "2": 0, "3": 1, "4": 0}
    assert c1["bands"] == {"OK": 1, "REVIEW": 1, "NG": 1}
    assert datetime.fromisoformat(c1["first_at"]) == T0 and datetime.fromisoformat(c1["last_at"]) == T0 + timedelta(minutes=2)
    view = client.get("/api/log/coil/C1").json()
    assert [f["frame"] for f in view["frames"]] == [0, 1, 2]
    assert [f["id"] for f in view["frames"]] == [ids["c1_f0"], ids["c1_f1"], ids["c1_f2"]]
    assert view["counts"] == {"1": 1, "2": 0, "3": 1, "4": 0}
    last = view["frames"][2]
    assert last["classes"] == [3] and last["band"] == "NG" and len(last["defects"]) == 2
    assert last["defects"][0] == {"class_id": 3, "x": 100, "y": 10, "width": 200, "height": 30, "area": 6000}
    assert client.get("/api/log/coil/nope").status_code == 404
    assert client.get("/api/log/coil/" + "x" * 200).status_code == 400
    assert client.get(f"/api/log/coil/{quote(HOSTILE, safe='')}").json()["frames"][0]["classes"] == [4]
    from steelinspect.inspect_log.coils import _newest_coils

    with open_log(url) as log:  # walking back a row at a time, and the GROUP BY it falls back to: the same order
        assert _newest_coils(log, 5, chunk=1, most=100) == _newest_coils(log, 5, chunk=1, most=1) == [HOSTILE, "C1"]
        assert _newest_coils(log, 1, chunk=1, most=100) == [HOSTILE]


def test_coil_reports_csv_and_html(station):
    client, token, ids, _ = station
    assert client.post(f"/api/log/inspection/{ids['c1_f1']}/review", json={"verdict": "correct", "classes": []},
                       headers=auth(token)).status_code == 200
    report = client.get("/api/log/coil/C1/report.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    assert report.headers["content-disposition"] == 'attachment; filename="coil-C1.csv"'
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert [r["frame"] for r in rows] == ["0", "1", "2"]
    assert [r["image_id"] for r in rows] == ["c1-0.jpg", "c1-1.jpg", "c1-2.jpg"]
    assert [r["band"] for r in rows] == ["OK", "REVIEW", "NG"]
    assert [r["classes"] for r in rows] == ["", "1", "3"]
    assert [r["reviewed_classes"] for r in rows] == ["", "none", ""]
    assert rows[2]["defects_3"] == "2" and rows[2]["area_3"] == str(6000 + 2000) and rows[2]["defects_1"] == "0"
    assert datetime.fromisoformat(rows[0]["inspected_at"]) == T0

    html = client.get(f"/api/log/coil/{quote(HOSTILE, safe='')}/report.html")
    assert html.status_code == 200 and html.headers["content-disposition"].startswith("attachment;")
    page = html.text
    assert "<script" not in page and "<img" not in page and "onerror=\"" not in page
    assert "&lt;script&gt;alert(&quot;coil&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.jpg" in page
    assert "<svg" in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched
    c1 = client.get("/api/log/coil/C1/report.html").text
    assert c1.count('fill="#fad214"') >= 2  # the two class-3 regions in the strip map, in class 3's colour


def test_one_inspection_with_its_pictures(station):
    client, token, ids, _ = station
    shown = client.get(f"/api/log/inspection/{ids['c1_f2']}").json()
    assert shown["id"] == ids["c1_f2"] and shown["classes"] == [3] and shown["reviews"] == []
    assert [d["class_id"] for d in shown["defects"]] == [3, 3] and shown["defects"][0]["area"] == 6000
    pictures = shown["pictures"]
    assert pictures["image"].startswith("data:image/jpeg;base64,") and list(pictures["layers"]) == ["3"]
    assert pictures["overlay"].startswith("data:image/png;base64,") and "image_missing" not in shown
    gone = client.get(f"/api/log/inspection/{ids['missing']}").json()
    assert gone["image_missing"] is True and "pictures" not in gone and "cannot read file" in gone["image_problem"]
    assert client.get(f"/api/log/inspection/{ids['r_mid']}").json()["image_missing"] is True  # no path kept


def test_health_bands_and_a_server_without_tokens(log_url, tiny_runs, inspector, tmp_path):
    import shutil

    from steelinspect.runs.bands import write_bands

    binary = shutil.copytree(tiny_runs["binary"], tmp_path / "binary")
    multiclass = shutil.copytree(tiny_runs["multiclass"], tmp_path / "multiclass")
    curve = {"threshold": [0.2, 0.5], "precision": [0.6, 0.9], "recall": [0.95, 0.7]}
    write_bands(binary, {"step1": {"t1": 0.2, "t2": 0.6, "curve": curve}})
    write_bands(multiclass, {"classes": {"3": {"t1": 0.4, "t2": 0.5, "curve": curve}}})
    config = ServeConfig(binary=binary, multiclass=multiclass, engine="torch", db=log_url)
    with TestClient(create_app(config, inspector)) as client:
        health = client.get("/api/health").json()
        assert health["log"]["enabled"] is True and health["writes"] is False
        bands = client.get("/api/log/bands").json()
        assert bands["available"] is True and bands["step1"]["t1"] == 0.2 and bands["classes"]["3"]["t2"] == 0.5
        refused = client.get("/api/auth/whoami", headers=auth("anything"))
        assert refused.status_code == 401 and "without --token-file" in refused.json()["detail"]
        upload = client.post("/api/predict", files=[("files", ("a.png", png(), "image/png"))], headers=auth("x"))
        assert upload.status_code == 401  # recorded uploads are writes
        assert client.get("/api/log/summary").json()["total"] == 0
    with open_log(log_url) as log:  # uploads would be banded with the tuned T1/T2
        assert log.count() == 0
    plain = ServeConfig(binary=tiny_runs["binary"], multiclass=tiny_runs["multiclass"], engine="torch")
    with TestClient(create_app(plain, inspector)) as client:
        assert client.get("/api/health").json()["log"] == {"enabled": False, "db": None}
        assert client.get("/api/log/bands").json() == {"available": False, "step1": None, "classes": {}}
        assert client.get("/api/log/summary").json()["enabled"] is False
        assert client.get("/api/log/history").status_code == 404
        answer = client.post("/api/predict", files=[("files", ("a.png", png(), "image/png"))])
        assert answer.status_code == 200 and answer.json()[0]["inspection_id"] is None  # open without --db
