"""Faults around a run: the disk fills, the folder refuses writes, the output is an input, two processes
write one output, and weights files that lie about their tensors or carry code. Each ends in a one-line
error (or a correct output), and nothing half-written is left."""

import errno
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import nearest_edsr
from superres.cli import main
from superres.imaging.io import Picture, read_image, write_image
from superres.models import save_weights


@pytest.fixture
def folder(tmp_path, photo):
    d = tmp_path / "in"
    d.mkdir()
    write_image(d / "a.png", Picture(photo))
    write_image(d / "b.jpg", Picture(photo))
    return d


def run(capsys, *args):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_disk_full_is_a_one_line_error_per_file_and_leaves_nothing(tmp_path, folder, capsys, monkeypatch):
    import superres.imaging.files as files

    real = os.fdopen

    class Full:
        """A file that takes 1000 bytes, then reports the disk full."""

        def __init__(self, f):
            self.f, self.written = f, 0

        def write(self, data):
            self.written += len(data)
            if self.written > 1000:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

    monkeypatch.setattr(files.os, "fdopen", lambda *a, **k: Full(real(*a, **k)))
    out = tmp_path / "out"
    code, err = run(capsys, "upscale", folder, "--method", "bicubic", "-s", "2", "-o", out)
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 1 and len(lines) == 2 and all("No space left on device" in line for line in lines)
    assert {"a.png", "b.jpg"} == {line.split(": ")[1].split("/")[-1] for line in lines}
    assert not out.exists() or list(out.iterdir()) == []


def test_a_folder_that_refuses_writes(tmp_path, folder, capsys, monkeypatch):
    import superres.imaging.files as files

    real = os.open

    def refuse(path, flags, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "out")) and (flags & (os.O_WRONLY | os.O_RDWR)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(files.os, "open", refuse)
    monkeypatch.setattr(files.tempfile, "mkstemp", lambda **k: refuse(str(k["dir"]), os.O_RDWR))
    out = tmp_path / "out"
    out.mkdir()
    code, err = run(capsys, "upscale", folder, "--method", "bicubic", "-s", "2", "-o", out)
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 1 and len(lines) == 2 and all("Permission denied" in line for line in lines)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("overwrite", [False, True])
def test_the_output_is_an_input(folder, capsys, overwrite):
    before = (folder / "a.png").read_bytes()
    args = ["upscale", folder / "a.png", "--method", "bicubic", "-s", "2", "-o", folder / "a.png"]
    code, err = run(capsys, *args, *(["--overwrite"] if overwrite else []))
    assert code == 1 and "a.png: is an input; refusing to overwrite it" in err
    assert (folder / "a.png").read_bytes() == before


@pytest.mark.parametrize("overwrite", [False, True])
def test_two_processes_writing_one_output(tmp_path, photo, overwrite):
    """Started together on the same output: without --overwrite one wins and the other is told the file
    exists; with it, both finish and the file is one whole image, never a mix or a fragment."""
    write_image(tmp_path / "a.png", Picture(photo))
    write_image(tmp_path / "b.png", Picture(photo[::-1].copy()))
    target = tmp_path / "out.png"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "superres",
                "upscale",
                str(tmp_path / name),
                "--method",
                "bicubic",
                "-s",
                "8",
                "-o",
                str(target),
                *(["--overwrite"] if overwrite else []),
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a.png", "b.png")
    ]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all("Traceback" not in err for _, err in results)
    codes = sorted(code for code, _ in results)
    if overwrite:
        assert codes == [0, 0]
    else:  # the second to finish finds the first one's file: refused at the start, or when linking it in
        assert codes in ([0, 1], [0, 0]) and (codes == [0, 0] or any("already exists" in e for _, e in results))
    got = read_image(target).pixels
    options = [
        np.asarray(read_image(write_image(tmp_path / f"ref{i}.png", Picture(p))).pixels)
        for i, p in enumerate((photo, photo[::-1].copy()))
    ]
    from superres import imresize

    assert any(np.array_equal(got, imresize(o, 8)) for o in options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "out.png", "ref0.png", "ref1.png"]


def test_weights_whose_header_claims_huge_tensors(tmp_path, capsys, photo):
    """A safetensors header that says a tensor is 10^12 x 10^12 is refused in one line, without trying to
    allocate it."""
    good = save_weights(nearest_edsr(2), tmp_path / "good.safetensors").read_bytes()
    n = struct.unpack("<Q", good[:8])[0]
    header = json.loads(good[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [10**12, 10**12]
    body = json.dumps(header).encode()
    (tmp_path / "huge.safetensors").write_bytes(struct.pack("<Q", len(body)) + body + good[8 + n :])
    write_image(tmp_path / "a.png", Picture(photo))
    code, err = run(capsys, "upscale", tmp_path / "a.png", "--model", tmp_path / "huge.safetensors")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ") and "huge.safetensors" in lines[0]


class _Payload:
    """Unpickling this runs a shell command: what a malicious .pt file would carry."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pt_file_carrying_code_is_refused_and_the_code_never_runs(tmp_path, capsys, photo):
    marker = tmp_path / "pwned"
    state = nearest_edsr(2).state_dict()
    state["extra"] = _Payload(marker)
    torch.save(state, tmp_path / "evil.pt")  # the zip format torch.save writes
    write_image(tmp_path / "a.png", Picture(photo))
    code, err = run(capsys, "upscale", tmp_path / "a.png", "--model", tmp_path / "evil.pt")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "evil.pt" in lines[0]
    assert not marker.exists()  # weights_only=True: nothing from the file ran
    assert not (tmp_path / "a_x2.png").exists()
