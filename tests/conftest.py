import contextlib

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


@contextlib.contextmanager
def live_server(server, allowed_hosts=None):
    """superres.web's app for `server` on uvicorn, on a free port of 127.0.0.1, in a thread: yields (host, port)."""
    import socket
    import threading
    import time

    import uvicorn

    from superres.web.app import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app("127.0.0.1", port, server, allowed_hosts=allowed_hosts)
    runner = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not runner.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    try:
        yield "127.0.0.1", port
    finally:
        runner.should_exit = True
        thread.join(timeout=30)
