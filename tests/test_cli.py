import numpy as np
import pytest
import torch

from superres.cli.main import main
from superres.imaging.io import Picture, read_image, write_image
from superres.models import EDSR, EDSRConfig, save_weights


@pytest.fixture
def model_file(tmp_path):
    torch.manual_seed(0)
    return save_weights(EDSR(EDSRConfig(scale=2, n_feats=8, n_resblocks=1)), tmp_path / "m.safetensors")


@pytest.fixture
def images(tmp_path, photo):
    folder = tmp_path / "in"
    folder.mkdir()
    write_image(folder / "a.png", Picture(photo))
    write_image(folder / "b.jpg", Picture(photo[:40, :50]))
    return folder


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_upscale_one_file_with_method(tmp_path, images, capsys, photo):
    code, _, err = run(
        capsys, "upscale", images / "a.png", "--method", "bicubic", "-s", "3", "-o", tmp_path / "big.png"
    )
    assert code == 0, err
    assert read_image(tmp_path / "big.png").pixels.shape == (192, 240, 3)


def test_upscale_folder_with_model_file(tmp_path, images, model_file, capsys):
    out = tmp_path / "out"
    code, _, err = run(capsys, "upscale", images, "--model", model_file, "-o", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]
    assert read_image(out / "b.jpg").pixels.shape == (80, 100, 3)


def test_default_output_beside_input_with_suffix(images, capsys):
    code, _, _ = run(capsys, "upscale", images / "a.png", "--method", "bilinear", "-s", "2")
    assert code == 0 and (images / "a_x2.png").exists()
    code, _, _ = run(
        capsys,
        "upscale",
        str(images / "*.png"),
        "--method",
        "nearest",
        "-s",
        "2",
        "--suffix",
        "_big",
        "--format",
        "bmp",
    )
    assert code == 0 and (images / "a_big.bmp").exists() and (images / "a_x2_big.bmp").exists()


def test_batch_with_bad_files_reports_each_and_continues(tmp_path, images, capsys):
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    (images / "empty.jpg").write_bytes(b"")
    out = tmp_path / "out"
    code, _, err = run(capsys, "upscale", images, tmp_path / "missing.png", "--method", "bicubic", "-s", "2", "-o", out)
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3
    assert any("broken.png" in e for e in errors) and any("empty.jpg" in e for e in errors)
    assert any("missing.png: no such file" in e for e in errors)
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]  # the good ones, nothing partial


def test_never_overwrites_without_flag_and_never_clobbers_input(tmp_path, images, capsys):
    target = tmp_path / "o.png"
    target.write_bytes(b"precious")
    code, _, err = run(capsys, "upscale", images / "a.png", "--method", "bicubic", "-s", "2", "-o", target)
    assert code == 1 and "already exists" in err and target.read_bytes() == b"precious"
    code, _, _ = run(capsys, "upscale", images / "a.png", "--method", "bicubic", "-s", "2", "-o", target, "--overwrite")
    assert code == 0 and read_image(target).pixels.shape == (128, 160, 3)
    before = (images / "a.png").read_bytes()
    code, _, err = run(
        capsys, "upscale", images / "a.png", "--method", "bicubic", "-s", "2", "-o", images / "a.png", "--overwrite"
    )
    assert code == 1 and "is an input" in err and (images / "a.png").read_bytes() == before


def test_grayscale_16bit_and_alpha_survive(tmp_path, model_file, capsys, rng):
    gray16 = rng.integers(0, 65536, size=(12, 10), dtype=np.int64).astype(np.uint16)
    write_image(tmp_path / "g.png", Picture(gray16))
    rgba = rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)
    write_image(tmp_path / "t.png", Picture(rgba, np.full((12, 10), 128, np.uint8)))
    code, _, err = run(
        capsys, "upscale", tmp_path / "g.png", tmp_path / "t.png", "--model", model_file, "-o", tmp_path / "out"
    )
    assert code == 0, err
    g = read_image(tmp_path / "out" / "g.png")
    assert g.pixels.dtype == np.uint16 and g.pixels.shape == (24, 20)
    t = read_image(tmp_path / "out" / "t.png")
    assert t.alpha is not None and t.alpha.shape == (24, 20) and np.all(t.alpha == 128)


