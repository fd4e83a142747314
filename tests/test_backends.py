"""The backend interface (inference/backends.py): every option is honoured or refused, never dropped."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import nearest_edsr
from superres.errors import BackendError, ConfigError
from superres.inference import devices
from superres.inference.backends import BACKENDS, get_backend
from superres.inference.upscaler import Upscaler
from superres.models import as_handle, save_weights


def test_torch_runner_copies_a_network_it_must_move_and_keeps_the_callers_in_place(monkeypatch):
    net = nearest_edsr(2)
    handle = as_handle(net)
    runner = get_backend("torch").prepare(handle, "cpu", "fp32", None)
    assert runner.handle.net is net  # already on the CPU: used as it is
    x = torch.rand(1, 3, 5, 6) * 255
    assert torch.allclose(runner.run(x, 2), torch.nn.functional.interpolate(x, scale_factor=2), atol=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_cpu_network_run_on_the_gpu_stays_on_the_cpu():
    net = nearest_edsr(2)
    up = Upscaler(net, device="cuda", precision="fp32")
    assert up.runner.handle.net is not net and next(up.runner.handle.net.parameters()).is_cuda
    assert next(net.parameters()).device.type == "cpu"
    img = np.random.default_rng(0).integers(0, 256, (9, 11, 3)).astype(np.float32)
    assert np.abs(up(img) - Upscaler(net, device="cpu", precision="fp32")(img)).max() < 1e-2


def test_torch_threads_are_honoured():
    before = torch.get_num_threads()
    try:
        get_backend("torch").prepare(as_handle(nearest_edsr(2)), "cpu", "fp32", 1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_family_that_needs_fp32_gets_it_from_auto_and_refuses_half(monkeypatch):
    handle = as_handle(nearest_edsr(2))
    monkeypatch.setattr(devices, "native_bf16", lambda: True)
    assert Upscaler(handle, device="cpu").precision == "bf16"
    monkeypatch.setattr(type(handle.family), "precisions", lambda self, config: ("fp32",))
    assert Upscaler(handle, device="cpu").precision == "fp32"
    with pytest.raises(ConfigError, match="only in fp32, not bf16"):
        Upscaler(handle, device="cpu", precision="bf16")


def test_onnxruntime_refuses_what_it_cannot_honour_and_keeps_the_thread_count(tmp_path):
    pytest.importorskip("onnxruntime")
    handle = as_handle(nearest_edsr(2))
    with pytest.raises(BackendError, match="CPU only"):
        get_backend("onnxruntime").prepare(handle, "cuda", "auto", None)
    with pytest.raises(BackendError, match="fp32 only, not bf16"):
        Upscaler(handle, backend="onnxruntime", precision="bf16")
    runner = get_backend("onnxruntime").prepare(handle, "auto", "auto", 2)
    assert runner.options.intra_op_num_threads == 2 and runner.precision == "fp32"
    img = np.random.default_rng(0).integers(0, 256, (9, 11, 3)).astype(np.float32)
    ours = Upscaler(handle, backend="onnxruntime", tile=0)(img)
    assert np.abs(ours - Upscaler(handle, backend="torch", precision="fp32", tile=0)(img)).max() < 1e-3


def test_an_onnx_file_does_not_run_in_torch_and_unknown_backends_are_named(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    from superres.inference.onnx import export_onnx
    from superres.models import load_model

    path = export_onnx(nearest_edsr(2), tmp_path / "n.onnx")
    handle = load_model(path)
    assert get_backend("auto", handle, "cpu").name == "openvino"  # where OpenVINO is installed, as make test does
    monkeypatch.setattr("superres.inference.backends.installed", lambda: False)
    assert get_backend("auto", handle, "cpu") is BACKENDS["onnxruntime"]
    with pytest.raises(BackendError, match="runs with the onnxruntime backend"):
        Upscaler(handle, backend="torch")
    with pytest.raises(BackendError, match="did you mean 'torch'"):
        get_backend("torhc")
    assert load_model(save_weights(nearest_edsr(2), tmp_path / "n.safetensors")).onnx is None


def test_same_device_reads_cuda_without_an_index_as_the_current_one():
    from superres.inference.backends import same_device

    assert same_device(torch.device("cpu"), torch.device("cpu"))
    assert not same_device(torch.device("cpu"), torch.device("cuda:0"))
    assert same_device(torch.device("cuda"), torch.device("cuda:0"))  # no GPU here: the current one is 0
    assert not same_device(torch.device("cuda:1"), torch.device("cuda"))


def test_a_backend_that_cannot_honour_the_options_refuses_them_once_not_per_picture(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from superres.api import ImageUpscaler
    from superres.cli.main import main
    from superres.imaging.io import Picture, write_image

    weights = save_weights(nearest_edsr(2), tmp_path / "n.safetensors")
    with pytest.raises(BackendError, match="fp32 only"):
        ImageUpscaler(model=str(weights), backend="onnxruntime", precision="bf16")
    for name in ("a.png", "b.png"):
        write_image(tmp_path / name, Picture(np.zeros((8, 8, 3), np.uint8)))
    args = ["upscale", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--model", str(weights)]
    assert main([*args, "--backend", "onnxruntime", "--precision", "bf16", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("fp32 only") == 1 and not (tmp_path / "out").exists()


def test_an_onnx_export_refuses_what_needs_pytorch_weights_in_one_line(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from superres.cli.main import main
    from superres.inference.onnx import export_onnx
    from superres.models import load_model

    path = export_onnx(nearest_edsr(2), tmp_path / "n.onnx")
    handle = load_model(path)
    assert handle.device.type == "cpu" and handle.to("cpu") is handle
    with pytest.raises(ConfigError, match="ONNX export"):
        handle.to("cuda")
    with pytest.raises(ConfigError, match="no PyTorch weights"):
        save_weights(handle, tmp_path / "n.safetensors")
    assert main(["export", str(path), "-o", str(tmp_path / "again.onnx")]) == 2
    err = capsys.readouterr().err
    assert "already an ONNX export" in err and "Traceback" not in err


def test_an_export_refuses_inputs_below_its_traced_size_in_one_line(tmp_path):
    pytest.importorskip("onnxruntime")
    from superres.inference.onnx import export_onnx
    from superres.models import create_model

    torch.manual_seed(0)
    path = export_onnx(create_model("rlfn-ntire", scale=2), tmp_path / "rlfn.onnx")
    import superres

    with pytest.raises(BackendError, match="at least 15 pixels a side, not 8x8"):
        superres.upscale(np.zeros((8, 8, 3), np.uint8), model=path)
    assert superres.upscale(np.zeros((16, 17, 3), np.uint8), model=path).shape == (32, 34, 3)


def test_approximate_tiles_out_of_gpu_memory_are_one_line(monkeypatch):
    handle = as_handle(nearest_edsr(2))
    monkeypatch.setattr(type(handle.family), "receptive_radius", lambda self, config, scale: None)
    up = Upscaler(handle, device="cpu", precision="fp32", tile=16)

    def no_room(x, cancel=None):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(up, "_forward", no_room)
    with pytest.raises(ConfigError, match="out of GPU memory with 16 px tiles"):
        up(np.zeros((40, 40, 3), np.float32))


def test_openvino_matches_torch_honours_threads_and_refuses_what_it_cannot_do(tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("onnx")
    from superres.inference.onnx import export_onnx
    from superres.models import create_model, load_model

    torch.manual_seed(0)
    handle = as_handle(create_model("mdsr-tiny"))
    img = np.random.default_rng(2).integers(0, 256, (23, 29, 3)).astype(np.float32)
    for scale in (2, 3):
        ov = Upscaler(handle, scale, backend="openvino", precision="fp32", tile=0)(img)
        assert np.abs(ov - Upscaler(handle, scale, precision="fp32", tile=0, backend="torch")(img)).max() < 1e-2
    tiled = Upscaler(handle, 2, backend="openvino", precision="fp32", tile=16)(img)  # exact tiles, any size
    assert np.abs(tiled - Upscaler(handle, 2, precision="fp32", tile=0, backend="torch")(img)).max() < 1e-2
    runner = get_backend("openvino").prepare(handle, "cpu", "fp32", 1)
    runner.run(torch.rand(1, 3, 8, 8), 2)
    assert runner._compiled[2].get_property("INFERENCE_NUM_THREADS") == 1
    with pytest.raises(BackendError, match="CPU here"):
        Upscaler(handle, 2, backend="openvino", device="cuda")
    with pytest.raises(BackendError, match="fp32 or bf16, not fp16"):
        Upscaler(handle, 2, backend="openvino", precision="fp16")
    path = export_onnx(handle, tmp_path / "m.onnx", scale=3)  # an export runs through OpenVINO too
    from_file = Upscaler(load_model(path), backend="openvino", tile=0)(img)
    assert np.abs(from_file - Upscaler(handle, 3, precision="fp32", tile=0, backend="torch")(img)).max() < 1e-2


def test_ctrl_c_after_openvino_models_are_released_is_handled_not_a_crash(tmp_path):
    """OpenVINO's CPU plugin points the main thread's signal stack at memory of its own; with one Core per
    compile, releasing them out of order left it pointing at freed memory and the next Ctrl-C crashed (exit
    139). In a child process, so that a crash fails this test rather than the whole run."""
    pytest.importorskip("openvino")
    script = textwrap.dedent("""
        import gc, os, signal, time
        import numpy as np, torch
        from superres.inference.openvino import COMPILED
        from superres.inference.upscaler import Upscaler
        from superres.models import create_model
        from superres.models.handle import as_handle

        img = np.zeros((20, 20, 3), np.float32)
        for threads in (None, 1, 2):  # three compiled models, released below in another order than made
            torch.manual_seed(threads or 0)
            Upscaler(as_handle(create_model("mdsr-tiny")), 2, backend="openvino", threads=threads, tile=0)(img)
        COMPILED.clear()
        gc.collect()
        seen = []
        signal.signal(signal.SIGINT, lambda *_: seen.append(1))
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        print("handled", len(seen))
    """)
    env = {**os.environ, "SUPERRES_CACHE": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and "handled 1" in proc.stdout, proc.stderr[-2000:]


def test_auto_runs_openvino_on_a_cpu_unless_it_would_cost_accuracy_or_is_not_there(monkeypatch):
    pytest.importorskip("openvino")
    from superres.inference import backends
    from superres.models import create_model

    handle = as_handle(create_model("mdsr-tiny"))
    family = type(handle.family)
    monkeypatch.setattr(devices, "native_bf16", lambda: True)  # as on a CPU with AVX512-BF16 or AMX
    upscaler = Upscaler(handle, 2, tile=0)
    assert (upscaler.runner.backend, upscaler.precision) == ("openvino", "bf16")
    assert get_backend("auto", handle, "cpu", "fp16").name == "torch"  # fp16 on a CPU: PyTorch's bf16
    # a family that keeps its accuracy in bf16 only under PyTorch's autocast (CARN-M) stays with PyTorch bf16
    monkeypatch.setattr(family, "openvino_precisions", lambda self, config: ("fp32",))
    upscaler = Upscaler(handle, 2, tile=0)
    assert (upscaler.runner.backend, upscaler.precision) == ("torch", "bf16")
    assert get_backend("auto", handle, "cpu", "fp32").name == "openvino"  # in fp32 the two agree
    monkeypatch.setattr(devices, "native_bf16", lambda: False)
    assert get_backend("auto", handle, "cpu", "auto").name == "openvino"  # fp32 either way
    monkeypatch.setattr(family, "openvino", False)
    assert get_backend("auto", handle, "cpu", "auto").name == "torch"
    monkeypatch.setattr(family, "openvino", True)
    monkeypatch.setattr(backends, "installed", lambda: False)
    assert get_backend("auto", handle, "cpu", "auto").name == "torch"


def test_auto_runs_an_input_below_the_export_size_in_pytorch(monkeypatch):
    pytest.importorskip("openvino")
    from superres.models import create_model

    handle = as_handle(create_model("mdsr-tiny"))
    monkeypatch.setattr(type(handle.family), "export_min_side", lambda self, config: 15)
    img = np.random.default_rng(0).integers(0, 256, (8, 9, 3)).astype(np.float32)
    ours = Upscaler(handle, 2, precision="fp32", tile=0)(img)
    assert np.array_equal(ours, Upscaler(handle, 2, precision="fp32", tile=0, backend="torch")(img))
    with pytest.raises(BackendError, match="at least 15 pixels a side"):
        Upscaler(handle, 2, precision="fp32", tile=0, backend="openvino")(img)


def test_int8_runs_the_quantised_bundled_model_near_its_fp32_output_and_nothing_else():
    pytest.importorskip("openvino")
    from skimage import data

    import superres
    from superres.evaluation.metrics import psnr
    from superres.models import create_model

    img = np.ascontiguousarray(data.astronaut()[100:148, 150:214])
    m = "mdsr-medium"
    int8 = superres.upscale(img, scale=2, precision="int8", model=m)
    fp32 = superres.upscale(img, scale=2, precision="fp32", backend="torch", denoise=None, model=m)
    assert not np.array_equal(int8, fp32) and psnr(int8, fp32) > 40  # another computation, close to fp32
    assert np.array_equal(superres.upscale(img, scale=2, precision="int8", backend="openvino", model=m), int8)
    for other in (create_model("mdsr-tiny"), None):  # None: the default, mspan, ships no int8 files
        with pytest.raises(BackendError, match=r"quantised files ship with superres \(mdsr-medium;"):
            superres.upscale(img, scale=2, precision="int8", model=other)
    with pytest.raises(BackendError, match="openvino backend"):
        superres.upscale(img, scale=2, precision="int8", backend="torch", model=m)
    with pytest.raises(ConfigError, match="int8 runs a clean bundled model"):
        superres.upscale(img, scale=2, precision="int8", denoise=0.5, model=m)


def test_the_shipped_int8_files_were_made_from_the_bundled_weights():
    """benchmarks/int8.py --save records the digest of the weights it quantised: a retrained model without new
    int8 files fails here rather than running stale ones."""
    from superres.inference.openvino import weights_digest
    from superres.models import load_model
    from superres.models.registry import PRETRAINED

    quantised = [e for e in PRETRAINED.values() if e.int8]
    assert [e.name for e in quantised] == ["mdsr-medium"]
    for entry in quantised:
        model = load_model(entry.name)
        assert entry.int8 is not None and sorted(entry.int8) == list(model.scales)
        assert entry.int8_digest == weights_digest(model)
        assert all(entry.path(f).is_file() and entry.path(f).with_suffix(".bin").is_file() for f in entry.int8.values())


def test_openvino_takes_pytorchs_thread_count_unless_told(monkeypatch):
    """torchrun sets OMP_NUM_THREADS=1 in each process and PyTorch follows it; OpenVINO, whose threads are its
    own, follows PyTorch's count, so that two processes do not each take every core."""
    pytest.importorskip("openvino")
    from superres.models import create_model

    handle = as_handle(create_model("mdsr-tiny"))
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    runner = get_backend("openvino").prepare(handle, "cpu", "fp32", None)
    runner.run(torch.rand(1, 3, 8, 8), 2)
    assert runner.compiled(2).get_property("INFERENCE_NUM_THREADS") == 1
    assert get_backend("openvino").prepare(handle, "cpu", "fp32", 2).config["INFERENCE_NUM_THREADS"] == 2


