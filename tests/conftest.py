import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def photo():
    """A real photo that ships with scikit-image, cut small: uint8 (64, 80, 3)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:164, 180:260])
