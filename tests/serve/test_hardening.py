"""Hostile input to the server: decompression bombs, bodies over the limits or too slow, symlinks out of --data,
non-image content; every answer carries the security headers and no traceback."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from steelinspect.errors import ConfigError
from steelinspect.serve.app import STATIC, ServeConfig, create_app
from tests.data.fixtures import bomb_jpeg
from tests.serve.conftest import live_server

pytestmark = pytest.mark.slow
SYMLINK_REASON = "symlink to a file outside the data folder"


@pytest.fixture(scope="module")
def hostile_data(real_sample, tmp_path_factory) -> Path:
    """The real sample copied, plus a bomb, a symlink to an image outside the folder and one to an image inside."""
    root = tmp_path_factory.mktemp("hostile") / "data"
    shutil.copytree(real_sample / "train_images", root / "train_images")
    shutil.copy(real_sample / "train.csv", root / "train.csv")
    images = root / "train_images"
    (images / "bomb.jpg").write_bytes(bomb_jpeg(60000, 60000))
    secret = tmp_path_factory.mktemp("elsewhere") / "secret.jpg"
    shutil.copy(images / "112b06482.jpg", secret)
    (images / "outside.jpg").symlink_to(secret)
    (images / "inside.jpg").symlink_to("112b06482.jpg")  # relative, stays in the folder: served
    return root


@pytest.fixture(scope="module")
def client(tiny_runs, hostile_data):
    config = ServeConfig(binary=tiny_runs["binary"], multiclass=tiny_runs["multiclass"], data=hostile_data,
                         max_upload_mb=1.0, max_files=4, engine="torch")
    with TestClient(create_app(config)) as c:
        yield c


def wait_for_predictions(client, deadline_s: float = 60.0) -> dict:
    deadline = time.monotonic() + deadline_s
    while True:
        dataset = client.get("/api/health").json()["dataset"]
        if dataset.get("done") or time.monotonic() > deadline:
            return dataset
        time.sleep(0.1)


def test_bomb_upload_is_that_files_error_and_the_others_are_answered(client, real_sample):
    good = (real_sample / "train_images" / "112b06482.jpg").read_bytes()
    response = client.post("/api/predict", files=[("files", ("good.jpg", good, "image/jpeg")),
                                                   ("files", ("bomb.jpg", bomb_jpeg(60000, 60000), "image/jpeg")),
                                                   ("files", ("after.jpg", good, "image/jpeg"))])
    assert response.status_code == 200
    good_result, bomb, after = response.json()
    assert 0 <= good_result["p_defect"] <= 1 and after["p_defect"] == good_result["p_defect"]
    assert bomb["image_id"] == "bomb.jpg" and bomb["error"] and "p_defect" not in bomb
    assert "Traceback" not in bomb["error"] and "loadsave.cpp" not in bomb["error"]


def test_dataset_with_a_bomb_predicts_the_others_and_health_lists_it(client):
    dataset = wait_for_predictions(client)
    assert dataset["done"] is True
    # 30 real images and inside.jpg are predicted; the bomb is a problem; outside.jpg was never listed.
    assert dataset["images"] == 32 and dataset["predicted"] == 31
    problems = {p["image_id"]: p["error"] for p in dataset["problems"]}
    assert set(problems) == {"bomb.jpg", "outside.jpg"} and dataset["failed"] == 2
    assert "Traceback" not in problems["bomb.jpg"] and SYMLINK_REASON in problems["outside.jpg"]
    items = client.get("/api/dataset", params={"limit": 500}).json()["items"]
    (item,) = [i for i in items if i["image_id"] == "bomb.jpg"]
    assert item["error"] == problems["bomb.jpg"] and item["predicted"] is None
    detail = client.get("/api/dataset/bomb.jpg")
    assert detail.status_code == 422 and detail.json()["detail"].startswith("bomb.jpg: ")
    assert client.get("/api/dataset/2930b4f52.jpg").status_code == 200


def test_symlink_out_of_the_data_folder_is_neither_listed_nor_served(client, tiny_runs, hostile_data):
    listed = {i["image_id"] for i in client.get("/api/dataset", params={"limit": 500}).json()["items"]}
    assert "outside.jpg" not in listed and "inside.jpg" in listed
    refused = client.get("/api/dataset/outside.jpg")
    assert refused.status_code == 403
    assert SYMLINK_REASON in refused.json()["detail"] and "--follow-symlinks" in refused.json()["detail"]
    assert client.get("/api/dataset/inside.jpg").status_code == 200

    # A symlink made while the server runs is refused as well (checked again at each request).
    late = hostile_data / "train_images" / "zz-late.jpg"
    late.symlink_to(hostile_data / "train_images" / "outside.jpg")
    try:
        config = ServeConfig(binary=tiny_runs["binary"], multiclass=tiny_runs["multiclass"], data=hostile_data,
                             engine="torch", follow_symlinks=True)
        with TestClient(create_app(config)) as following:
            listed = {i["image_id"] for i in following.get("/api/dataset", params={"limit": 500}).json()["items"]}
            assert {"outside.jpg", "zz-late.jpg"} <= listed
            assert following.get("/api/dataset/outside.jpg").status_code == 200
        late.unlink()
        late.write_bytes((hostile_data / "train_images" / "112b06482.jpg").read_bytes())
        with TestClient(create_app(ServeConfig(binary=tiny_runs["binary"], multiclass=tiny_runs["multiclass"],
                                               data=hostile_data, engine="torch"))) as strict:
            assert strict.get("/api/dataset/zz-late.jpg").status_code == 200
            late.unlink()
            late.symlink_to(hostile_data / "train_images" / "outside.jpg")
            assert strict.get("/api/dataset/zz-late.jpg").status_code == 403
    finally:
        late.unlink(missing_ok=True)


def test_non_image_and_oversized_files_are_per_file_errors(client, real_sample):
    good = (real_sample / "train_images" / "112b06482.jpg").read_bytes()
    bmp = cv2.imencode(".bmp", np.full((256, 1600), 90, np.uint8))[1].tobytes()  # OpenCV reads it; not accepted
    big = cv2.imencode(".png", np.random.default_rng(0).integers(0, 255, (1024, 1024), dtype=np.uint8))[1].tobytes()
    assert len(big) > 2**20
    response = client.post("/api/predict", files=[("files", ("<img src=x onerror=alert(1)>.bmp", bmp, "image/bmp")),
                                                   ("files", ("big.png", big, "image/png")),
                                                   ("files", ("empty.jpg", b"", "image/jpeg")),
                                                   ("files", ("good.jpg", good, "image/jpeg"))])
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    bmp_result, big_result, empty, good_result = response.json()
    assert bmp_result["image_id"] == "<img src=x onerror=alert(1)>.bmp" and "accepts JPEG or PNG" in bmp_result["error"]
    assert "larger than 1 MB" in big_result["error"] and "--max-upload-mb" in big_result["error"]
    assert "not a readable image" in empty["error"] and "p_defect" in good_result

    too_many = client.post("/api/predict", files=[("files", (f"{i}.jpg", good, "image/jpeg")) for i in range(5)])
    assert too_many.status_code == 413 and "at most 4 per request" in too_many.json()["detail"]


def test_every_answer_carries_the_security_headers(client):
    answers = {path: client.get(path) for path in ("/", "/static/app.js", "/static/style.css", "/api/health",
                                                   "/api/dataset/outside.jpg", "/nope", "/docs")}
    answers["413"] = client.post("/api/predict", content=b"x" * 100, headers={"content-length": str(65 * 2**20)})
    assert answers["413"].status_code == 413
    for name, response in answers.items():
        assert response.headers["x-content-type-options"] == "nosniff", name
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"], name
    page_policy = answers["/"].headers["content-security-policy"]
    assert "script-src 'self';" in page_policy and "style-src 'self';" in page_policy
    assert "unsafe-inline" not in page_policy and "object-src 'none'" in page_policy
    assert "unsafe-inline" in answers["/docs"].headers["content-security-policy"]  # Swagger UI's inline start


def test_the_page_never_parses_strings_as_html():
    """The static files hold no HTML sinks and no inline script or style (the CSP would block them anyway)."""
    for path in STATIC.iterdir():
        text = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in text, f"{path.name} uses {sink}"
        assert not re.search(r"\sstyle\s*=|\son[a-z]+\s*=|<style|<script>", text, re.IGNORECASE), path.name


def test_bad_limits_are_refused(tiny_runs):
    for bad in ({"max_request_mb": 0}, {"max_files": 0}, {"request_timeout": -1}, {"max_upload_mb": float("nan")}):
        with pytest.raises(ConfigError, match="must be positive"):
            ServeConfig(binary=tiny_runs["binary"], multiclass=tiny_runs["multiclass"], **bad)
    cli = subprocess.run([sys.executable, "-m", "steelinspect", "serve", "--binary", "nope", "--multiclass", "nope",
                          "--max-request-mb", "0"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and "--max-request-mb must be positive" in cli.stderr and "Traceback" not in cli.stderr


# A real server: the streaming path as uvicorn drives it, with small limits.
LIMIT_MB, TIMEOUT_S = 1, 2.0


@pytest.fixture(scope="module")
def limited_server(tiny_runs):
    config = ServeConfig(binary=tiny_runs["binary"], multiclass=tiny_runs["multiclass"], engine="torch",
                         max_request_mb=LIMIT_MB, request_timeout=TIMEOUT_S)
    with live_server(create_app(config)) as url:
        yield url


def test_chunked_upload_over_the_limit_is_refused_while_it_streams(limited_server):
    boundary = "hostileboundary"
    total = 256 * 2**20  # what the client would send if the server kept reading
    pulled = 0

    def body():
        nonlocal pulled
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.jpg"\r\n'
                "Content-Type: image/jpeg\r\n\r\n").encode()
        pulled += len(head)
        yield head
        chunk = b"\xff" * 65536
        while pulled < total:
            pulled += len(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    started = time.monotonic()
    response = httpx.post(f"{limited_server}/api/predict", content=body(), timeout=60,
                          headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert "content-length" not in response.request.headers  # chunked: nothing declared up front
    assert response.status_code == 413 and "--max-request-mb" in response.json()["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"
    # The server stopped reading at the limit: the client got to push the limit plus what the kernel's socket
    # buffers hold, not the 256 MB.
    print(f"pulled {pulled / 2**20:.1f} MB of {total / 2**20:.0f} MB in {time.monotonic() - started:.2f} s")
    assert pulled < (LIMIT_MB + 16) * 2**20
    assert httpx.get(f"{limited_server}/api/health").status_code == 200


def read_all(s: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    parts = []
    while chunk := s.recv(65536):
        parts.append(chunk)
    return b"".join(parts)


def test_declared_length_over_the_limit_is_refused_before_the_body(limited_server):
    port = int(limited_server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  + f"Content-Length: {2 * 2**20}\r\n\r\n".encode())
        answer = read_all(s)  # answered with no body byte sent, and closed
    assert answer.startswith(b"HTTP/1.1 413") and b"--max-request-mb" in answer


def test_a_body_that_does_not_arrive_in_time_is_refused(limited_server):
    port = int(limited_server.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S + 20) as s:
        started = time.monotonic()
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n5\r\n--b\r\n\r\n")  # then nothing more: a slow loris
        answer = read_all(s)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408") and b"--request-timeout" in answer
    assert TIMEOUT_S - 0.5 < waited < TIMEOUT_S + 10
