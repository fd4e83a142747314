import struct
import warnings
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from superres.errors import ImageError
from superres.imaging.io import Picture, read_image, write_image
from superres.imaging.png import chunk


def save(im: Image.Image, path, **kw):
    im.save(path, **kw)
    return path


@pytest.mark.parametrize(
    "mode,shape,dtype,has_alpha",
    [
        ("L", (20, 30), np.uint8, False),
        ("LA", (20, 30), np.uint8, True),
        ("RGB", (20, 30, 3), np.uint8, False),
        ("RGBA", (20, 30, 3), np.uint8, True),
        ("I;16", (20, 30), np.uint16, False),
    ],
)
def test_png_modes_round_trip(tmp_path, rng, mode, shape, dtype, has_alpha):
    peak = 65535 if dtype == np.uint16 else 255
    px = rng.integers(0, peak + 1, size=shape, dtype=np.int64).astype(dtype)
    alpha = rng.integers(0, 256, size=shape[:2], dtype=np.uint8) if has_alpha else None
    path = write_image(tmp_path / "a.png", Picture(px, alpha))
    assert Image.open(path).mode == mode
    back = read_image(path)
    assert back.pixels.dtype == dtype and np.array_equal(back.pixels, px)
    assert (back.alpha is None) == (alpha is None)
    if alpha is not None:
        assert np.array_equal(back.alpha, alpha)


def test_16bit_gray_with_alpha_round_trip(tmp_path, rng):
    px = rng.integers(0, 65536, size=(9, 11), dtype=np.int64).astype(np.uint16)
    alpha = rng.integers(0, 65536, size=(9, 11), dtype=np.int64).astype(np.uint16)
    back = read_image(write_image(tmp_path / "la16.png", Picture(px, alpha)))
    assert back.pixels.shape == (9, 11) and back.pixels.dtype == np.uint16
    assert np.array_equal(back.pixels, px) and np.array_equal(back.alpha, alpha)


@pytest.mark.parametrize("suffix", [".bmp", ".webp", ".gif", ".jpg"])
def test_gray_with_alpha_to_formats_without_that_mode(tmp_path, rng, suffix):
    px = rng.integers(0, 256, size=(9, 11), dtype=np.uint8)
    back = read_image(write_image(tmp_path / f"la{suffix}", Picture(px, np.full((9, 11), 200, np.uint8))))
    assert back.pixels.shape[:2] == (9, 11)


@pytest.mark.parametrize("with_alpha", [False, True])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_colour_round_trip(tmp_path, rng, with_alpha, suffix):
    px = rng.integers(0, 65536, size=(9, 11, 3), dtype=np.int64).astype(np.uint16)
    alpha = rng.integers(0, 65536, size=(9, 11), dtype=np.int64).astype(np.uint16) if with_alpha else None
    back = read_image(write_image(tmp_path / f"c{suffix}", Picture(px, alpha)))
    assert back.pixels.dtype == np.uint16 and np.array_equal(back.pixels, px)
    if with_alpha:
        assert np.array_equal(back.alpha, alpha)


def test_palette_cmyk_and_bilevel(tmp_path, photo):
    rgb = Image.fromarray(photo)
    p = rgb.quantize(16)
    back = read_image(save(p, tmp_path / "p.png"))
    assert back.pixels.shape == photo.shape and back.alpha is None
    assert np.array_equal(back.pixels, np.asarray(p.convert("RGB")))
    pt = p.copy()
    pt.info["transparency"] = 0
    back = read_image(save(pt, tmp_path / "pt.png", transparency=0))
    assert back.alpha is not None and set(np.unique(back.alpha)) <= {0, 255}
    cmyk = rgb.convert("CMYK")
    back = read_image(save(cmyk, tmp_path / "c.jpg"))
    assert back.pixels.ndim == 3 and back.pixels.shape[2] == 3
    one = rgb.convert("1")
    back = read_image(save(one, tmp_path / "b.png"))
    assert back.pixels.ndim == 2 and set(np.unique(back.pixels)) <= {0, 255}


