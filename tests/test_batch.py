"""Batches: the reader/network/writer threads give what one file at a time gives, failures stay with their
file, and torchrun's processes share a folder so that each file is done once."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import nearest_edsr
from superres.api import ImageUpscaler
from superres.cli import main
from superres.errors import SuperresError
from superres.imaging.io import Picture, read_image, write_image
from superres.inference.batch import Job, run_batch, share
from superres.models import load_model, save_weights


@pytest.fixture
def folder(tmp_path, photo, rng):
    """Six images of different kinds: 8-bit, JPEG, 16-bit colour, gray, alpha, and one not an image."""
    d = tmp_path / "in"
    d.mkdir()
    write_image(d / "a.png", Picture(photo))
    write_image(d / "b.jpg", Picture(photo[:40, :56]))
    write_image(d / "c.png", Picture(rng.integers(0, 65536, (30, 34, 3), dtype=np.uint16)))
    write_image(d / "d.png", Picture(photo[..., 1].copy()))
    write_image(d / "e.png", Picture(photo, np.tile(np.arange(80, dtype=np.uint8) * 3, (64, 1))))
    (d / "f.png").write_bytes(b"not a picture")
    return d


def test_share_gives_each_file_to_one_process(tmp_path):
    jobs = []
    for i, size in enumerate([5000, 10, 700, 700, 3000, 1, 2500, 90]):
        path = tmp_path / f"{i}.png"
        path.write_bytes(bytes(size))
        jobs.append(Job(path, tmp_path / f"out{i}.png"))
    for world in (1, 2, 3, 8, 11):
        parts = [share(jobs, r, world) for r in range(world)]
        assert sorted((j for p in parts for j in p), key=str) == sorted(jobs, key=str)
        assert parts == [share(jobs, r, world) for r in range(world)]  # the same split every time
    loads = [sum(j.source.stat().st_size for j in share(jobs, r, 2)) for r in range(2)]
    assert abs(loads[0] - loads[1]) <= 5000 and sum(loads) == 12001  # the largest first, to the lighter side


def test_threaded_batch_writes_what_one_at_a_time_writes(tmp_path, folder, capsys):
    model = save_weights(nearest_edsr(2), tmp_path / "nearest.safetensors")
    code = main(["upscale", str(folder), "--model", str(model), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "f.png" in err and "upscaled 5 of 6 file(s)" in err
    runner = ImageUpscaler(model=load_model(model), scale=2, tile=0)
    for name in "abcde":
        source = next(folder.glob(f"{name}.*"))
        expected = read_image(write_image(tmp_path / "expected" / source.name, runner(read_image(source))))
        got = read_image(tmp_path / "out" / source.name)
        assert got.pixels.dtype == expected.pixels.dtype and np.array_equal(got.pixels, expected.pixels), name
        assert (got.alpha is None) == (expected.alpha is None)
        if got.alpha is not None:
            assert np.array_equal(got.alpha, expected.alpha)
    assert not (tmp_path / "out" / "f.png").exists()


class _Flaky:
    """An upscaler that fails inside the network on one file, after its first output band."""

    def __init__(self, inner: ImageUpscaler, bad: str) -> None:
        self.inner, self.bad, self.size = inner, bad, inner.size

    def choose_denoise(self, picture):
        return self.inner.choose_denoise(picture)

    def stream(self, picture, denoise=None):
        stream = self.inner.stream(picture, denoise)
        if picture.pixels.shape[:2] != self.bad:
            return stream

        def strips():
            yield np.zeros((2, stream.width, 3), np.uint8)
            raise RuntimeError("boom in the network")

        stream.strips = strips()
        return stream


def test_a_network_failure_stays_with_its_file(tmp_path, photo):
    d = tmp_path / "in"
    d.mkdir()
    for i, h in enumerate([64, 48, 32]):
        write_image(d / f"{i}.png", Picture(photo[:h]))
    jobs = [Job(p, tmp_path / "out" / p.name) for p in sorted(d.iterdir())]
    runner = _Flaky(ImageUpscaler(model=nearest_edsr(2), scale=2, device="cpu"), bad=(48, 80))
    outcome = run_batch(jobs, runner)
    assert [j.source.name for j in outcome.done] == ["0.png", "2.png"]
    assert len(outcome.errors) == 1 and "1.png" in outcome.errors[0] and "boom in the network" in outcome.errors[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "2.png"]  # no partial file


def test_a_write_failure_stays_with_its_file(tmp_path, photo):
    d = tmp_path / "in"
    d.mkdir()
    for i in range(3):
        write_image(d / f"{i}.png", Picture(photo))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "1.bmp").mkdir()  # the output path of the second file is a folder
    jobs = [Job(p, tmp_path / "out" / f"{p.stem}.bmp") for p in sorted(d.iterdir())]
    outcome = run_batch(jobs, ImageUpscaler(model=nearest_edsr(2), scale=2, device="cpu"), overwrite=True)
    assert [j.source.name for j in outcome.done] == ["0.png", "2.png"]
    assert len(outcome.errors) == 1 and "1.bmp" in outcome.errors[0]
    with pytest.raises(SuperresError):
        read_image(tmp_path / "out" / "1.bmp")


def test_torchrun_two_processes_share_a_folder(tmp_path, folder):
    """A 2-process torchrun (gloo, CPU): each file done by exactly one rank, one summary, exit code 1 for
    the bad file whichever rank had it."""
    model = save_weights(nearest_edsr(2), tmp_path / "nearest.safetensors")
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "superres",
            "--verbose",
            "upscale",
            str(folder),
            "--model",
            str(model),
            "-o",
            str(out),
            "--device",
            "cpu",
            "--precision",
            "fp32",  # the nearest-neighbour model is exact in fp32 (bf16 rounds its mean shift)
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    err = proc.stderr
    assert proc.returncode != 0 and "src/superres" not in err  # torchrun adds its own report of a failed worker
    written = re.findall(r"\[rank (\d)\] INFO: \S+/in/(\S+) -> ", err)
    assert sorted(name for _, name in written) == ["a.png", "b.jpg", "c.png", "d.png", "e.png"]
    assert {rank for rank, _ in written} == {"0", "1"}  # both processes worked
    assert err.count("upscaled 5 of 6 file(s) x2 on 2 processes") == 1
    assert err.count("f.png: not an image") == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg", "c.png", "d.png", "e.png"]
    assert np.array_equal(
        read_image(out / "a.png").pixels, read_image(folder / "a.png").pixels.repeat(2, 0).repeat(2, 1)
    )
