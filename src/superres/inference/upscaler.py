"""Running a model over whole pictures of any size: tiling with exact seams, precision, self-ensemble.

`Upscaler` runs a network on a float image; `upscale_picture` adds colour handling, bit depth and alpha
and is what the CLI and `superres.upscale` call.

Tiling is exact: every tile is cut with a margin of at least the network's receptive radius, clamped at
the image border (where the untiled network zero-pads too), so each output pixel sees exactly the input
it would see untiled. Only floating-point summation order can differ. A family that states no radius (its
outputs see the whole picture) gets approximate tiles: read with APPROXIMATE_MARGIN (or the caller's
overlap) and blended with their neighbours by linear ramps across each shared edge.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import DTypeLike

from superres.errors import Cancelled, ConfigError, Hint
from superres.imaging.color import rgb_to_ycbcr, ycbcr_to_rgb
from superres.imaging.io import Picture, PictureStream, gather_rows
from superres.imaging.resize import METHODS, imresize, output_shape_for
from superres.inference.backends import get_backend
from superres.models.base import SRNet
from superres.models.handle import ModelHandle, as_handle

log = logging.getLogger(__name__)

MIN_TILE = 16
# LR margin of each tile for a network with no exact receptive radius (its family says None): tiles are then
# approximate, as SwinIR's and Real-ESRGAN's own scripts cut them (their tile_pad); tile_overlap changes it
APPROXIMATE_MARGIN = 32
MAX_TILE_BATCH = 8


@dataclass
class TilePlan:
    core: tuple[int, int, int, int]  # y0, y1, x0, x1 of the LR region this tile produces
    box: tuple[int, int, int, int]  # the LR region fed to the network (core plus margin, clamped)


def plan_band(height: int, width: int, y0: int, y1: int, tile: int, margin: int) -> list[TilePlan]:
    """Cover LR rows y0..y1 of a (height, width) image with cores `tile` wide (less at the end), each read
    with `margin` around it, clamped at the image border."""
    plans = []
    for x0 in range(0, width, tile):
        x1 = min(width, x0 + tile)
        box = (max(0, y0 - margin), min(height, y1 + margin), max(0, x0 - margin), min(width, x1 + margin))
        plans.append(TilePlan((y0, y1, x0, x1), box))
    return plans


def _transforms(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th of the 8 flips/rotations of (N, C, H, W); k in 0..7."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


def _inverse(y: torch.Tensor, k: int) -> torch.Tensor:
    y = torch.rot90(y, -(k % 4), dims=(-2, -1))
    return y.flip(-1) if k >= 4 else y


class Upscaler:
    """A model ready to run at one of its scales on images of any size.

    model: a handle (superres.load_model) or a superres network. scale: which of its scales (None: its only
    one). backend: 'auto' (OpenVINO on a CPU where it is installed, else torch, or onnxruntime for an ONNX
    export: backends.get_backend), 'torch', 'onnxruntime' or 'openvino'; device,
    precision and threads are the backend's (see backends.py: an option it cannot honour is an error).
    tile: LR tile side (0 = no tiling, None = automatic from the image size and memory). overlap: LR margin
    per tile (None or less than the receptive radius = the radius, which makes tiling exact; for a network
    without a radius, None = APPROXIMATE_MARGIN and `exact` is False). self_ensemble:
    average the 8 flips/rotations. A network on another device is copied, never moved (backends.TorchRunner).
    """

    def __init__(
        self,
        model: ModelHandle | SRNet,
        scale: int | None = None,
        device: str = "auto",
        precision: str | None = "auto",
        tile: int | None = None,
        overlap: int | None = None,
        self_ensemble: bool = False,
        memory_budget: int | None = None,
        backend: str | None = "auto",
        threads: int | None = None,
    ) -> None:
        handle = as_handle(model)
        self.scale = handle.check_scale(scale)
        chosen = get_backend(backend, handle, device, precision)
        self.runner = chosen.prepare(handle, device, precision, threads)
        self.model = handle
        self.device = self.runner.device
        self.precision = self.runner.precision
        log.info("%s: %s at x%d, backend %s on %s, %s", handle.name or handle.arch, handle.describe(), self.scale,
                 self.runner.backend, self.device, self.precision)  # fmt: skip
        if tile is not None and tile != 0 and tile < MIN_TILE:
            raise ConfigError(f"tile must be 0 (no tiling) or at least {MIN_TILE} LR pixels, got {tile}")
        self.tile = tile
        radius = handle.receptive_radius(self.scale)
        self.exact = radius is not None  # tiles give the untiled output (up to float summation order)
        if radius is None:
            self.margin = APPROXIMATE_MARGIN if overlap is None else overlap
        else:
            if overlap is not None and overlap < radius:
                log.info("tile overlap %d is below the receptive radius %d; using %d", overlap, radius, radius)
            self.margin = max(radius, overlap or 0)
        self.radius = radius
        self.self_ensemble = self_ensemble
        self.memory_budget = memory_budget or self._default_budget()

    def _default_budget(self) -> int:
        """Bytes of activations one tile may use: a share of free GPU memory, or 768 MB on CPU."""
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return int(free * 0.5)
        return 768 * 2**20

    def _bytes_per_pixel(self) -> int:
        return self.model.activation_bytes_per_pixel(self.scale)

    def auto_tile(self, height: int, width: int) -> int:
        """0 when the whole image fits the budget, else the largest square core that does."""
        per_pixel = self._bytes_per_pixel() * (2 if self.self_ensemble else 1)
        if height * width * per_pixel <= self.memory_budget:
            return 0
        widened = self.margin // 2 if not self.exact else 0  # approximate tiles' blending ramps (_blended_strips)
        side = int(math.sqrt(self.memory_budget / per_pixel)) - 2 * (self.margin + widened)
        return max(MIN_TILE * 4, side // 8 * 8)

    def _batch(self, tiles: list[torch.Tensor]) -> torch.Tensor:
        """Tiles (C, h, w) of one shape as a float32 batch on the device: only these go there. On the CPU the copy
        is NumPy's, one thread: a PyTorch copy would leave PyTorch's OpenMP threads spinning for CPU time while
        another runtime's threads run the network (OpenVINO ran 20% slower after one, benchmarks/runtimes.py)."""
        if self.device.type != "cpu":
            return torch.stack(tiles).to(self.device).float()
        return torch.from_numpy(np.stack([t.numpy() for t in tiles]).astype(np.float32, copy=False))

    def _net(self, x: torch.Tensor) -> torch.Tensor:
        """The network alone, through the backend: (N, C, h, w) on device, 0..255 -> float32 (N, C, h*s, w*s)."""
        return self.runner.run(x, self.scale)

    @torch.inference_mode()
    def _forward(self, x: torch.Tensor, cancel: threading.Event | None = None) -> torch.Tensor:
        """(N, C, h, w) float 0..255 on device -> float32 (N, C, h*s, w*s), self-ensembled if asked; `cancel` is
        checked before each of the network's runs (Cancelled)."""
        _check(cancel)
        if not self.self_ensemble:
            return self._net(x)
        acc = _inverse(self._net(_transforms(x, 0)), 0)
        for k in range(1, 8):
            _check(cancel)
            acc = acc + _inverse(self._net(_transforms(x, k)), k)
        return acc / 8

    def __call__(
        self,
        image: np.ndarray,
        post: Callable[[np.ndarray], np.ndarray] | None = None,
        out_dtype: DTypeLike = np.float32,
        cancel: threading.Event | None = None,
    ) -> np.ndarray:
        """(H, W, C) in 0..255 with the model's C -> (H*s, W*s, C') of out_dtype. The input is float, or
        uint8, which is converted tile by tile (a float copy of a large image is 4x its size).

        Without `post`, C' = C and the values are the network's float32 output, unclipped. `post` maps each
        output tile (h, w, C) float32 to (h, w, C') values of out_dtype, so a large output can be stored
        as 8-bit while it is made, never as one float image. cancel: see strips.
        """
        return gather_rows(self.strips(image, post, out_dtype, cancel), image.shape[0] * self.scale)

    def strips(
        self,
        image: np.ndarray,
        post: Callable[[np.ndarray], np.ndarray] | None = None,
        out_dtype: DTypeLike = np.float32,
        cancel: threading.Event | None = None,
    ) -> Iterator[np.ndarray]:
        """As __call__, but yields the output a band of tile rows at a time, top to bottom, as it is made.

        cancel: an event checked before each network run; once it is set, the next check raises Cancelled.
        With it, tiles run one per call (not batched), so that a cancel takes effect within one tile (within
        one of its eight runs with self-ensemble).

        Out of GPU memory, the band is run again with tiles half the size and a quarter of the memory
        budget (so that batching does not fill the room again), and so on down to MIN_TILE."""
        if image.ndim != 3 or image.shape[2] != self.model.n_colors:
            raise ConfigError(f"expected (H, W, {self.model.n_colors}) input, got {image.shape}")
        h, w, _ = image.shape
        tile = self.tile if self.tile is not None else self.auto_tile(h, w)
        budget = self.memory_budget
        if image.dtype != np.uint8:
            image = image.astype(np.float32, copy=False)
        with warnings.catch_warnings():  # src is only read, so a read-only array (e.g. from PIL) is fine
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            src = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # (C, H, W), CPU
        if not self.exact and tile != 0:
            yield from self._blended_strips(src, tile, post or (lambda t: t), cancel)
            return
        row = 0
        while row < h:
            rows = h - row if tile == 0 else min(tile, h - row)
            try:
                band = self._band(src, row, rows, tile or w, budget, post or (lambda t: t), out_dtype, cancel)
            except torch.cuda.OutOfMemoryError:
                band = None  # handled below, once the failed batch's tensors are released with the traceback
            if band is None:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                tile, budget = (max(h, w) // 2 if tile == 0 else tile // 2), budget // 4
                if tile < MIN_TILE:
                    raise ConfigError("out of GPU memory even with the smallest tile")
                log.warning("out of GPU memory; retrying with %d px tiles", tile)
                if not self.exact:  # (only the first, whole band can fail here: nothing was yielded yet)
                    yield from self._blended_strips(src, tile, post or (lambda t: t), cancel)
                    return
                continue
            yield band
            row += rows

    def _blended_strips(
        self,
        src: torch.Tensor,
        tile: int,
        post: Callable[[np.ndarray], np.ndarray],
        cancel: threading.Event | None = None,
    ) -> Iterator[np.ndarray]:
        """Approximate tiles (a network without an exact radius), blended: each tile's output covers its core
        widened by `b` LR pixels on every inner side, weighted by linear ramps that cross 0.5 at the core's
        edge, so that neighbours' weights sum to 1 and no seam is a hard cut; every widened core is read with
        `margin` pixels of context around it. Rows are yielded once no later band adds to them."""
        _, h, w = src.shape
        s, b, m = self.scale, min(self.margin // 2, tile // 2), self.margin
        carry: np.ndarray | None = None  # this band's share of the rows the next band also covers
        for y0 in range(0, h, tile):
            y1 = min(h, y0 + tile)
            top, bottom = max(0, y0 - b), min(h, y1 + b)
            acc: np.ndarray | None = None
            for x0 in range(0, w, tile):
                x1 = min(w, x0 + tile)
                left, right = max(0, x0 - b), min(w, x1 + b)
                box = (max(0, top - m), min(h, bottom + m), max(0, left - m), min(w, right + m))
                x = self._batch([src[:, box[0] : box[1], box[2] : box[3]]])
                try:
                    y = self._forward(x, cancel)[0]  # (C, box_h * s, box_w * s)
                except torch.cuda.OutOfMemoryError:
                    raise ConfigError(
                        f"out of GPU memory with {tile} px tiles", hint=Hint("tile", "give a smaller {}")
                    ) from None
                soft = y[:, (top - box[0]) * s : (bottom - box[0]) * s, (left - box[2]) * s : (right - box[2]) * s]
                part = soft.permute(1, 2, 0).cpu().numpy()  # (soft_h * s, soft_w * s, C)
                if acc is None:
                    acc = np.zeros(((bottom - top) * s, w * s, part.shape[2]), np.float32)
                wy = _ramps(top, bottom, y0, y1, h, b, s)
                wx = _ramps(left, right, x0, x1, w, b, s)
                acc[:, left * s : right * s] += part * (wy[:, None, None] * wx[None, :, None])
            assert acc is not None
            if carry is not None:
                acc[: len(carry)] += carry
            final = (bottom - top) * s if y1 == h else (y1 - b - top) * s  # rows no later band adds to
            yield post(acc[:final])
            carry = acc[final:]

    def _band(
        self,
        src: torch.Tensor,
        row: int,
        rows: int,
        tile_width: int,
        budget: int,
        post: Callable[[np.ndarray], np.ndarray],
        out_dtype: DTypeLike,
        cancel: threading.Event | None = None,
    ) -> np.ndarray:
        """Output rows for LR rows row..row+rows, from tiles tile_width wide, each read with its margin."""
        _, h, w = src.shape
        s = self.scale
        # tiles whose input boxes have the same shape run in batches, as many as the memory budget allows
        groups: dict[tuple[int, int], list[TilePlan]] = {}
        for plan in plan_band(h, w, row, row + rows, tile_width, self.margin):
            by0, by1, bx0, bx1 = plan.box
            groups.setdefault((by1 - by0, bx1 - bx0), []).append(plan)
        per_pixel = self._bytes_per_pixel() * (2 if self.self_ensemble else 1)
        out = None
        for (bh, bw), group in groups.items():
            batch = 1 if cancel is not None else max(1, min(MAX_TILE_BATCH, budget // (bh * bw * per_pixel)))
            for i in range(0, len(group), batch):
                chunk = group[i : i + batch]
                y = self._forward(
                    self._batch([src[:, p.box[0] : p.box[1], p.box[2] : p.box[3]] for p in chunk]), cancel
                )
                for plan, tile_out in zip(chunk, y, strict=True):
                    by0, _, bx0, _ = plan.box
                    y0, y1, x0, x1 = plan.core
                    core = tile_out[:, (y0 - by0) * s : (y1 - by0) * s, (x0 - bx0) * s : (x1 - bx0) * s]
                    core = post(core.permute(1, 2, 0).cpu().numpy())
                    if out is None:
                        out = np.empty((rows * s, w * s, core.shape[2]), dtype=out_dtype)
                    out[(y0 - row) * s : (y1 - row) * s, x0 * s : x1 * s] = core
        assert out is not None, "a band has at least one tile"
        return out


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled


def _ramps(start: int, end: int, core0: int, core1: int, size: int, b: int, s: int) -> np.ndarray:
    """Blending weights along one axis for the output rows (or columns) of LR pixels start..end of a tile whose
    core is core0..core1 of `size`: a linear ramp 2b LR pixels wide centred on each inner edge of the core,
    1 inside, and 1 at the picture's border. Neighbouring tiles' ramps sum to 1."""
    centres = np.arange(start * s, end * s, dtype=np.float64) + 0.5  # output pixel centres
    weight = np.ones_like(centres)
    if b > 0 and core0 > 0:
        weight *= np.clip((centres - (core0 - b) * s) / (2 * b * s), 0, 1)
    if b > 0 and core1 < size:
        weight *= np.clip(((core1 + b) * s - centres) / (2 * b * s), 0, 1)
    return weight.astype(np.float32)


# ---------------------------------------------------------------------------------------------- pictures


def model_upscale_strips(
    upscaler: Upscaler, pixels: np.ndarray, peak: int = 255, cancel: threading.Event | None = None
) -> Iterator[np.ndarray]:
    """uint8/uint16 (H, W) or (H, W, 3) -> the same type and layout, upscaled by the model, a band of
    rows at a time. cancel: see Upscaler.strips.

    A grayscale image through an RGB model goes in as three equal channels and comes out as their
    mean; a colour image through a one-channel model has its luma upscaled by the model and its
    chroma by bicubic interpolation (all at once). Outputs are rounded and clipped tile by tile.
    """
    dtype = pixels.dtype
    colors = upscaler.model.n_colors
    x = pixels if dtype == np.uint8 else pixels.astype(np.float32) * np.float32(255.0 / peak)

    def to_int(t: np.ndarray) -> np.ndarray:
        t = t * np.float32(peak / 255.0) + np.float32(0.5) if peak != 255 else t + np.float32(0.5)
        return np.clip(np.floor(t, out=t), 0, peak, out=t).astype(dtype)  # one temporary, not three

    if x.ndim == 2:
        gray = np.repeat(x[..., None], colors, axis=2) if colors == 3 else x[..., None]

        def mean(t: np.ndarray) -> np.ndarray:
            return to_int(t.mean(axis=2, keepdims=True))

        for strip in upscaler.strips(gray, post=mean, out_dtype=dtype, cancel=cancel):
            yield strip[..., 0]
    elif colors == 3:
        yield from upscaler.strips(x, post=to_int, out_dtype=dtype, cancel=cancel)
    else:
        ycc = rgb_to_ycbcr(x)  # the luma one-channel models are trained on (data.to_colors)
        y = upscaler(ycc[..., :1].astype(np.float32), cancel=cancel)[..., 0]
        chroma = imresize(ycc[..., 1:], output_shape=y.shape, method="bicubic")
        yield to_int(ycbcr_to_rgb(np.dstack([y, chroma])))


def upscale_picture(
    picture: Picture,
    scale: int | None = None,
    model: ModelHandle | SRNet | Upscaler | None = None,
    method: str | None = None,
) -> Picture:
    """Upscale pixels with a model or an interpolation method; alpha goes through bicubic separately."""
    return upscale_picture_stream(picture, scale, model, method).collect()


def upscale_picture_stream(
    picture: Picture,
    scale: int | None = None,
    model: ModelHandle | SRNet | Upscaler | None = None,
    method: str | None = None,
    cancel: threading.Event | None = None,
) -> PictureStream:
    """upscale_picture as a PictureStream: a model's output is made band by band as the stream is read.
    cancel: see Upscaler.strips."""
    if (model is None) == (method is None):
        raise ConfigError("give exactly one of a model or an interpolation method")
    if model is not None:
        if not isinstance(model, Upscaler):
            model = Upscaler(model, scale, device=str(as_handle(model).device))  # an export's device is the CPU
        upscaler = model
        if scale is not None and scale != upscaler.scale:
            raise ConfigError(f"the model upscales x{upscaler.scale}, but x{scale} was asked for")
        height, width = picture.size[0] * upscaler.scale, picture.size[1] * upscaler.scale
        strips = model_upscale_strips(upscaler, picture.pixels, picture.peak, cancel)
    else:
        if scale is None or not scale > 0 or method is None:
            raise ConfigError("an interpolation method needs a scale > 0")
        return resize_picture(picture, output_shape_for(picture.size, scale), method, scale)
    alpha = None
    if picture.alpha is not None:
        alpha = imresize(picture.alpha, output_shape=(height, width), method="bicubic")
    return PictureStream(height, width, strips, alpha, picture.icc_profile)


def resize_picture(picture: Picture, shape: tuple[int, int], method: str, factor: float | None = None) -> PictureStream:
    """A picture resized to shape (height, width) by interpolation; with `factor`, MATLAB's kernel for that
    factor (as imresize(image, factor)), else for the exact size. Alpha goes through bicubic."""
    if method not in METHODS:
        raise ConfigError(f"unknown method '{method}'; choose from {', '.join(sorted(METHODS))}")
    if factor is not None:
        pixels = imresize(picture.pixels, factor, method=method)
    else:
        pixels = imresize(picture.pixels, output_shape=shape, method=method)
    alpha = None if picture.alpha is None else imresize(picture.alpha, output_shape=pixels.shape[:2], method="bicubic")
    return PictureStream(pixels.shape[0], pixels.shape[1], [pixels], alpha, picture.icc_profile)
