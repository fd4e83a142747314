"""Helpers for tests on the published checkpoints in ../shared/models and the benchmark sets in ../shared/data.

Neither folder is in a fresh clone: tests that use them are marked `needs_shared_models` / `needs_benchmark`
and skip without them. `set5_y_psnr` scores a model file the way `superres eval` does (Y of BT.601, border of
`scale` shaved, MATLAB-bicubic LR files), so a figure it gives can be compared with the published one.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MODELS = SHARED / "models"
BENCHMARK = SHARED / "data" / "benchmark"

needs_shared_models = pytest.mark.skipif(not (MODELS / "MANIFEST.tsv").exists(), reason="needs ../shared/models")
needs_benchmark = pytest.mark.skipif(not (BENCHMARK / "Set5" / "HR").is_dir(), reason="needs ../shared/data")


def manifest() -> dict[str, dict[str, str]]:
    """MANIFEST.tsv by file name (empty without ../shared/models)."""
    path = MODELS / "MANIFEST.tsv"
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def measured_set5(file: str, scale: int) -> float:
    """The manifest's measured Set5 Y-PSNR of a file at a scale (its `measured_set5` column: 'x2=38.07;x4=...')."""
    cells = dict(item.split("=") for item in manifest()[file]["measured_set5"].split(";") if "=" in item)
    return float(cells[f"x{scale}"])


def set5_y_psnr(model: str | Path, scale: int, precision: str = "fp32", dataset: str = "Set5") -> float:
    """Mean Y-PSNR of `model` (a file or a handle) on a benchmark set at `scale`, as `superres eval` scores it."""
    from superres.evaluation.benchmark import EvalConfig, evaluate

    config = EvalConfig(
        datasets=[str(BENCHMARK / dataset)], scales=[scale], methods=[str(model)], device="cpu", precision=precision
    )
    results = evaluate(config).results
    (row,) = [r for r in results if r["channel"] == "y"]
    return float(row["psnr"])


def published_set5(file: str, scale: int) -> float:
    """The manifest's published Set5 Y-PSNR of a file at a scale (its `published_set5` column)."""
    cells = dict(item.split("=") for item in manifest()[file]["published_set5"].split(";") if "=" in item)
    return float(cells[f"x{scale}"])


# ---------------------------------------------------------------------------------------------- tiny files


def image(h: int, w: int) -> np.ndarray:
    """A crop of scikit-image's astronaut: uint8 (h, w, 3)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[60 : 60 + h, 180 : 180 + w])


def write(state: dict[str, torch.Tensor], path: Path, wrapper: str | None = None, prefix: str = "") -> None:
    """`state` as a published file would hold it: keys prefixed, wrapped, as .pth or .safetensors."""
    from safetensors.torch import save_file

    state = {prefix + k: v.detach().clone().contiguous() for k, v in state.items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({wrapper: state, "iter": 7} if wrapper else state, path)


def claimants(state: dict[str, torch.Tensor]) -> list[str]:
    """The registered families that recognise a (normalised) state dict."""
    from superres.models.family import families

    return [name for name, family in families().items() if family.recognize(family.rename(state))]


def load_detected(file: str, family: str, scales: tuple[int, ...]):
    """A published file, asserted to be recognised by `family` alone and to load with `scales` and the manifest's
    parameter count; its handle."""
    import superres
    from superres.models.checkpoints import normalize_state_dict, read_weights

    assert claimants(normalize_state_dict(read_weights(MODELS / file)[0])) == [family]
    handle = superres.load_model(MODELS / file)
    assert handle.arch == family and handle.scales == scales
    assert handle.parameter_count == int(manifest()[file]["params"])
    return handle
