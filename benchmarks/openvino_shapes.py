"""How OpenVINO should take pictures of any size, and whether row bands that stay in cache run faster (issue 22).

    python benchmarks/openvino_shapes.py

1. Dynamic shapes against a model compiled for the exact size: the bundled default at x2, 640x360 LR, bf16 (fp32
   where the CPU has no native bf16), best of 3; and the first call at a size the dynamic model has not seen.
   A padded size bucket costs what its padding adds on top of the exact size's time, so it can only win where
   dynamic shapes are slower than the exact static size.
2. What a first run costs: the ONNX export, OpenVINO's conversion, and reading the converted model back from
   the cache folder instead (superres.inference.openvino).
3. Row bands: the same network over bands of B LR rows, each read with the receptive radius above and below (as
   exact tiles are); "useful GFLOP/s" counts only the band's own rows, so the halo's recomputation is a cost.
"""

from __future__ import annotations

import io
import tempfile
import time

import numpy as np

from common import best_time
from superres.inference.devices import native_bf16
from superres.inference.onnx import onnx_bytes
from superres.inference.openvino import openvino_core
from superres.models import load_model
from superres.models.summary import summarize

H, W, SCALE = 360, 640, 2


def main() -> None:
    import openvino as ov

    core = openvino_core()
    handle = load_model(None)
    precision = "bf16" if native_bf16() else "f32"
    config = {"INFERENCE_PRECISION_HINT": precision}
    t0 = time.perf_counter()
    exported = onnx_bytes(handle, SCALE)
    t_export = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = ov.convert_model(io.BytesIO(exported))
    t_convert = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as folder:
        ov.save_model(model, f"{folder}/m.xml", compress_to_fp16=False)
        t0 = time.perf_counter()
        core.read_model(f"{folder}/m.xml")
        t_read = time.perf_counter() - t0
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, H, W)).astype(np.float32)
    t0 = time.perf_counter()
    dynamic = core.compile_model(model, "CPU", config)
    compile_dynamic = time.perf_counter() - t0
    static_model = model.clone()
    static_model.reshape([1, 3, H, W])
    t0 = time.perf_counter()
    static = core.compile_model(static_model, "CPU", config)
    compile_static = time.perf_counter() - t0
    t_dynamic, t_static = best_time(lambda: dynamic(x)), best_time(lambda: static(x))
    other = x[:, :, : H - 7, : W - 13].copy()
    t0 = time.perf_counter()
    dynamic(other)
    first_other = time.perf_counter() - t0
    print(f"{handle.name} x{SCALE}, {W}x{H} LR, {precision}\n")
    print("| model | compile s | forward ms |\n|---|---|---|")
    print(f"| dynamic height and width | {compile_dynamic:.2f} | {t_dynamic * 1000:.0f} |")
    print(f"| static {W}x{H} | {compile_static:.2f} | {t_static * 1000:.0f} |")
    print(f"| dynamic, first call at {W - 13}x{H - 7} | | {first_other * 1000:.0f} |")
    print(f"\nfirst run: ONNX export {t_export:.2f} s, conversion {t_convert:.2f} s; or reading the converted model "
          f"from the cache folder {t_read * 1000:.0f} ms; then compiling {compile_dynamic:.2f} s")  # fmt: skip

    radius = handle.receptive_radius(SCALE) or 0
    gflop = 2 * sum(r.macs for r in summarize(handle, (H, W), SCALE)) / 1e9
    print(
        f"\nrow bands, receptive radius {radius} LR rows above and below each band; whole picture {gflop:.1f} GFLOP\n"
    )
    print("| band (LR rows) | rows read | ms per band | ms for the picture | useful GFLOP/s |\n|---|---|---|---|---|")
    for band in (16, 32, 64, 120, H):
        rows = min(H, band + 2 * radius)
        tile = np.ascontiguousarray(x[:, :, :rows])
        t = best_time(lambda tile=tile: dynamic(tile))
        whole = t * H / band
        print(f"| {band} | {rows} | {t * 1000:.1f} | {whole * 1000:.0f} | {gflop / whole:.0f} |")


if __name__ == "__main__":
    main()