@pytest.mark.parametrize("suffix", [".jpg", ".bmp", ".webp", ".tif", ".gif"])
def test_other_formats(tmp_path, photo, suffix):
    path = write_image(tmp_path / f"x{suffix}", Picture(photo))
    back = read_image(path)
    assert back.pixels.shape == photo.shape and back.pixels.dtype == np.uint8
    if suffix in (".bmp", ".tif"):
        assert np.array_equal(back.pixels, photo)
    elif suffix == ".gif":  # 256-colour palette
        assert np.abs(back.pixels.astype(int) - photo).mean() < 8
    else:
        assert np.abs(back.pixels.astype(int) - photo).mean() < 4


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 6), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    back = read_image(tmp_path / "anim.gif")
    assert tuple(back.pixels[0, 0]) == (255, 0, 0)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied(tmp_path, rng, orientation):
    px = rng.integers(0, 256, size=(6, 9, 3), dtype=np.uint8)
    im = Image.fromarray(px)
    exif = im.getexif()
    exif[0x0112] = orientation
    path = save(im, tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(read_image(path).pixels, expected)


def test_icc_profile_carried(tmp_path, photo):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = save(Image.fromarray(photo), tmp_path / "in.png", icc_profile=icc)
    pic = read_image(src)
    assert pic.icc_profile == icc
    for suffix in (".png", ".jpg", ".webp", ".tif"):
        assert Image.open(write_image(tmp_path / f"out{suffix}", pic)).info.get("icc_profile") == icc
    px16 = Picture(photo.astype(np.uint16) * 257, None, icc)
    assert read_image(write_image(tmp_path / "out16.png", px16)).icc_profile == icc


def test_16bit_to_8bit_formats(tmp_path):
    px = np.full((4, 5, 3), 65535, dtype=np.uint16)
    back = read_image(write_image(tmp_path / "x.jpg", Picture(px)))
    assert back.pixels.dtype == np.uint8 and back.pixels.min() >= 254


# ------------------------------------------------------------------------------ bad input


def test_missing_empty_and_non_image(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        read_image(tmp_path / "absent.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageError, match="empty file"):
        read_image(tmp_path / "empty.png")
    (tmp_path / "notes.png").write_text("hello, I am text")
    with pytest.raises(ImageError, match="not an image"):
        read_image(tmp_path / "notes.png")
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_file(tmp_path, photo, suffix):
    data = tmp_path / f"full{suffix}"
    write_image(data, Picture(np.tile(photo, (4, 4, 1))))
    raw = data.read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        read_image(tmp_path / f"cut{suffix}")


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size (with valid CRCs) and whose data is tiny."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_refused_and_limit_option(tmp_path, photo):
    (tmp_path / "bomb.png").write_bytes(png_claiming(60_000, 60_000))
    with pytest.raises(ImageError, match="over the limit"):
        read_image(tmp_path / "bomb.png")
    path = write_image(tmp_path / "ok.png", Picture(photo))
    with pytest.raises(ImageError, match="over the limit"):
        read_image(path, max_pixels=100)
    assert read_image(path, max_pixels=64 * 80).pixels.shape == photo.shape


class _SetAttrRecorder(type(Image)):
    """A module class that records every attribute set on the module (for PIL.Image: its globals)."""

    assigned: ClassVar[list[str]] = []

    def __setattr__(self, name, value):
        _SetAttrRecorder.assigned.append(name)
        super().__setattr__(name, value)


@pytest.fixture
def pillow_limit_watched(monkeypatch):
    """PIL.Image with a small pixel limit of its own (3000 pixels: a 64x80 image is over it, not over twice it),
    and a record of every global set on it meanwhile."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)
    monkeypatch.setattr(Image, "__class__", _SetAttrRecorder)
    _SetAttrRecorder.assigned = []
    return _SetAttrRecorder.assigned


def tiff_cases(photo, rng):
    """(name, PIL image) for each TIFF mode that an image over Pillow's own limit is read in through OpenCV."""
    im = Image.fromarray(photo)
    gray16 = rng.integers(0, 65536, photo.shape[:2], dtype=np.int64).astype(np.uint16)
    return [
        ("1", im.convert("1")),
        ("L", im.convert("L")),
        ("P", im.convert("P")),
        ("RGB", im),
        ("I;16", Image.fromarray(gray16)),
    ]


def test_readers_leave_pillows_global_limit_alone(tmp_path, photo, rng, pillow_limit_watched):
    """Images over Pillow's own limit (Image.MAX_IMAGE_PIXELS, process-wide) read as under it, in every format,
    without a DecompressionBombWarning, and without the global being set, even for a moment."""
    from superres.imaging.io import image_size

    paths = [save(Image.fromarray(photo), tmp_path / f"a.{ext}") for ext in ("png", "jpg", "bmp", "gif", "webp")]
    paths += [
        save(im, tmp_path / f"{name.replace(';', '')}.tif", compression="tiff_lzw")
        for name, im in tiff_cases(photo, rng)
    ]
    import tifffile

    big_endian = rng.integers(0, 65536, photo.shape[:2], dtype=np.int64).astype(">u2")
    tifffile.imwrite(tmp_path / "I16B.tif", big_endian, byteorder=">")
    paths.append(tmp_path / "I16B.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        over = {path: read_image(path) for path in paths}
        sizes = {path: image_size(path) for path in paths}
    assert pillow_limit_watched == [] and Image.MAX_IMAGE_PIXELS == 3000
    with pytest.MonkeyPatch.context() as m:
        m.setattr(Image, "MAX_IMAGE_PIXELS", None)  # the same files, with nothing over Pillow's limit
        for path in paths:
            under = read_image(path)
            assert over[path].pixels.dtype == under.pixels.dtype, path
            assert np.array_equal(over[path].pixels, under.pixels), path
            assert (over[path].alpha is None) == (under.alpha is None), path
            assert under.alpha is None or np.array_equal(over[path].alpha, under.alpha)
            assert sizes[path] == (80, 64)
    assert np.array_equal(over[tmp_path / "I16B.tif"].pixels, big_endian)


@pytest.mark.parametrize("mode", ["CMYK", "RGBA", "LA"])
def test_a_tiff_over_pillows_limit_that_opencv_would_read_otherwise_is_refused(
    tmp_path, photo, pillow_limit_watched, mode
):
    """OpenCV expands CMYK and gray + alpha otherwise, and premultiplies RGBA: refused, in one line."""
    rgba = Image.fromarray(np.dstack([photo, photo[..., 1]]), "RGBA")
    path = save(rgba.convert(mode), tmp_path / "c.tif")
    with pytest.raises(ImageError) as e:
        read_image(path)
    assert str(e.value).startswith(f"{path}: a 80x64 {mode} TIFF is over Pillow's own pixel limit")
    assert "PIL.Image.MAX_IMAGE_PIXELS = 3,000" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ImageError, match="over the limit of 100 "):  # the reader's own limit comes first
        read_image(path, max_pixels=100)


def test_a_webp_over_twice_pillows_limit_is_a_one_line_error(tmp_path, photo, pillow_limit_watched):
    """Pillow's WebP reader checks Pillow's limit itself when it opens a file: over twice it, an error."""
    path = save(Image.fromarray(photo), tmp_path / "a.webp")
    Image.MAX_IMAGE_PIXELS = 1000
    with pytest.raises(ImageError, match=r"over Pillow's own pixel limit, which its WEBP reader applies"):
        read_image(path)
    assert pillow_limit_watched == ["MAX_IMAGE_PIXELS"]  # the test's own assignment alone


def test_opencv_logging_is_silenced_around_a_decode_only(tmp_path, rng, capfd):
    """A damaged 16-bit colour TIFF: our one line, nothing from OpenCV, and OpenCV's log level as it was."""
    import cv2
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", rng.integers(0, 65536, (64, 80, 3)).astype(np.uint16), compression="zlib")
    data = (tmp_path / "a.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    before = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_WARNING)
    try:
        with pytest.raises(ImageError, match="cannot decode this 16-bit colour image"):
            read_image(tmp_path / "cut.tif")
        assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_WARNING
    finally:
        cv2.utils.logging.setLogLevel(before)
    assert capfd.readouterr().err == ""


# ------------------------------------------------------------------------------ writing


def test_write_is_atomic_and_never_clobbers(tmp_path, photo):
    path = write_image(tmp_path / "o.png", Picture(photo))
    before = path.read_bytes()
    with pytest.raises(ImageError, match="already exists"):
        write_image(path, Picture(photo[::2]))
    assert path.read_bytes() == before
    write_image(path, Picture(photo[::2]), overwrite=True)
    assert read_image(path).pixels.shape[0] == 32
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]  # no temporary files left


def test_failed_write_leaves_nothing(tmp_path, monkeypatch, photo):
    import superres.imaging.io as imageio

    def boom(*a, **k):
        raise OSError("disk full")

    import superres.imaging.files as files

    monkeypatch.setattr(imageio, "encode_image", lambda *a, **k: b"x" * 10)
    monkeypatch.setattr(files.os, "replace", boom)
    monkeypatch.setattr(files.os, "link", boom)
    for name in ("o.png", "o.jpg"):  # PNG streams into the file, other formats write encoded bytes
        for overwrite in (False, True):  # a new file is linked into place, a replacement renamed
            with pytest.raises(ImageError, match="cannot write"):
                write_image(tmp_path / name, Picture(photo), overwrite=overwrite)
            assert list(tmp_path.iterdir()) == []


def test_written_files_have_ordinary_permissions(tmp_path, photo):
    import os

    mask = os.umask(0)
    os.umask(mask)
    path = write_image(tmp_path / "o.png", Picture(photo))
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


@pytest.mark.parametrize("unnamed", [True, False])
def test_new_files_get_the_umask_without_os_umask(tmp_path, monkeypatch, unnamed):
    """0o666 less the umask, whether the file is made unnamed (O_TMPFILE) or as a named .part file (atomic_path,
    and atomic_file where there is no O_TMPFILE), without os.umask, which sets the mask process-wide to read it."""
    import os

    import superres.imaging.files as files

    def no_umask(*args):
        raise AssertionError("os.umask was called")

    before = os.umask(0o027)
    try:
        with monkeypatch.context() as m:
            m.setattr(files.os, "umask", no_umask)
            if not unnamed:
                m.delattr(files.os, "O_TMPFILE", raising=False)
            with files.atomic_file(tmp_path / "a.bin") as f:
                f.write(b"a")
            with files.atomic_path(tmp_path / "b.bin") as tmp:
                Path(tmp).write_bytes(b"b")
    finally:
        os.umask(before)
    assert [(tmp_path / n).stat().st_mode & 0o777 for n in ("a.bin", "b.bin")] == [0o640, 0o640]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.bin"]


def test_output_folder_that_is_a_file(tmp_path, photo):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ImageError, match="cannot write"):
        write_image(tmp_path / "afile" / "o.png", Picture(photo))


def test_unknown_output_extension(tmp_path, photo):
    with pytest.raises(ImageError, match=r"cannot write '\.xyz'"):
        write_image(tmp_path / "o.xyz", Picture(photo))


def test_32bit_integer_images_are_kept_exactly_or_refused_by_name(tmp_path):
    """Mode I: values that fit 16 bits are kept exactly; wider ones are refused, never saturated."""
    fits = np.array([[0, 65535, 1234], [7, 300, 40000]], np.int32)
    save(Image.fromarray(fits, "I"), tmp_path / "fits.tif")
    got = read_image(tmp_path / "fits.tif")
    assert got.pixels.dtype == np.uint16 and np.array_equal(got.pixels, fits)
    for name, values in (("wide.tif", [[0, 70000]]), ("negative.tif", [[-5, 10]])):
        save(Image.fromarray(np.array(values, np.int32), "I"), tmp_path / name)
        with pytest.raises(ImageError) as e:
            read_image(tmp_path / name)
        assert str(e.value).startswith(f"{tmp_path / name}: 32-bit integer pixels from")
        assert "do not fit 16 bits" in str(e.value)


def test_float_images_are_refused_by_name(tmp_path):
    save(Image.fromarray(np.array([[0.5, 2.0]], np.float32), "F"), tmp_path / "float.tif")
    with pytest.raises(ImageError) as e:
        read_image(tmp_path / "float.tif")
    assert str(e.value).startswith(f"{tmp_path / 'float.tif'}: floating-point images are not supported")


@pytest.mark.parametrize("with_alpha", [False, True])
def test_16bit_colour_tiff_keeps_its_icc_profile(tmp_path, rng, with_alpha):
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    px = rng.integers(0, 65536, (12, 9, 3), dtype=np.uint16)
    alpha = rng.integers(0, 65536, (12, 9), dtype=np.uint16) if with_alpha else None
    back = read_image(write_image(tmp_path / "out.tif", Picture(px, alpha, icc)))
    assert back.icc_profile == icc and np.array_equal(back.pixels, px)
    assert (back.alpha is None) == (alpha is None) and (alpha is None or np.array_equal(back.alpha, alpha))


def test_stale_partial_files_are_removed_and_fresh_ones_kept(tmp_path):
    import os
    import time

    from superres.imaging.files import STALE_SECONDS, atomic_path, remove_stale_parts

    old = tmp_path / ".out.png.abc123.part"
    fresh = tmp_path / ".out.png.def456.part"
    other = tmp_path / ".other.png.abc123.part"
    for p in (old, fresh, other):
        p.write_bytes(b"half")
    ago = time.time() - STALE_SECONDS - 60
    os.utime(old, (ago, ago))
    os.utime(other, (ago, ago))
    with atomic_path(tmp_path / "out.png") as tmp:
        Path(tmp).write_bytes(b"whole")
    assert not old.exists() and fresh.exists() and other.exists()  # only this output's, and only old ones
    os.utime(fresh, (ago, ago))
    assert remove_stale_parts(tmp_path / "out.png") == [fresh]
