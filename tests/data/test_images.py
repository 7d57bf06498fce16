"""Image decoding: the header is read and the pixel limit applied before anything is decoded, every decode failure
is an ImageError, and training refuses a bad image before its first epoch."""

import struct

import cv2
import numpy as np
import pytest
import torch

from steelinspect.constants import IMAGE_SHAPE, MAX_PIXELS, MAX_PIXELS_ENV
from steelinspect.data.check import preflight
from steelinspect.data.dataset import ImageDataset
from steelinspect.data.images import decode_gray, image_size, pixel_limit, read_gray, read_size
from steelinspect.data.seg_dataset import SegmentDataset, SegSample
from steelinspect.data.transforms import Preprocess
from steelinspect.errors import ConfigError, DataError, ImageError, ImageTooLargeError
from tests.data.fixtures import bomb_bmp, bomb_jpeg, bomb_png, bomb_tiff, small_jpeg, write_image

BOMBS = {"jpeg": bomb_jpeg, "png": bomb_png, "bmp": bomb_bmp, "tiff": bomb_tiff}


def encoded(ext: str, shape=(37, 53), colour=False, params=()) -> bytes:
    image = (np.random.default_rng(0).random(shape) * 255).astype(np.uint8)
    if colour:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".tiff"])
@pytest.mark.parametrize("colour", [False, True])
def test_header_size_matches_the_decoded_image(ext, colour):
    data = encoded(ext, colour=colour)
    assert image_size(data) == (53, 37)
    assert decode_gray(data).shape == (37, 53)


def test_header_size_of_progressive_jpeg_16_bit_png_and_big_tiff_order():
    assert image_size(encoded(".jpg", params=(cv2.IMWRITE_JPEG_PROGRESSIVE, 1))) == (53, 37)
    ok, buf = cv2.imencode(".png", np.zeros((5, 7), np.uint16))
    assert image_size(buf.tobytes()) == (7, 5)
    big_endian = b"MM\0*" + struct.pack(">I", 8) + struct.pack(">H", 2) + struct.pack(">HHII", 256, 4, 1, 70000) \
        + struct.pack(">HHIHH", 257, 3, 1, 9, 0) + b"\0\0\0\0"
    assert image_size(big_endian) == (70000, 9)


def test_jpeg_header_found_after_large_metadata(tmp_path):
    # An APP segment of 60 kB puts the frame header far past the first block read_size looks at.
    data = small_jpeg((9, 11))
    app = b"\xff\xe1" + struct.pack(">H", 60000) + bytes(59998)
    padded = data[:2] + app + data[2:]
    (tmp_path / "meta.jpg").write_bytes(padded)
    assert image_size(padded) == (11, 9)
    assert read_size(tmp_path / "meta.jpg") == (11, 9)
    assert read_gray(tmp_path / "meta.jpg").shape == (9, 11)


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty file"),
        (b"\xff\xd8\xff", "ends inside its header"),
        (b"not an image at all, whatever its name says", "not a JPEG, PNG, BMP or TIFF"),
        (b"\xff\xd8\xff\xda\x00\x02", "without a frame header"),
        (b"\xff\xd8\xff\xe0\x00\x01", "corrupt JPEG segment"),
        (bomb_jpeg(0, 256), "declares 0x256"),
        (b"II*\0" + struct.pack("<IH", 8, 0) + b"\0" * 4, "TIFF without an image size"),
    ],
)
def test_unreadable_headers_are_refused(data, words):
    with pytest.raises(ImageError, match=words):
        image_size(data, "x.jpg")
    with pytest.raises(ImageError, match=words):
        decode_gray(data, "x.jpg")


@pytest.mark.parametrize("ext", [".webp", ".pgm"])
def test_formats_without_a_checked_header_never_reach_the_decoder(ext):
    with pytest.raises(ImageError, match="not a JPEG, PNG, BMP or TIFF"):
        decode_gray(encoded(ext), "x.jpg")


