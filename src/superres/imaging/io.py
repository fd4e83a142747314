"""Reading and writing image files, keeping what the file had where the output format can hold it: bit depth
(8 or 16 bits), grayscale, alpha and the ICC profile.

Pixels are numpy arrays: (H, W) for grayscale or (H, W, 3) for colour, uint8 or uint16; alpha is kept apart as
(H, W) of the same type.

Reading: Pillow decodes, except what it cannot hold (16-bit PNG with colour or alpha, 16-bit colour TIFF),
which OpenCV decodes. Palette, CMYK and the other colour modes become RGB, 1-bit becomes 8-bit gray, the EXIF
orientation is applied, only the first frame of an animation is read, and a JPEG's quality is estimated from
its quantisation tables. An image over the reader's pixel limit is refused from its header, before decoding.

Writing: the extension names the format. PNG is encoded by superres.imaging.png (strip by strip from a
PictureStream); 16-bit TIFF with colour or alpha by tifffile; the rest by Pillow, reduced to 8 bits, without
alpha or with gray expanded to RGB where the format must. Every write is atomic (imaging.files.atomic_file):
the output's name appears only once the file is complete, so an interrupted write never leaves half an image.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import IO, cast

import numpy as np
from PIL import Image, UnidentifiedImageError
from PIL.TiffImagePlugin import TiffImageFile

from superres.errors import Hint, ImageError
from superres.imaging.files import TargetExistsError, atomic_file, write_bytes
from superres.imaging.png import PngWriter, encode_png
from superres.imaging.quality import jpeg_quality

OVERWRITE = Hint("overwrite", "use {} to replace it", "overwrite=True")

DEFAULT_MAX_PIXELS = 200_000_000  # refuse larger images (decompression bombs) unless asked
READ_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".gif": "GIF",
}


@dataclass
class Picture:
    """An image as read from disk: pixels, optional alpha, and what must be carried to the output."""

    pixels: np.ndarray  # (H, W) or (H, W, 3), uint8 or uint16
    alpha: np.ndarray | None = None  # (H, W), same dtype as pixels
    icc_profile: bytes | None = None
    jpeg_quality: int | None = None  # for a JPEG, the libjpeg quality its quantisation tables match (1-100)

    @property
    def peak(self) -> int:
        return 65535 if self.pixels.dtype == np.uint16 else 255

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)"""
        return self.pixels.shape[0], self.pixels.shape[1]


@dataclass
class PictureStream:
    """A picture made strip by strip, top to bottom, so that it can be written without being held whole.

    strips: pixel rows, (n, W) or (n, W, 3) arrays of one dtype, `height` rows in all; alpha (whole, as it
    is small next to the float work that makes the pixels) and the ICC profile go with them."""

    height: int
    width: int
    strips: Iterable[np.ndarray]
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None

    def collect(self) -> Picture:
        return Picture(gather_rows(self.strips, self.height), self.alpha, self.icc_profile)


def gather_rows(strips: Iterable[np.ndarray], height: int) -> np.ndarray:
    """Strips of rows (all but the first axis alike) stacked into one array `height` rows high."""
    out = None
    row = 0
    for strip in strips:
        if row + len(strip) > height:
            raise ValueError(f"strips held more than {height} rows")
        if out is None:  # one strip with every row is returned as it is, not copied
            out = strip if len(strip) == height else np.empty((height, *strip.shape[1:]), strip.dtype)
        if out is not strip:
            out[row : row + len(strip)] = strip
        row += len(strip)
    if out is None or row != height:
        raise ValueError(f"strips held {row} rows, not {height}")
    return out


