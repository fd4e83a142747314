import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from superres.evaluation.metrics import psnr, rgb_to_y, ssim


def test_psnr_by_hand_rgb_and_shave(rng):
    hr = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
    sr = hr.copy()
    sr[5:15, 5:15, 0] = np.clip(sr[5:15, 5:15, 0].astype(int) + 10, 0, 255)
    mse = np.mean((sr.astype(float) - hr) ** 2)
    assert psnr(sr, hr, channel="rgb") == pytest.approx(10 * math.log10(255**2 / mse))
    assert psnr(sr, hr, channel="rgb") == pytest.approx(peak_signal_noise_ratio(hr, sr, data_range=255))
    # a border-only difference disappears with shave
    sr2 = hr.copy()
    sr2[0, :, :] = 255 - sr2[0, :, :]
    assert psnr(sr2, hr, shave=1, channel="rgb") == math.inf
    assert psnr(sr2, hr, shave=0, channel="rgb") < 40


def test_y_channel_matlab_coefficients():
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [255, 0, 0]]], dtype=np.uint8)
    y = rgb_to_y(rgb)
    np.testing.assert_allclose(y[0], [235.0, 16.0, 16 + 65.481], atol=1e-9)


def test_y_psnr_matches_independent_computation(rng):
    hr = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-5, 6, size=hr.shape), 0, 255).astype(np.uint8)
    yh = 16 + (65.481 * hr[..., 0] + 128.553 * hr[..., 1] + 24.966 * hr[..., 2]) / 255
    ys = 16 + (65.481 * sr[..., 0] + 128.553 * sr[..., 1] + 24.966 * sr[..., 2]) / 255
    ref = 10 * math.log10(255**2 / np.mean((ys[2:-2, 2:-2] - yh[2:-2, 2:-2]) ** 2))
    assert psnr(sr, hr, shave=2) == pytest.approx(ref)
    assert psnr(sr, hr, shave=2) != pytest.approx(psnr(sr, hr, shave=2, channel="rgb"))


def test_float_output_is_rounded_and_clipped_first(rng):
    hr = rng.integers(0, 256, size=(10, 10), dtype=np.uint8)
    hr[0, 0] = 255
    sr = hr.astype(np.float32) + 0.3  # rounds back to hr
    sr[0, 0] = 300.0  # clips back to 255
    assert psnr(sr, hr) == math.inf
    sr[0, 1] = hr[0, 1] + 0.6  # rounds to one level off
    assert psnr(sr, hr) < math.inf


def test_grayscale_and_16bit(rng):
    hr = rng.integers(0, 256, size=(12, 12), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + 3, 0, 255).astype(np.uint8)
    assert psnr(sr, hr, channel="y") == pytest.approx(peak_signal_noise_ratio(hr, sr, data_range=255))
    hr16 = rng.integers(0, 65536, size=(12, 12), dtype=np.int64).astype(np.uint16)
    sr16 = np.clip(hr16.astype(np.int64) + 300, 0, 65535).astype(np.uint16)
    assert psnr(sr16, hr16) == pytest.approx(peak_signal_noise_ratio(hr16, sr16, data_range=65535))


def test_ssim_is_wang_et_al(rng):
    hr = rng.integers(0, 256, size=(32, 32), dtype=np.uint8)
    sr = np.clip(hr.astype(int) + rng.integers(-20, 21, size=hr.shape), 0, 255).astype(np.uint8)
    ref = structural_similarity(
        hr.astype(float),
        sr.astype(float),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ssim(sr, hr) == pytest.approx(ref)
    assert ssim(hr, hr) == pytest.approx(1.0)
    rgb = np.dstack([hr, hr, hr])
    assert 0 < ssim(np.dstack([sr, sr, sr]), rgb, shave=2, channel="rgb") < 1


def test_shape_mismatch_is_an_error():
    from superres.errors import ConfigError

    with pytest.raises(ConfigError):
        psnr(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


def test_ycbcr_round_trip_and_matlab_values(rng):
    from superres.imaging.color import rgb_to_ycbcr, ycbcr_to_rgb

    rgb = rng.integers(0, 256, size=(7, 5, 3)).astype(np.float64)
    np.testing.assert_allclose(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb, atol=1e-9)
    np.testing.assert_allclose(rgb_to_ycbcr(np.array([255.0, 255, 255])), [235, 128, 128], atol=1e-3)
    np.testing.assert_allclose(rgb_to_ycbcr(np.array([0.0, 0, 0])), [16, 128, 128])
    np.testing.assert_allclose(rgb_to_ycbcr(rgb)[..., 0], rgb_to_y(rgb))
