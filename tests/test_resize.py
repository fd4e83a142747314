import math
import re

import numpy as np
import pytest
from PIL import Image

from superres import imresize
from superres.errors import ConfigError
from superres.imaging.resize import METHODS, contributions, cubic


def slow_resize_1d(line: np.ndarray, out_len: int, scale: float, kernel, width: float, aa: bool) -> np.ndarray:
    """MATLAB's imresize along one axis, one output sample at a time, written from the documented algorithm."""
    n = len(line)
    out = np.zeros(out_len)
    for i in range(out_len):
        x = i + 1
        u = x / scale + 0.5 * (1 - 1 / scale)
        w_eff = width / scale if (scale < 1 and aa) else width
        left = math.floor(u - w_eff / 2)
        taps, total = [], 0.0
        for j in range(left, left + math.ceil(w_eff) + 2):
            d = u - j
            w = scale * kernel(np.array(scale * d)) if (scale < 1 and aa) else kernel(np.array(d))
            w = float(w)
            k = j
            while k < 1 or k > n:  # mirror: 0 -> 1, -1 -> 2, n+1 -> n ...
                k = 1 - k if k < 1 else 2 * n + 1 - k
            taps.append((w, k - 1))
            total += w
        out[i] = sum(w / total * line[k] for w, k in taps)
    return out


def slow_imresize(img: np.ndarray, scale: float, method: str) -> np.ndarray:
    kernel, width, aa = METHODS[method]
    out = img.astype(np.float64)
    for axis in (0, 1):  # rows first for equal scales
        n_out = math.ceil(img.shape[axis] * scale)
        moved = np.moveaxis(out, axis, 0)
        res = np.zeros((n_out, *moved.shape[1:]))
        for idx in np.ndindex(moved.shape[1:]):
            res[(slice(None), *idx)] = slow_resize_1d(moved[(slice(None), *idx)], n_out, scale, kernel, width, aa)
        out = np.moveaxis(res, 0, axis)
        if img.dtype == np.uint8:
            out = np.clip(np.floor(out + 0.5), 0, 255)
    return out.astype(img.dtype) if img.dtype == np.uint8 else out


@pytest.mark.parametrize("method", ["bicubic", "bilinear", "nearest", "lanczos2", "lanczos3"])
@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 2, 3, 4, 0.7])
def test_matches_direct_implementation(rng, method, scale):
    img = rng.integers(0, 256, size=(13, 11, 3), dtype=np.uint8)
    fast, slow = imresize(img, scale, method=method), slow_imresize(img, scale, method)
    assert fast.dtype == np.uint8 and fast.shape == slow.shape
    assert np.array_equal(fast, slow)
    f = rng.random((9, 7))
    np.testing.assert_allclose(imresize(f, scale, method=method), slow_imresize(f, scale, method), atol=1e-12)


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("scale", [0.25, 0.5, 1 / 3, 2, 3])
def test_weights_sum_to_one_and_indices_in_range(method, scale):
    kernel, width, aa = METHODS[method]
    w, idx = contributions(17, math.ceil(17 * scale), scale, kernel, width, aa)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    assert idx.min() >= 0 and idx.max() <= 16


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("scale", [0.25, 0.5, 2, 3])
def test_constant_image_stays_constant(method, scale):
    for value, dtype in ((173, np.uint8), (40000, np.uint16), (0.3, np.float64)):
        img = np.full((12, 10, 3), value, dtype=dtype)
        out = imresize(img, scale, method=method)
        assert out.dtype == dtype
        np.testing.assert_allclose(out.astype(np.float64), value, rtol=1e-12)


def test_output_size_is_ceil_and_shape_argument():
    img = np.zeros((13, 11), dtype=np.uint8)
    assert imresize(img, 1 / 2).shape == (7, 6)
    assert imresize(img, 3).shape == (39, 33)
    assert imresize(img, output_shape=(5, 20)).shape == (5, 20)
    assert imresize(np.zeros((30, 20, 3)), 1 / 3).shape == (10, 7, 3)


def test_cubic_kernel_values():
    assert cubic(np.array(0.0)) == 1
    assert cubic(np.array(1.0)) == 0 and cubic(np.array(2.0)) == 0
    np.testing.assert_allclose(cubic(np.array(0.5)), 0.5625)  # a = -0.5
    np.testing.assert_allclose(cubic(np.array(1.5)), -0.0625)


def test_nearest_x2_duplicates_pixels(rng):
    img = rng.integers(0, 256, size=(5, 6), dtype=np.uint8)
    assert np.array_equal(imresize(img, 2, method="nearest"), img.repeat(2, 0).repeat(2, 1))


def test_pil_in_pil_out(photo):
    im = Image.fromarray(photo)
    out = imresize(im, 1 / 2)
    assert isinstance(out, Image.Image) and out.size == (40, 32)
    assert np.array_equal(np.asarray(out), imresize(photo, 1 / 2))


def test_bad_arguments():
    with pytest.raises(ConfigError, match="unknown resize method"):
        imresize(np.zeros((4, 4)), 2, method="cubic-ish")
    with pytest.raises(ConfigError):
        imresize(np.zeros((4, 4)), 0)
    with pytest.raises(ConfigError):
        imresize(np.zeros((4,)), 2)


def test_pil_images_take_every_option_and_keep_alpha(photo):
    """Found by mutmut: the PIL path passed on the scale only, and dropped alpha."""
    alpha = np.tile(np.linspace(0, 255, 80).astype(np.uint8), (64, 1))
    rgba = Image.fromarray(np.dstack([photo, alpha]), "RGBA")
    out = imresize(rgba, output_shape=(30, 50))
    assert out.mode == "RGBA" and out.size == (50, 30)
    arr = np.asarray(out)
    assert np.array_equal(arr[..., :3], imresize(photo, output_shape=(30, 50)))
    assert np.array_equal(arr[..., 3], imresize(alpha, output_shape=(30, 50)))
    sharp = np.asarray(imresize(Image.fromarray(photo), 0.5, antialiasing=False))
    assert np.array_equal(sharp, imresize(photo, 0.5, antialiasing=False))
    assert not np.array_equal(sharp, imresize(photo, 0.5))


def test_refusals_say_why_and_the_input_is_never_returned(photo):
    """Found by mutmut: messages, and a scale-1 resize that handed back the caller's own array."""
    same = imresize(photo, 1.0)
    assert same is not photo and np.array_equal(same, photo)
    before = photo.copy()
    same[:] = 0
    assert np.array_equal(photo, before)
    for args, kwargs, message in [
        ((np.zeros((2, 2, 2, 2)),), {"scale": 2}, "needs an (H, W) or (H, W, C) image"),
        ((np.zeros((0, 4)),), {"scale": 2}, "needs an (H, W) or (H, W, C) image"),
        ((np.zeros((4, 0)),), {"scale": 2}, "needs an (H, W) or (H, W, C) image"),
        ((np.zeros((4, 4)),), {}, "needs a scale or an output_shape"),
        ((np.zeros((4, 4)),), {"output_shape": (0, 3)}, "is empty"),
        ((np.zeros((4, 4), bool),), {"scale": 2}, "does not handle bool images"),
        ((np.zeros((4, 4)),), {"scale": 0}, "scale must be > 0"),
        ((np.zeros((4, 4)),), {"scale": 2, "method": "cubic"}, "choose from bicubic, bilinear"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            imresize(*args, **kwargs)
    assert imresize(np.zeros((1, 1)), output_shape=(1, 1)).shape == (1, 1)