@pytest.mark.parametrize("kind", sorted(BOMBS))
@pytest.mark.parametrize("size", [(32000, 32000), (60000, 60000), (1281, 1280)])  # the last one just over 1,638,400
def test_bombs_are_refused_before_decoding(kind, size, tmp_path):
    data = BOMBS[kind](*size)
    assert len(data) < 2000 and image_size(data) == size
    with pytest.raises(ImageTooLargeError, match=rf"declares {size[0]}x{size[1]} pixels .* over the limit of 1,638,400"):
        decode_gray(data, "bomb")
    (tmp_path / "bomb.jpg").write_bytes(data)
    for read in (read_gray, read_size):
        with pytest.raises(ImageTooLargeError, match="bomb.jpg: image declares"):
            read(tmp_path / "bomb.jpg")


def test_the_limit_is_inclusive_and_overridable(tmp_path, monkeypatch):
    data = encoded(".png", shape=(10, 20))  # 200 pixels
    assert decode_gray(data, max_pixels=200).shape == (10, 20)
    with pytest.raises(ImageTooLargeError, match="over the limit of 199"):
        decode_gray(data, max_pixels=199)
    monkeypatch.setenv(MAX_PIXELS_ENV, "199")
    assert pixel_limit() == 199
    with pytest.raises(ImageTooLargeError):
        decode_gray(data)
    assert decode_gray(data, max_pixels=200).shape == (10, 20)  # an explicit limit wins over the environment
    monkeypatch.setenv(MAX_PIXELS_ENV, "many")
    with pytest.raises(ConfigError, match="STEELINSPECT_MAX_PIXELS='many' is not a whole number"):
        decode_gray(data)
    monkeypatch.delenv(MAX_PIXELS_ENV)
    assert pixel_limit() == MAX_PIXELS == 4 * 1600 * 256
    with pytest.raises(ConfigError):
        pixel_limit(0)


def test_opencv_errors_become_image_errors():
    # With the limit lifted, OpenCV's own limit (2^30 pixels) raises cv2.error: it must come out as ImageError.
    with pytest.raises(ImageError, match="not a readable image \\(OpenCV"):
        decode_gray(bomb_jpeg(60000, 60000), "big.jpg", max_pixels=10**10)


def test_a_file_too_big_for_the_limit_is_not_read(tmp_path):
    path = tmp_path / "huge.jpg"
    path.write_bytes(small_jpeg() + bytes(2 << 20))  # 2 MiB of trailing bytes
    with pytest.raises(ImageTooLargeError, match="huge.jpg: file is 2,09.* bytes, more than an image within the limit "
                                                 "of 100 pixels"):
        read_gray(path, max_pixels=100)
    assert read_gray(path).shape == (8, 8)


def test_a_decode_error_in_a_loader_worker_is_one_line(tmp_path):
    # A PNG whose header is fine but whose pixel data is garbage passes the header check and fails to decode
    # inside the worker process; torch re-raises it with the whole worker traceback as its message.
    data = bytearray(encoded(".png", shape=(64, 128)))
    idat = data.index(b"IDAT")
    data[idat + 4 : idat + 40] = bytes(range(36))
    (tmp_path / "bad.png").write_bytes(bytes(data))
    dataset = ImageDataset(tmp_path, ["bad.png"], np.zeros((1, 1), np.float32), Preprocess(64, 128))
    preflight([dataset])  # the header is readable: only decoding finds this one
    with pytest.raises(ImageError) as caught:
        next(iter(torch.utils.data.DataLoader(dataset, num_workers=1)))
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    assert message == f"{tmp_path / 'bad.png'}: not a readable image (corrupt or unsupported format)"


