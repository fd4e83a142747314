import contextlib

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def cpu_unless_marked_gpu(request, monkeypatch):
    """Tests compare numbers made on the CPU; on a CUDA (or Apple MPS) machine, device 'auto' would pick the GPU
    and fp16 or bf16, in upscaling, eval and training alike. Every test not marked gpu runs as on a machine
    without one: torch reports no CUDA and no MPS (so 'auto' is the CPU), and the processes a test starts
    (torchrun, `python -m superres`) see no CUDA device. Only tests marked gpu see the real devices (their
    skipif runs at collection, before this)."""
    if request.node.get_closest_marker("gpu") is not None:
        return
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # inherited by subprocesses


@pytest.fixture(autouse=True)
def cold_models():
    """Every test starts without warm models (superres.inference.warm) or compiled OpenVINO models: none sees
    what another loaded."""
    from superres.inference.denoise import WARM_PAIRS
    from superres.inference.openvino import COMPILED
    from superres.inference.warm import WARM

    WARM.clear()
    WARM_PAIRS.clear()
    COMPILED.clear()


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def own_cache_folder(session_cache, monkeypatch):
    """Converted OpenVINO models go to a cache folder of this test session (shared by its tests, as a user's
    runs share theirs), never the real one. Tests of the cache itself set SUPERRES_CACHE to their own."""
    monkeypatch.delenv("SUPERRES_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(session_cache))


@pytest.fixture(autouse=True)
def own_data_folder(tmp_path_factory, monkeypatch):
    """Every test has an empty user data folder (`superres models add` writes there), never the real one."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg")))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def photo():
    """A real photo that ships with scikit-image, cut small: uint8 (64, 80, 3)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:164, 180:260])


def answering_chain_net(answer: float):
    """A chain detector (imaging.damage.DamageNet, one output) that answers `answer` for every crop."""
    import torch

    from superres.imaging.damage import DamageNet

    net = DamageNet(outputs=1).eval()
    with torch.no_grad():
        net.head[-1].weight.zero_()
        net.head[-1].bias.fill_(float(np.log(answer / (1 - answer))))
    return net


def nearest_edsr(scale: int = 2, colors: int = 3, gains: tuple[float, ...] | None = None):
    """An EDSR whose weights make it nearest-neighbour upscaling: an exact, hand-checkable model.

    gains: a factor per channel around the model's mean (out_c = m_c + g_c (x_c - m_c)), so that channels
    differ where a test needs them to."""
    import torch

    from superres.models import EDSR, EDSRConfig

    model = EDSR(EDSRConfig(scale=scale, n_feats=4, n_resblocks=0, n_colors=colors)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        # head copies the colours into features 0..; the body conv is zero, the skip passes it
        for c in range(colors):
            model.head[0].weight[c, c, 1, 1] = 1
            for k in range(scale * scale):  # upsampler: every sub-pixel of channel c reads feature c
                model.tail[0][0].weight[c * scale * scale + k, c, 1, 1] = 1
            model.tail[1].weight[c, c, 1, 1] = 1 if gains is None else gains[c]
    return model


def wait_for(condition, seconds: float = 20, what: str = "the condition") -> None:
    """Poll `condition` until it holds; an assertion error after `seconds`."""
    import time

    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@contextlib.contextmanager
def live_server(server, allowed_hosts=None, limits=None):
    """superres.web's app for `server` on uvicorn (the Listener `superres serve` uses, with its ConnectionLimits
    `limits`), on a free port of 127.0.0.1, in a thread: yields (host, port)."""
    import socket
    import threading
    import time

    from superres.web.app import create_app
    from superres.web.listener import Listener

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    app = create_app("127.0.0.1", port, server, allowed_hosts=allowed_hosts)
    runner = Listener(app, server, limits)  # the protocol and limits `superres serve` has
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
