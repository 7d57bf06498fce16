"""The JSON API with the real sample images, bad inputs, and concurrent uploads."""

import concurrent.futures

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from steelinspect.serve.app import ServeConfig, create_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(tiny_runs, real_sample):
    config = ServeConfig(binary=tiny_runs["binary"], multiclass=tiny_runs["multiclass"], segment=None,
                         data=real_sample, max_upload_mb=1.0, engine="torch")
    with TestClient(create_app(config)) as c:
        yield c


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image)[1].tobytes()


def test_health_and_docs(client):
    info = client.get("/api/health").json()
    assert info["status"] == "ok" and info["segmentation"] is False and info["dataset"]["images"] == 30
    assert client.get("/docs").status_code == 200
    assert "/api/predict" in client.get("/openapi.json").json()["paths"]
    page = client.get("/")
    assert page.status_code == 200 and "steelinspect" in page.text


def test_predict_real_images(client, real_sample):
    names = ["112b06482.jpg", "2930b4f52.jpg"]
    files = [("files", (n, (real_sample / "train_images" / n).read_bytes(), "image/jpeg")) for n in names]
    response = client.post("/api/predict", files=files)
    assert response.status_code == 200
    results = response.json()
    assert [r["image_id"] for r in results] == names
    for r in results:
        assert 0 <= r["p_defect"] <= 1 and set(r["p_class"]) == {"1", "2", "3", "4"}
        assert isinstance(r["has_defect"], bool) and r["image"].startswith("data:image/jpeg;base64,")
        for d in r["defects"]:
            assert d["class"] in (1, 2, 3, 4) and d["area_px"] > 0 and len(d["bbox"]) == 4
        if not r["has_defect"]:
            assert r["classes"] == [] and r["defects"] == []


def test_bad_inputs_get_clear_errors_and_the_server_keeps_answering(client, real_sample):
    good = (real_sample / "train_images" / "112b06482.jpg").read_bytes()
    response = client.post("/api/predict", files=[
        ("files", ("notes.txt", b"hello, not an image", "text/plain")),
        ("files", ("cut.jpg", good[:500], "image/jpeg")),
        ("files", ("small.jpg", jpeg(np.full((128, 800), 90, np.uint8)), "image/jpeg")),
    ])
    assert response.status_code == 200
    text, cut, small = response.json()
    assert "not a readable image" in text["error"] and "not a readable image" in cut["error"]
    assert small["notices"] == ["resized from 800x128 to 1600x256"] and "p_defect" in small

    big = jpeg(np.random.default_rng(0).integers(0, 255, (2048, 2048), dtype=np.uint8))
    assert len(big) > 1024 * 1024
    small = jpeg(np.full((128, 800), 90, np.uint8))
    response = client.post("/api/predict", files=[("files", ("big.jpg", big, "image/jpeg")),
                                                   ("files", ("small.jpg", small, "image/jpeg"))])
    big_result, small = response.json()  # too large is that file's error; the other file is answered
    assert response.status_code == 200 and "larger than 1 MB" in big_result["error"] and "p_defect" in small

    assert client.get("/api/dataset/..%2Ftrain.csv").status_code == 400
    assert "outside the data folder" in client.get("/api/dataset/..%2Ftrain.csv").json()["detail"]
    assert client.get("/api/dataset/nope.jpg").status_code == 404
    assert client.get("/api/health").status_code == 200


def test_dataset_browsing(client):
    listing = client.get("/api/dataset", params={"cls": 4, "limit": 100}).json()
    assert listing["total"] == 19 and all(4 in item["truth"] for item in listing["items"])
    item = client.get("/api/dataset/2930b4f52.jpg").json()
    assert item["truth"]["classes"] == [3, 4] and set(item["truth"]["layers"]) == {"3", "4"}
    assert "p_defect" in item["prediction"]
    assert client.get("/api/dataset", params={"verdict": "maybe"}).status_code == 422


def test_concurrent_uploads(client, real_sample):
    data = (real_sample / "train_images" / "1d56ccf70.jpg").read_bytes()

    def post(i):
        return client.post("/api/predict", files=[("files", (f"{i}.jpg", data, "image/jpeg"))])

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(post, range(6)))
    assert all(r.status_code == 200 for r in responses)
    first = responses[0].json()[0]["p_defect"]
    assert all(abs(r.json()[0]["p_defect"] - first) < 1e-6 for r in responses)


def test_segmenter_masks_reach_the_answer(forced_runs, real_sample):
    # Forced runs: every image is defective and class 3 covers it whole (see conftest.forced_runs).
    config = ServeConfig(binary=forced_runs["binary"], multiclass=forced_runs["multiclass"],
                         segment=forced_runs["segment"], engine="torch")
    with TestClient(create_app(config)) as forced:
        assert forced.get("/api/health").json()["segmentation"] is True
        data = (real_sample / "train_images" / "2930b4f52.jpg").read_bytes()
        (result,) = forced.post("/api/predict", files=[("files", ("2930b4f52.jpg", data, "image/jpeg"))]).json()
    assert result["has_defect"] is True and result["classes"]
    assert result["defects"] == [{"class": 3, "area_px": 256 * 1600, "bbox": [0, 0, 1600, 256]}]
    assert list(result["layers"]) == ["3"] and result["layers"]["3"].startswith("data:image/png;base64,")
    assert result["overlay"].startswith("data:image/png;base64,")