def test_converted_models_are_kept_in_a_bounded_cache_folder_that_may_fail(tmp_path, monkeypatch):
    """A new process reads the converted model instead of exporting and converting it again; the folder keeps
    the CACHED_FILES most recent; a damaged file is converted again and a folder that cannot be written only
    costs the conversion."""
    pytest.importorskip("openvino")
    from superres.inference import openvino as ov_backend
    from superres.models import create_model

    monkeypatch.setenv("SUPERRES_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "openvino"
    img = np.random.default_rng(0).integers(0, 256, (12, 14, 3)).astype(np.float32)

    def run(seed: int) -> np.ndarray:
        torch.manual_seed(seed)
        handle = as_handle(create_model("mdsr-tiny"))
        ov_backend.COMPILED.clear()  # as in a new process
        return Upscaler(handle, 2, backend="openvino", precision="fp32", tile=0)(img)

    first = run(0)
    (xml,) = folder.glob("*.xml")
    assert xml.with_suffix(".bin").is_file()
    export = ov_backend.onnx_bytes
    monkeypatch.setattr(ov_backend, "onnx_bytes", lambda *a, **k: pytest.fail("exported again"))
    assert np.array_equal(run(0), first)  # read back from the folder
    monkeypatch.setattr(ov_backend, "onnx_bytes", export)
    xml.write_text("not a model")
    assert np.array_equal(run(0), first)  # damaged: converted and stored again
    monkeypatch.setattr(ov_backend, "CACHED_FILES", 2)
    for seed in (1, 2, 3):
        run(seed)
    assert len(list(folder.glob("*.xml"))) == 2 == len(list(folder.glob("*.bin")))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("SUPERRES_CACHE", str(blocker))  # its openvino/ folder cannot be made
    assert np.array_equal(run(0), first)
