"""Warm models (superres.inference.warm): a second call reads nothing again; a changed file is read again."""

import os
import threading

import numpy as np
import pytest

import superres
from conftest import nearest_edsr
from superres.inference.warm import WARM, WarmModels
from superres.models import checkpoints, save_weights


@pytest.fixture
def reads(monkeypatch):
    """The weights files read, in order."""
    seen = []
    real = checkpoints.read_weights

    def counting(path):
        seen.append(os.path.basename(str(path)))
        return real(path)

    monkeypatch.setattr(checkpoints, "read_weights", counting)
    return seen


def test_the_second_call_reads_nothing_and_a_changed_file_is_read_again(tmp_path, reads):
    path = save_weights(nearest_edsr(2), tmp_path / "n.safetensors")
    img = np.zeros((6, 5, 3), np.uint8)
    first = superres.upscale(img, model=str(path), precision="fp32")
    assert np.array_equal(superres.upscale(img, model=str(path), precision="fp32"), first)
    assert reads == ["n.safetensors"]
    save_weights(nearest_edsr(3), path)  # the same name, other weights (size and time change)
    os.utime(path, ns=(1, 1))
    assert superres.upscale(img, model=str(path), precision="fp32").shape == (18, 15, 3)
    assert reads == ["n.safetensors", "n.safetensors"]


def test_the_default_and_its_photo_pair_load_once(reads):
    img = np.zeros((6, 5, 3), np.uint8)
    for _ in range(3):
        superres.upscale(img, scale=2, precision="fp32")
    # the default, and its photo model (which --denoise and auto specialise)
    assert sorted(reads) == ["mspan-photo.safetensors", "mspan.safetensors"]


def test_threads_asking_for_one_model_read_it_once_and_the_cache_is_bounded(tmp_path, reads):
    paths = [save_weights(nearest_edsr(2), tmp_path / f"m{i}.safetensors") for i in range(3)]
    cache = WarmModels(size=2)
    got = []
    threads = [threading.Thread(target=lambda: got.append(cache.load(paths[0]))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert reads == ["m0.safetensors"] and all(h is got[0] for h in got)
    cache.load(paths[1])
    cache.load(paths[2])  # the least recently used (m0) goes
    cache.load(paths[0])
    assert reads == ["m0.safetensors", "m1.safetensors", "m2.safetensors", "m0.safetensors"]
    assert WARM is not cache


def test_a_replaced_registered_model_is_read_again(tmp_path):
    from superres.cli.main import main

    img = np.zeros((6, 5, 3), np.uint8)
    assert main(["models", "add", str(save_weights(nearest_edsr(2), tmp_path / "a.safetensors")), "--name", "m"]) == 0
    assert superres.upscale(img, model="m", precision="fp32").shape == (12, 10, 3)
    b = save_weights(nearest_edsr(3), tmp_path / "b.safetensors")
    assert main(["models", "add", str(b), "--name", "m", "--replace"]) == 0
    assert superres.upscale(img, model="m", precision="fp32").shape == (18, 15, 3)