# ---------------------------------------------------------------------------------------------- reading


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Picture:
    """Read any image Pillow opens (the first frame of an animation), keeping 16-bit and grayscale as they are.

    max_pixels: the largest width x height read (None: any), checked from the header before decoding. It takes
    the place of Pillow's own limit (PIL.Image.MAX_IMAGE_PIXELS), which is neither applied nor changed here
    (see _open_image). Raises ImageError, its message starting with the path."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file")
    return _read_image(path, max_pixels)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) in pixels from an image file's header, without decoding it; ImageError if it is not an
    image Pillow can open. Pillow's own pixel limit is not applied (callers apply theirs)."""
    path = Path(path)
    try:
        with _open_image(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error, zlib.error) as e:
        raise ImageError(f"{path}: not an image, or a format that cannot be read") from e


def _open_image(path: Path) -> Image.Image:
    """What Image.open returns (the header read, the pixels not yet decoded), without Pillow's pixel limit.

    Image.open tries each registered plugin (Image.ID in order; Image.OPEN holds its accept test and factory),
    then compares the size with the process-wide PIL.Image.MAX_IMAGE_PIXELS (Image._decompression_bomb_check).
    This does the same identification and leaves that comparison out, for this call alone: the caller applies
    its own limit, and the global stays as the program set it (setting it to None, even for a moment, would
    lift the limit for every thread). Decoders that check the global themselves still do: WebP on opening,
    over twice the limit (an ImageError here), GIF frames larger than the image, and TIFF on decoding, which is
    why _read_image gives a TIFF over that limit to OpenCV."""
    with open(path, "rb") as f:
        prefix = f.read(16)  # what Image.open gives each plugin's accept test
    tried: set[str] = set()
    for load_plugins in (Image.preinit, Image.init):  # the common formats first, then all, as Image.open
        load_plugins()
        for fmt in [f for f in Image.ID if f not in tried]:
            tried.add(fmt)
            factory, accept = Image.OPEN[fmt]
            verdict = accept(prefix) if accept else True
            if not verdict or isinstance(verdict, str):  # a string says why it is not this format
                continue
            try:
                # given a path (not the stream its type names), the ImageFile opens the file and owns it
                return factory(cast("IO[bytes]", os.fspath(path)), os.fspath(path))
            except (SyntaxError, IndexError, TypeError, struct.error):  # not this format after all, as Image.open
                continue
            except Image.DecompressionBombError as e:
                raise ImageError(f"{path}: over Pillow's own pixel limit, which its {fmt} reader applies ({e})") from e
    raise UnidentifiedImageError(f"cannot identify image file {os.fspath(path)!r}")


def _read_image(path: Path, max_pixels: int | None) -> Picture:
    try:
        with _open_image(path) as im:
            _check_size(path, im.size, max_pixels)  # our own limit, from the header alone
            if _is_16bit_colour(im):
                return _read_16bit_colour(path, im)
            if _over_pillow_tiff_limit(im):
                return _read_large_tiff(path, im)
            orientation = im.getexif().get(0x0112, 1)
            icc = im.info.get("icc_profile") or None
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            im.load()
            picture = from_pil(im)
    except ImageError as e:
        if str(path) in str(e):
            raise
        raise ImageError(f"{path}: {e}") from e  # every per-file error names its file
    except Image.DecompressionBombError as e:  # a decoder that checks Pillow's limit itself (GIF frames)
        raise ImageError(f"{path}: over Pillow's own pixel limit, which its reader for the format applies ({e})") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{path}: not an image, or a format that cannot be read") from e
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error) as e:
        raise ImageError(f"{path}: cannot be read, the file may be truncated or corrupt ({e})") from e
    if icc and picture.pixels.ndim == 3 and getattr(im, "mode", "") == "CMYK":
        icc = None  # a CMYK profile does not describe the RGB pixels we now hold
    picture.icc_profile = icc
    return apply_orientation(picture, orientation)


def _check_size(path: Path, size: tuple[int, int], max_pixels: int | None) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageError(f"{path}: image has no pixels ({w}x{h})")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageError(
            f"{path}: {w}x{h} = {w * h:,} pixels is over the limit of {max_pixels:,} (a decompression bomb?)",
            hint=Hint("max_pixels", "raise the limit ({}) if the image is genuine"),
        )


