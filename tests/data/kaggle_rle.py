"""The usual Kaggle kernel RLE code: the reference for correctness (tests/data/test_rle.py) and speed
(bench/rle.py)."""

import numpy as np


def kernel_decode(mask_rle, shape=(256, 1600)):
    """The usual Kaggle kernel decoder, as the reference for correctness and speed."""
    s = mask_rle.split()
    starts, lengths = [np.asarray(x, dtype=int) for x in (s[0:][::2], s[1:][::2])]
    starts -= 1
    ends = starts + lengths
    img = np.zeros(shape[0] * shape[1], dtype=np.uint8)
    for lo, hi in zip(starts, ends):
        img[lo:hi] = 1
    return img.reshape(shape, order="F")


def kernel_encode(img):
    pixels = img.T.flatten()
    pixels = np.concatenate([[0], pixels, [0]])
    runs = np.where(pixels[1:] != pixels[:-1])[0] + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)
