import numpy as np
import pytest
import torch
from PIL import Image

import superres
from conftest import nearest_edsr
from superres.errors import ConfigError, UnknownModelError
from superres.models import EDSR, EDSRConfig


def tiny(scale=2, n_colors=3):
    torch.manual_seed(0)
    return EDSR(EDSRConfig(scale=scale, n_feats=8, n_resblocks=1, n_colors=n_colors)).eval()


def test_numpy_in_numpy_out(photo):
    out = superres.upscale(photo, 2, method="bicubic")
    assert out.dtype == np.uint8 and out.shape == (128, 160, 3)
    assert np.array_equal(out, superres.imresize(photo, 2))


def test_pil_in_pil_out(photo):
    im = Image.fromarray(photo)
    out = superres.upscale(im, model=tiny(3))
    assert isinstance(out, Image.Image) and out.size == (240, 192)


def test_alpha_channel_is_upscaled_separately(photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])
    out = superres.upscale(rgba, model=tiny())
    assert out.shape == (128, 160, 4) and np.all(out[..., 3] == 200)


def test_grayscale_through_rgb_model_and_colour_through_gray_model(photo):
    gray = photo[..., 1]
    out = superres.upscale(gray, model=tiny())
    assert out.shape == (128, 160)
    out = superres.upscale(photo, model=tiny(n_colors=1))
    assert out.shape == (128, 160, 3)


def test_16bit_stays_16bit(photo):
    px16 = photo.astype(np.uint16) * 257
    out = superres.upscale(px16, model=tiny())
    out8 = superres.upscale(photo, model=tiny())
    assert out.dtype == np.uint16
    assert np.abs(out.astype(np.int64) / 257 - out8).max() <= 1.0


def test_identity_like_model_keeps_the_image():
    """An EDSR whose tail reproduces nearest upscaling: checks channel order, range and rounding end to end."""
    model = nearest_edsr()
    img = np.random.default_rng(1).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    out = superres.upscale(img, model=model, precision="fp32")
    assert np.array_equal(out, img.repeat(2, 0).repeat(2, 1))


def test_errors():
    with pytest.raises(ConfigError):
        superres.upscale(np.zeros((4, 4), np.float32), 2, method="bicubic")
    with pytest.raises(ConfigError):
        superres.upscale(np.zeros((4, 4), np.uint8), 2, model=tiny(), method="bicubic")
    with pytest.raises(UnknownModelError):
        superres.upscale(np.zeros((4, 4), np.uint8), 2, model="nope")