def test_usage_errors_exit_2(tmp_path, images, capsys):
    assert run(capsys, "upscale", images / "a.png", "--method", "bicubic")[0] == 2  # no scale
    assert run(capsys, "upscale", images / "a.png", "--method", "bicubic", "-s", "two")[0] == 2
    assert run(capsys, "upscale", images / "a.png", "-s", "2", "--model", "no-such-model")[0] == 2
    code, _, err = run(capsys, "upscale", images, "--method", "bicubic", "-s", "2", "-o", tmp_path / "one.png")
    assert code == 2 and "give a folder" in err
    assert run(capsys, "frobnicate")[0] == 2


def test_bad_model_file_is_one_line(tmp_path, images, capsys):
    (tmp_path / "bad.safetensors").write_bytes(b"nope")
    code, _, err = run(capsys, "upscale", images / "a.png", "--model", tmp_path / "bad.safetensors")
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_degrade_writes_benchmark_names(tmp_path, images, capsys, photo):
    code, _, _ = run(capsys, "degrade", images / "a.png", "--scale", "3", "-o", tmp_path / "lr")
    assert code == 0
    from superres import imresize

    lr = read_image(tmp_path / "lr" / "ax3.png").pixels
    hr = photo[:63, :78]
    assert np.array_equal(lr, imresize(hr, 1 / 3))


def test_info_and_models(capsys, model_file):
    code, out, _ = run(capsys, "info", "edsr-baseline", "--scale", "4", "--input-size", "24x32")
    assert code == 0 and "1,517,571" in out and "(3, 96, 128)" in out
    code, out, _ = run(capsys, "info", model_file)
    assert code == 0 and "EDSR x2" in out
    from superres.inference.openvino import installed

    backend = "openvino" if installed() else "torch"  # make test installs OpenVINO
    assert f"upscale here runs it with backend {backend} on cpu" in out and "int8" not in out
    code, out, _ = run(capsys, "info", "mdsr-medium")
    assert code == 0 and ("--precision int8 runs its shipped quantised files" in out) == installed()
    code, out, _ = run(capsys, "models")
    assert code == 0 and "edsr-baseline" in out


def test_python_module_entry_point(tmp_path, images):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "superres", "upscale", str(images / "nope.png"), "--method", "bicubic", "-s", "2"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


def test_correct_option(tmp_path, images, model_file, capsys):
    from superres import imresize

    code, _, err = run(
        capsys, "upscale", images / "a.png", "--model", model_file, "--correct", "0", "-o", tmp_path / "c.png"
    )
    assert code == 0, err
    lr = read_image(images / "a.png").pixels
    assert np.array_equal(read_image(tmp_path / "c.png").pixels, imresize(lr, 2, method="bilinear"))
    code, _, _ = run(capsys, "upscale", images / "a.png", "--model", model_file, "--correct", "-o", tmp_path / "d.png")
    assert code == 0 and (tmp_path / "d.png").exists()
    code, _, err = run(capsys, "upscale", images / "a.png", "--method", "bicubic", "-s", "2", "--correct", "5")
    assert code == 2 and "needs a model" in err


def test_pixel_limit_option(tmp_path, images, capsys):
    code, _, err = run(
        capsys,
        "upscale",
        images / "a.png",
        "--method",
        "bicubic",
        "-s",
        "2",
        "--max-pixels",
        "100",
        "-o",
        tmp_path / "x.png",
    )
    assert code == 1 and "over the limit" in err and not (tmp_path / "x.png").exists()


def test_correct_flag_before_an_input(tmp_path, images, model_file, capsys):
    code, _, err = run(capsys, "upscale", "--model", model_file, "-o", tmp_path / "o", "--correct", images / "a.png")
    assert code == 0, err
    assert (tmp_path / "o" / "a.png").exists()


def test_two_inputs_with_the_same_output_name(tmp_path, images, capsys, photo):
    write_image(images / "a.bmp", Picture(photo))
    code, _, err = run(
        capsys,
        "upscale",
        images / "a.png",
        images / "a.bmp",
        "--method",
        "bicubic",
        "-s",
        "2",
        "-o",
        tmp_path / "o",
        "--format",
        "png",
        "--overwrite",
    )
    assert code == 1 and "would also be made from" in err
    assert np.array_equal(read_image(tmp_path / "o" / "a.png").pixels, superres_imresize(photo, 2))


