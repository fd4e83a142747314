import itertools

import numpy as np
import pytest

from superres import imresize
from superres.errors import ConfigError
from superres.inference.correction import correct, correct_strips


def naive_correct(sr, ref, tau):
    out = sr.copy()
    for idx in np.ndindex(sr.shape):
        if abs(int(sr[idx]) - int(ref[idx])) > tau:
            out[idx] = ref[idx]
    return out


@pytest.mark.parametrize("tau", [0, 5, 20.5, 255])
def test_matches_per_pixel_loop(rng, tau):
    sr = rng.integers(0, 256, size=(9, 8, 3), dtype=np.uint8)
    ref = rng.integers(0, 256, size=(9, 8, 3), dtype=np.uint8)
    assert np.array_equal(correct(sr, ref, tau), naive_correct(sr, ref, tau))


def test_default_reference_is_bilinear(rng):
    lr = rng.integers(0, 256, size=(6, 7, 3), dtype=np.uint8)
    sr = rng.integers(0, 256, size=(12, 14, 3), dtype=np.uint8)
    ref = imresize(lr, 2, method="bilinear")
    assert np.array_equal(correct(sr, threshold=30, lr=lr), naive_correct(sr, ref, 30))


def test_16bit_threshold_in_8bit_levels():
    sr = np.array([[1000, 20000]], dtype=np.uint16)
    ref = np.array([[1000 + 257 * 10, 1000]], dtype=np.uint16)
    assert correct(sr, ref, 20).tolist() == [[1000, 1000]]


def test_errors():
    with pytest.raises(ConfigError):
        correct(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8), 5)
    with pytest.raises(ConfigError):
        correct(np.zeros((2, 2), np.uint8))


@pytest.mark.parametrize("scale", [2, 3])
def test_correcting_strips_equals_correcting_the_whole(rng, scale):
    """Strips of any height, aligned to LR rows or not: the same result as the whole image."""
    lr = rng.integers(0, 256, size=(13, 9, 3), dtype=np.uint8)
    sr = rng.integers(0, 256, size=(13 * scale, 9 * scale, 3), dtype=np.uint8)
    whole = correct(sr, threshold=40, lr=lr)
    cuts = [0, 1, 5, 6 * scale, 6 * scale + 1, 13 * scale]
    strips = correct_strips((sr[a:b] for a, b in itertools.pairwise(cuts)), lr, scale, threshold=40)
    assert np.array_equal(np.concatenate(list(strips)), whole)