def _is_16bit_colour(im: Image.Image) -> bool:
    if im.format == "PNG":
        depth, colour = _png_depth_and_colour(Path(getattr(im, "filename", "")))
        return depth == 16 and colour in (2, 4, 6)  # RGB, gray+alpha, RGBA
    if im.format == "TIFF":
        bits = cast(TiffImageFile, im).tag_v2.get(258)
        return isinstance(bits, tuple) and len(bits) >= 3 and bits[0] == 16
    return False


def _read_16bit_colour(path: Path, im: Image.Image) -> Picture:
    """16-bit colour (or gray + alpha), which Pillow cannot hold, decoded by OpenCV."""
    arr = _opencv_decode(path)
    if arr is None or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ImageError(f"{path}: cannot decode this 16-bit colour image")
    arr = arr.astype(np.uint16, copy=False)
    return _from_opencv(arr, im, gray_alpha=_png_depth_and_colour(path)[1] == 4)


def _over_pillow_tiff_limit(im: Image.Image) -> bool:
    """Whether `im` is a TIFF over Pillow's own pixel limit, which Pillow's TIFF decoder applies itself when it
    decodes (a warning over the limit, an error over twice it). The global is read here, never set."""
    limit = Image.MAX_IMAGE_PIXELS
    return im.format == "TIFF" and limit is not None and im.size[0] * im.size[1] > limit


# TIFF modes whose pixels OpenCV decodes exactly as Pillow does: OpenCV's channels and dtype for each
_TIFF_MODES_FOR_OPENCV = {
    "1": (1, np.uint8),  # 0 and 255, as Pillow's conversion to L
    "L": (1, np.uint8),
    "P": (3, np.uint8),  # the palette applied (without transparency)
    "RGB": (3, np.uint8),  # not RGBA: OpenCV premultiplies the colour by the alpha
    "I;16": (1, np.uint16),
    "I;16B": (1, np.uint16),
}


def _read_large_tiff(path: Path, im: Image.Image) -> Picture:
    """A TIFF over Pillow's own pixel limit (but within the caller's), decoded by OpenCV rather than by Pillow,
    whose TIFF decoder would check that process-wide limit again. Only the modes where OpenCV's pixels are
    Pillow's are read so; the others are refused in one line."""
    expected = _TIFF_MODES_FOR_OPENCV.get(im.mode)
    if (
        expected is None or "transparency" in im.info or cast(TiffImageFile, im).tag_v2.get(262) == 6
    ):  # YCbCr: converted otherwise
        w, h = im.size
        raise ImageError(
            f"{path}: a {w}x{h} {im.mode} TIFF is over Pillow's own pixel limit "
            f"(PIL.Image.MAX_IMAGE_PIXELS = {Image.MAX_IMAGE_PIXELS:,}), which its TIFF reader applies and "
            f"superres does not lift for the whole process; save it as PNG, or raise that limit in the program"
        )
    arr = _opencv_decode(path)
    if arr is None or (1 if arr.ndim == 2 else arr.shape[2]) != expected[0] or arr.dtype != expected[1]:
        raise ImageError(f"{path}: cannot decode this {im.mode} TIFF")
    return _from_opencv(arr, im, gray_alpha=False)


def _from_opencv(arr: np.ndarray, im: Image.Image, gray_alpha: bool) -> Picture:
    """OpenCV's decoding, (H, W) or BGR(A) (H, W, 3|4), as a Picture, with the ICC profile and the EXIF
    orientation from Pillow's reading of the header. gray_alpha: gray + alpha, which OpenCV expands to BGRA."""
    orientation = im.getexif().get(0x0112, 1)
    icc = im.info.get("icc_profile") or None
    alpha = np.ascontiguousarray(arr[..., 3]) if arr.ndim == 3 and arr.shape[2] == 4 else None
    if arr.ndim == 2:
        pixels = arr
    elif gray_alpha:
        pixels = np.ascontiguousarray(arr[..., 0])
    else:
        pixels = np.ascontiguousarray(arr[..., 2::-1])  # OpenCV is BGR(A)
    return apply_orientation(Picture(pixels, alpha, icc), orientation)