def superres_imresize(img, s):
    from superres import imresize

    return imresize(img, s)


def test_streamed_output_equals_the_whole_image_pipeline(tmp_path, model_file, capsys, photo):
    """The CLI writes PNGs band by band (tiles of 16 rows here, with the correction per band): the file
    must hold what the API makes in one piece."""
    from superres import ImageUpscaler, correct, load_model

    alpha = np.tile(np.linspace(0, 255, photo.shape[1]).astype(np.uint8), (photo.shape[0], 1))
    write_image(tmp_path / "in.png", Picture(photo, alpha))
    code, _, err = run(
        capsys,
        "upscale",
        tmp_path / "in.png",
        "--model",
        model_file,
        "--tile",
        "16",
        "--correct",
        "10",
        "-o",
        tmp_path / "out.png",
    )
    assert code == 0, err
    got = read_image(tmp_path / "out.png")
    whole = ImageUpscaler(model=load_model(model_file), tile=0)(Picture(photo, alpha))
    expected = correct(whole.pixels, threshold=10, lr=photo)
    assert np.abs(got.pixels.astype(int) - expected).max() <= 1 and np.mean(got.pixels == expected) > 0.999
    assert np.array_equal(got.alpha, whole.alpha)


def test_sigterm_during_upscale_leaves_no_partial_file(tmp_path, monkeypatch, capsys):
    """SIGTERM arriving while the network runs (sent from inside it, so there is no race): the command
    stops with 130 and leaves nothing in the output folder."""
    import os
    import signal

    from superres.inference.upscaler import Upscaler

    write_image(tmp_path / "big.png", Picture(np.zeros((200, 200, 3), np.uint8)))
    forward = Upscaler._forward
    calls = []

    def forward_then_signal(self, x, cancel=None):
        calls.append(1)
        if len(calls) == 3:  # a few tiles in: the writer has the first bands
            os.kill(os.getpid(), signal.SIGTERM)
        return forward(self, x, cancel)

    monkeypatch.setattr(Upscaler, "_forward", forward_then_signal)
    out = tmp_path / "out"
    tiny = save_weights(EDSR(EDSRConfig(scale=2, n_feats=8, n_resblocks=1)), tmp_path / "tiny.safetensors")
    code = main(["upscale", str(tmp_path / "big.png"), "--model", str(tiny), "--tile", "16", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 130 and "interrupted" in err and "Traceback" not in err and len(calls) == 3
    assert not out.exists() or list(out.iterdir()) == []


def test_sigkill_while_writing_leaves_nothing(tmp_path):
    """Killed outright while the output is being written: the output has no name yet (O_TMPFILE), so
    nothing at all is left behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    torch.manual_seed(0)
    slow = save_weights(EDSR(EDSRConfig(scale=2, n_feats=32, n_resblocks=8)), tmp_path / "slow.safetensors")
    write_image(tmp_path / "big.png", Picture(np.zeros((400, 400, 3), np.uint8)))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "superres",
            "upscale",
            str(tmp_path / "big.png"),
            "--model",
            str(slow),
            "--tile",
            "16",
            "-o",
            str(out),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )

    def writing() -> bool:  # an open file of the process in the output folder: the unnamed output
        try:
            return any(
                os.readlink(f"/proc/{proc.pid}/fd/{fd}").startswith(str(out))
                for fd in os.listdir(f"/proc/{proc.pid}/fd")
            )
        except OSError:
            return False

    deadline = time.monotonic() + 60
    while not writing() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert writing(), "the command never started writing"
    assert list(out.iterdir()) == []  # being written, and still no file to see
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert list(out.iterdir()) == []


def test_demo_with_a_multi_scale_model(tmp_path, capsys):
    import torch

    from superres.models import create_model, save_weights

    torch.manual_seed(0)
    weights = save_weights(create_model("mdsr-tiny"), tmp_path / "ms.safetensors")
    assert (
        main(["demo", "-o", str(tmp_path / "demo"), "--model", str(weights), "--scale", "3", "--image", "coffee"]) == 0
    )
    out = capsys.readouterr().out
    assert all(m in out for m in ("bilinear", "bicubic", "model+correct")) and "shrunk x3" in out
    assert (tmp_path / "demo" / "comparison.png").is_file() and (tmp_path / "demo" / "model.png").is_file()


def test_degrade_presets_write_the_real_files(tmp_path, images, capsys, photo):
    from superres.imaging.degrade import degrade
    from superres.imaging.quality import jpeg_file_quality

    out = tmp_path / "lr"
    code, _, _ = run(capsys, "degrade", images / "a.png", "--scale", "2", "--preset", "jpeg:60", "-o", out)
    data = (out / "ax2.jpg").read_bytes()
    assert code == 0 and jpeg_file_quality(data) == 60
    assert data == degrade(photo, 2, "jpeg:60").jpeg  # the file the degradation made, not a re-encoding
    code, _, _ = run(capsys, "degrade", images / "a.png", "-s", "2", "--preset", "noise:5", "--seed", "4", "-o", out)
    assert code == 0 and np.array_equal(read_image(out / "ax2.png").pixels, degrade(photo, 2, "noise:5", seed=4).pixels)
    code, _, err = run(capsys, "degrade", images / "a.png", "-s", "2", "--preset", "jpeg:60", "-o", out)
    assert code == 1 and "ax2.jpg: already exists" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "degrade", images / "a.png", "-s", "2", "--preset", "jpeg:high", "-o", out)
    assert code == 2 and err.startswith("error: degradation 'jpeg:high'") and len(err.strip().splitlines()) == 1


def test_degrade_refuses_bad_settings_in_one_line(tmp_path, images, capsys):
    for args, message in (
        (["--seed", "-1", "--scale", "2"], "seed must be an integer >= 0"),
        (["--scale", "0.5"], "scale 0.5 would enlarge"),
    ):
        code, _, err = run(capsys, "degrade", images / "a.png", "-o", tmp_path / "lr", "--preset", "jpeg:50", *args)
        assert code == 2 and message in err.strip().splitlines()[-1], err  # argparse adds its usage line above
    assert not (tmp_path / "lr").exists()


def test_eval_report_draws_its_plots_without_choosing_a_matplotlib_backend(tmp_path, photo, capsys, monkeypatch):
    """The plot is drawn on a Figure of its own: matplotlib.use is not called and the process's backend setting
    is as it was (a program that shows figures keeps its own)."""
    matplotlib = pytest.importorskip("matplotlib")
    from PIL import Image

    monkeypatch.setattr(matplotlib, "use", lambda *a, **k: pytest.fail("matplotlib.use was called"))
    backend = dict.__getitem__(matplotlib.rcParams, "backend")  # as set, without resolving it
    folder = tmp_path / "hr"
    folder.mkdir()
    write_image(folder / "a.png", Picture(photo))
    write_image(folder / "b.png", Picture(photo[:, ::-1].copy()))
    code, _, err = run(capsys, "eval", "--data", folder, "--scale", "2", "--report", tmp_path / "report", "-q")
    assert code == 0, err
    assert dict.__getitem__(matplotlib.rcParams, "backend") == backend
    plot = Image.open(tmp_path / "report" / "psnr_hr_x2.png")
    assert plot.format == "PNG" and plot.size == (660, 440)  # 6 x 4 inches at 110 dpi


def test_no_help_lists_a_choice_twice(capsys):
    """`superres [COMMAND] --help`: no {a,b,...} list names a choice twice (eval's --channel read {y,rgb,y,rgb},
    its choices being y, rgb and y,rgb)."""
    import re

    from superres.cli.main import COMMANDS

    for command in [None, *COMMANDS]:
        code = main([command, "--help"] if command else ["--help"])
        out = capsys.readouterr().out
        assert code == 0 and out.startswith("usage: superres")
        for listed in re.findall(r"\{([^}]*)\}", out):
            names = listed.split(",")
            assert len(names) == len(set(names)), (command, listed)
        if command == "eval":
            assert "--channel y|rgb|y,rgb" in out