def test_preflight_names_every_bad_image_before_training(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        write_image(tmp_path / name)
    write_image(tmp_path / "small.jpg", shape=(64, 64))
    (tmp_path / "junk.jpg").write_bytes(b"junk, not a picture")
    (tmp_path / "bomb.jpg").write_bytes(bomb_jpeg(32000, 32000))
    ids = ["a.jpg", "junk.jpg", "bomb.jpg", "small.jpg"]
    classify = ImageDataset(tmp_path, ids, np.zeros((4, 1), np.float32), Preprocess(64, 128))
    with pytest.raises(DataError) as caught:
        preflight([classify])
    problems = {p.file.rsplit("/", 1)[-1]: p.problem for p in caught.value.problems}
    assert sorted(problems) == ["bomb.jpg", "junk.jpg"]  # classification resizes, so 64x64 is fine
    assert "over the limit" in problems["bomb.jpg"] and "not a JPEG" in problems["junk.jpg"]
    assert "junk.jpg: not a readable image" in str(caught.value) and "1 more problem" in str(caught.value)

    segment = SegmentDataset(tmp_path, [SegSample(i, ("", "", "", "")) for i in ("b.jpg", "small.jpg")],
                             Preprocess(*IMAGE_SHAPE))
    with pytest.raises(DataError, match="small.jpg: image is 64x64, expected 1600x256"):
        preflight([segment])
    preflight([ImageDataset(tmp_path, ["a.jpg", "b.jpg"], np.zeros((2, 1), np.float32), Preprocess(64, 128))])


def test_importing_changes_nothing_and_a_decoding_pool_turns_opencv_threads_off():
    """No import-time side effect: OpenCV's thread count is only set where steelinspect starts its own pools."""
    import subprocess
    import sys

    code = ("import cv2; before = cv2.getNumThreads(); cv2.setNumThreads(3)\n"
            "import steelinspect.data.images as images, steelinspect.infer.loader, steelinspect.data.check\n"
            "assert cv2.getNumThreads() == 3, cv2.getNumThreads()\n"
            "with images.decoding_pool(2): pass\n"
            "assert cv2.getNumThreads() == 1, cv2.getNumThreads()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_reduced_jpeg_decode_is_close_to_a_full_decode_and_resize(synth_dir):
    # A synthetic Severstal-like 1600x256 JPEG: decoded at 1/2 and 1/4 scale where the working size allows,
    # then resized as before; the result is within a few grey levels of the full decode + resize.
    from steelinspect.data.images import read_gray, reduction, resize

    path = sorted((synth_dir / "train_images").iterdir())[0]
    full = read_gray(path)
    assert full.shape == (256, 1600)
    for size, factor in (((64, 400), 4), ((64, 128), 4), ((128, 800), 2), ((96, 512), 2), ((256, 512), 1)):
        assert reduction(1600, 256, size) == factor
        reduced = read_gray(path, at_least=size)
        assert reduced.shape == (256 // factor, 1600 // factor)
        diff = np.abs(resize(reduced, size).astype(int) - resize(full, size).astype(int))
        assert diff.mean() < 2.5 and diff.max() < 40, (size, diff.mean(), diff.max())  # of 255 grey levels
    assert reduction(1600, 256, None) == 1
    # Only JPEGs are decoded at a reduced scale (libjpeg's DCT scaling); the header check still comes first.
    assert decode_gray(encoded(".png", (256, 1600)), at_least=(64, 400)).shape == (256, 1600)
    with pytest.raises(ImageTooLargeError):
        decode_gray(bomb_jpeg(32000, 32000), "bomb", at_least=(64, 64))


def test_evaluation_sets_see_what_predict_sees_and_training_decodes_reduced(synth_dir):
    # Thresholds and post-processing are tuned on the evaluation sets: their pixels must be the inference
    # loader's (a whole decode, then the run's preprocessing), bit for bit. Training may decode at 1/2 scale.
    from steelinspect.data.dataset import Augment
    from steelinspect.data.master import build_master
    from steelinspect.data.seg_dataset import SegAugment, samples_from_master
    from steelinspect.data.transforms import Preprocess

    master = build_master(synth_dir).head(2)
    images = synth_dir / "train_images"
    preprocess = Preprocess(128, 800)
    expected = torch.from_numpy(preprocess(read_gray(images / master.ImageId[0])))
    evaluation = ImageDataset(images, master.ImageId.tolist(), np.zeros(2), preprocess)
    assert torch.equal(evaluation[0][0], expected)
    segment = SegmentDataset(images, samples_from_master(master), preprocess)
    assert torch.equal(segment[0][0], expected)
    # Training without any augmentation effect (no crop, flip, brightness or contrast) shows the reduced decode.
    quiet = Augment(hflip=0, vflip=0, brightness=0, contrast=0, crop=1.0)
    training = ImageDataset(images, master.ImageId.tolist(), np.zeros(2), preprocess, quiet)
    reduced = torch.from_numpy(preprocess(read_gray(images / master.ImageId[0], at_least=(128, 800))))
    assert torch.allclose(training[0][0], reduced, atol=1e-3) and not torch.equal(training[0][0], expected)
    seg_training = SegmentDataset(images, samples_from_master(master), preprocess,
                                  augment=SegAugment(hflip=False, vflip=False, brightness=0, contrast=0))
    assert not torch.equal(seg_training[0][0], expected)