def _opencv_decode(path: Path) -> np.ndarray | None:
    """The file decoded by OpenCV as it is stored (depth, channels and alpha kept; no EXIF rotation), or None."""
    import cv2  # noqa: PLC0415 - only for what Pillow cannot do

    data = np.fromfile(path, dtype=np.uint8)
    with _OPENCV_QUIET.around(cv2):  # a damaged file: our one-line error only
        return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


class _OpenCvQuiet:
    """OpenCV's logging silenced while a reader decodes, and set back after.

    OpenCV has one log level for the whole process and no setting per call, so the level is changed only
    around decoding: readers in several threads share one silent spell (counted), and the level found before
    the first is restored after the last. A level another thread sets during a spell is overwritten at its end."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.readers = 0
        self.level_before: int | None = None

    @contextmanager
    def around(self, cv2: ModuleType) -> Iterator[None]:
        with self.lock:
            if self.readers == 0:
                self.level_before = cv2.utils.logging.getLogLevel()
                cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
            self.readers += 1
        try:
            yield
        finally:
            with self.lock:
                self.readers -= 1
                if self.readers == 0:
                    cv2.utils.logging.setLogLevel(self.level_before)


_OPENCV_QUIET = _OpenCvQuiet()


def _png_depth_and_colour(path: Path) -> tuple[int | None, int | None]:
    """Bit depth and colour type from a PNG's IHDR (bytes 24 and 25), or (None, None)."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) == 26 and head[:8] == b"\x89PNG\r\n\x1a\n":
        return head[24], head[25]
    return None, None


