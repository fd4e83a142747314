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


def nearest_edsr(scale: int = 2):
    """An EDSR whose weights make it nearest-neighbour upscaling: an exact, hand-checkable model."""
    import torch

    from superres.models import EDSR, EDSRConfig

    model = EDSR(EDSRConfig(scale=scale, n_feats=4, n_resblocks=0)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        # head copies RGB into features 0..2 (after mean subtraction); the body conv is zero, the skip passes it
        for c in range(3):
            model.head[0].weight[c, c, 1, 1] = 1
            for k in range(4):  # upsampler: every sub-pixel of channel c reads feature c
                model.tail[0][0].weight[c * 4 + k, c, 1, 1] = 1
            model.tail[1].weight[c, c, 1, 1] = 1
    return model