def from_pil(im: Image.Image) -> Picture:
    """A PIL image's pixels as a Picture: palette and CMYK become RGB, transparency becomes alpha."""
    mode = im.mode
    alpha = None
    if mode in ("1", "L", "I;16", "I;16L", "I;16B", "I;16N"):
        pixels = np.asarray(im.convert("L") if mode == "1" else im)
        pixels = pixels.astype(np.uint16) if mode.startswith("I;16") else pixels
    elif mode == "I":  # 32-bit integer: Pillow's mode for some 16-bit files, and for true 32-bit ones
        raw = np.asarray(im)
        low, high = int(raw.min(initial=0)), int(raw.max(initial=0))
        if low < 0 or high > 65535:  # never saturated in silence
            raise ImageError(
                f"32-bit integer pixels from {low} to {high} do not fit 16 bits; superres keeps 8 and "
                f"16 bits exactly and will not guess a mapping: convert it to 16 bits first (e.g. "
                f"scaled by its range)"
            )
        pixels = raw.astype(np.uint16) if high > 255 else raw.astype(np.uint8)
    elif mode == "LA" or mode == "La":
        arr = np.asarray(im.convert("LA"))
        pixels, alpha = arr[..., 0].copy(), arr[..., 1].copy()
    elif mode == "P":
        has_alpha = "transparency" in im.info or (im.palette is not None and im.palette.mode == "RGBA")
        arr = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
        pixels = arr[..., :3].copy() if has_alpha else arr
        alpha = arr[..., 3].copy() if has_alpha else None
    elif mode in ("RGBA", "RGBa", "PA"):
        arr = np.asarray(im.convert("RGBA"))
        pixels, alpha = arr[..., :3].copy(), arr[..., 3].copy()
    elif mode in ("RGB", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        pixels = np.asarray(im.convert("RGB"))
    elif mode == "F":
        raise ImageError("floating-point images are not supported; convert to 8 or 16 bit first")
    else:
        pixels = np.asarray(im.convert("RGB"))
    quality = jpeg_quality(getattr(im, "quantization", None)) if im.format == "JPEG" else None
    return Picture(np.ascontiguousarray(pixels), alpha, im.info.get("icc_profile") or None, quality)


def to_pil(picture_or_pixels: Picture | np.ndarray) -> Image.Image:
    """A PIL image from a Picture (or bare pixels); 16-bit colour is not representable in PIL."""
    picture = picture_or_pixels if isinstance(picture_or_pixels, Picture) else Picture(np.asarray(picture_or_pixels))
    px = picture.pixels
    if px.dtype == np.uint16:
        if px.ndim == 3:
            raise ImageError("Pillow cannot hold 16-bit colour; use numpy arrays for 16-bit colour images")
        return Image.fromarray(px)  # mode I;16
    if picture.alpha is not None:
        im = Image.fromarray(np.dstack([px, picture.alpha]), "RGBA" if px.ndim == 3 else "LA")
    else:
        im = Image.fromarray(px)
    if picture.icc_profile:
        im.info["icc_profile"] = picture.icc_profile
    return im


def apply_orientation(picture: Picture, orientation: int) -> Picture:
    """Rotate/flip pixels (and alpha) as the EXIF orientation tag (1-8) says, so that 'up' is up."""

    def fix(a: np.ndarray | None) -> np.ndarray | None:
        if a is None or orientation in (None, 1) or orientation not in range(2, 9):
            return a
        ops = {
            2: lambda x: x[:, ::-1],
            3: lambda x: x[::-1, ::-1],
            4: lambda x: x[::-1],
            5: lambda x: np.swapaxes(x, 0, 1),
            6: lambda x: np.rot90(x, -1),
            7: lambda x: np.swapaxes(x[::-1, ::-1], 0, 1),
            8: lambda x: np.rot90(x, 1),
        }
        return np.ascontiguousarray(ops[orientation](a))

    return replace(picture, pixels=fix(picture.pixels), alpha=fix(picture.alpha))


# ---------------------------------------------------------------------------------------------- writing


def write_image(
    path: str | os.PathLike, picture: Picture | PictureStream, overwrite: bool = False, quality: int = 95
) -> Path:
    """Write atomically in the format the extension names; refuses to replace a file unless overwrite.

    A PictureStream goes to a PNG strip by strip, so the whole image is never held; other formats
    gather it first."""
    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImageError(f"{path}: cannot write '{path.suffix}' files; use one of {', '.join(sorted(WRITE_FORMATS))}")
    if path.exists() and not overwrite:
        raise ImageError(f"{path}: already exists", hint=OVERWRITE)
    try:
        if fmt == "PNG":
            if isinstance(picture, Picture):
                picture = PictureStream(*picture.size, [picture.pixels], picture.alpha, picture.icc_profile)
            with atomic_file(path, overwrite=overwrite) as f:
                _stream_png(f, picture)
            return path
        if isinstance(picture, PictureStream):
            picture = picture.collect()
        return write_bytes(path, encode_image(picture, fmt, quality), overwrite=overwrite)
    except TargetExistsError:
        raise ImageError(f"{path}: already exists", hint=OVERWRITE) from None
    except OSError as e:
        raise ImageError(f"{path}: cannot write ({e.strerror or e})") from e
    except ImageError as e:
        if str(path) in str(e):
            raise
        raise ImageError(f"{path}: {e}") from e  # name the file in a batch


def _stream_png(f, stream: PictureStream) -> None:
    writer = None
    row = 0
    try:
        for strip in stream.strips:
            if writer is None:  # the first strip tells the depth and the channels
                channels = (1 if strip.ndim == 2 else strip.shape[2]) + (stream.alpha is not None)
                writer = PngWriter(f, stream.width, stream.height, channels, strip.dtype, stream.icc_profile)
            writer.write(strip, None if stream.alpha is None else stream.alpha[row : row + len(strip)])
            row += len(strip)
        if writer is None:
            raise ImageError("no rows were made for the image")
        writer.close()
    except ValueError as e:  # strips that do not fit the image they claim to be
        raise ImageError(f"cannot write the image as PNG ({e})") from e


MAX_SIDE = {"JPEG": 65535, "GIF": 65535, "WEBP": 16383, "BMP": 2**31 - 1, "TIFF": 2**32 - 1}  # what each format holds


def encode_image(picture: Picture, fmt: str, quality: int = 95) -> bytes:
    """The bytes of a file in format `fmt` ('PNG', 'JPEG', ...); depth and alpha reduced where the format must."""
    px, alpha = picture.pixels, picture.alpha
    h, w = px.shape[:2]
    if max(h, w) > MAX_SIDE.get(fmt, 2**31 - 1):
        raise ImageError(
            f"a {fmt} image cannot be {w}x{h}: its sides go up to {MAX_SIDE[fmt]:,} pixels; write PNG or TIFF instead"
        )
    if fmt == "PNG":
        return encode_png(px if alpha is None else np.dstack([px, alpha]), picture.icc_profile)
    if px.dtype == np.uint16 and fmt != "TIFF":
        picture = to_8bit(picture)  # JPEG, BMP, WebP, GIF hold 8 bits
        px, alpha = picture.pixels, picture.alpha
    if px.dtype == np.uint16 and (px.ndim == 3 or alpha is not None):
        return _encode_16bit_tiff(picture)
    if alpha is not None and fmt == "JPEG":
        alpha = None  # JPEG has no alpha
    if alpha is not None and px.ndim == 2 and fmt in ("BMP", "WEBP", "GIF"):
        px = np.repeat(px[..., None], 3, axis=2)  # these formats have no gray + alpha mode
    im = to_pil(Picture(px, alpha))
    if fmt == "GIF" and im.mode != "L":
        im = im.convert("RGBA").quantize() if alpha is not None else im.quantize()
    kwargs: dict = {}
    if picture.icc_profile and fmt in ("JPEG", "TIFF", "WEBP"):
        kwargs["icc_profile"] = picture.icc_profile
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    if fmt == "WEBP" and quality >= 100:
        kwargs["lossless"] = True
    buf = io.BytesIO()
    try:
        im.save(buf, format=fmt, **kwargs)
    except (OSError, ValueError, KeyError, OverflowError, struct.error) as e:
        raise ImageError(f"cannot encode a {im.mode} image as {fmt} ({e})") from e
    return buf.getvalue()


def _encode_16bit_tiff(picture: Picture) -> bytes:
    """16-bit colour (or gray + alpha, as RGB + alpha) TIFF, which Pillow cannot hold, through tifffile;
    deflate-compressed, with the ICC profile."""
    import tifffile  # noqa: PLC0415

    px = picture.pixels if picture.pixels.ndim == 3 else np.repeat(picture.pixels[..., None], 3, axis=2)
    extra = {}
    if picture.alpha is not None:
        px = np.dstack([px, picture.alpha])
        extra["extrasamples"] = ["unassalpha"]
    buf = io.BytesIO()
    try:
        tifffile.imwrite(
            buf,
            np.ascontiguousarray(px),
            photometric="rgb",
            compression="zlib",
            iccprofile=picture.icc_profile or None,
            **extra,
        )
    except (ValueError, TypeError) as e:
        raise ImageError(f"could not encode a 16-bit TIFF ({e})") from e
    return buf.getvalue()


def to_8bit(picture: Picture) -> Picture:
    def down(a: np.ndarray | None) -> np.ndarray | None:
        if a is None or a.dtype == np.uint8:
            return a
        return np.floor(a / 257.0 + 0.5).astype(np.uint8)

    return replace(picture, pixels=down(picture.pixels), alpha=down(picture.alpha))
