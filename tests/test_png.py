import io

import cv2
import numpy as np
import pytest
from PIL import Image

from superres.errors import ImageError
from superres.imaging.io import Picture, PictureStream, read_image, write_image
from superres.imaging.png import PngWriter, encode_png


def cv2_decode(data: bytes) -> np.ndarray:
    """An independent decoder (libpng through OpenCV), colour back in RGB(A) order."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr.ndim == 3:
        arr = arr[..., [2, 1, 0, 3][: arr.shape[2]]]
    return arr


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_every_mode_decodes_to_the_same_pixels(rng, dtype, channels):
    shape = (29, 41) if channels == 1 else (29, 41, channels)
    pixels = rng.integers(0, np.iinfo(dtype).max + 1, size=shape, dtype=dtype)
    data = encode_png(pixels)
    with Image.open(io.BytesIO(data)) as im:  # Pillow must accept the file (it checks CRCs and lengths)
        im.load()
        assert im.size == (41, 29)
        if dtype == np.uint8:
            assert np.array_equal(np.asarray(im), pixels)
    if channels != 2:  # OpenCV expands gray + alpha to 4 channels
        assert np.array_equal(cv2_decode(data), pixels)
    else:
        back = cv2_decode(data)
        assert np.array_equal(back[..., 0], pixels[..., 0]) and np.array_equal(back[..., 3], pixels[..., 1])


def test_rows_in_any_strips_give_the_same_image(photo):
    buf = io.BytesIO()
    writer = PngWriter(buf, photo.shape[1], photo.shape[0], 3, np.uint8)
    for y0, y1 in [(0, 1), (1, 20), (20, 20), (20, 63), (63, 64)]:
        writer.write(photo[y0:y1])
    writer.close()
    assert np.array_equal(cv2_decode(buf.getvalue()), photo)  # the Up filter carried across strip edges


def test_icc_profile_is_carried(tmp_path, photo):
    icc = Image.new("RGB", (1, 1)).info.get("icc_profile") or b"\0" * 128  # any bytes do for a round trip
    path = tmp_path / "icc.png"
    path.write_bytes(encode_png(photo, icc))
    assert read_image(path).icc_profile == icc


def test_compresses_a_photo(photo):
    big = np.ascontiguousarray(np.tile(photo, (4, 4, 1)))
    assert len(encode_png(big)) < 0.8 * big.nbytes  # the Up filter + deflate does work on real images


def test_writer_refuses_wrong_rows():
    writer = PngWriter(io.BytesIO(), 8, 4, 3, np.uint8)
    with pytest.raises(ValueError, match="shape"):
        writer.write(np.zeros((2, 8), np.uint8))
    with pytest.raises(ValueError, match="type"):
        writer.write(np.zeros((2, 8, 3), np.uint16))
    writer.write(np.zeros((3, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="only 3 of 4"):
        writer.close()
    with pytest.raises(ValueError, match="5 rows"):
        writer.write(np.zeros((2, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="channels"):
        PngWriter(io.BytesIO(), 8, 4, 5, np.uint8)


def test_stream_written_as_png_equals_the_whole_picture(tmp_path, photo):
    alpha = np.linspace(0, 255, photo.shape[0] * photo.shape[1]).reshape(photo.shape[:2]).astype(np.uint8)
    stream = PictureStream(64, 80, (photo[y : y + 24] for y in range(0, 64, 24)), alpha)
    back = read_image(write_image(tmp_path / "s.png", stream))
    assert np.array_equal(back.pixels, photo) and np.array_equal(back.alpha, alpha)
    stream = PictureStream(64, 80, (photo[y : y + 24] for y in range(0, 64, 24)))
    back = read_image(write_image(tmp_path / "s.jpg", stream))  # other formats gather the strips first
    assert back.pixels.shape == photo.shape


def test_a_stream_that_fails_leaves_no_file_and_keeps_the_old_one(tmp_path, photo):
    def failing():
        yield photo[:32]
        raise ImageError("the network failed half way")

    target = tmp_path / "o.png"
    with pytest.raises(ImageError, match="half way"):
        write_image(target, PictureStream(64, 80, failing()))
    assert list(tmp_path.iterdir()) == []
    write_image(target, Picture(photo))
    with pytest.raises(ImageError, match="half way"):
        write_image(target, PictureStream(64, 80, failing()), overwrite=True)
    assert np.array_equal(read_image(target).pixels, photo)
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]


def chunks_of(data: bytes) -> list[tuple[bytes, int]]:
    """(type, length) of each chunk after the signature."""
    out, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        out.append((data[pos + 4 : pos + 8], length))
        pos += 12 + length
    return out


def test_memory_and_chunks_stay_bounded(monkeypatch, rng):
    """Rows are filtered and compressed a group at a time and no IDAT exceeds its limit."""
    from superres.imaging import png

    monkeypatch.setattr(png, "IDAT_BYTES", 1000)
    monkeypatch.setattr(png, "GROUP_BYTES", 5000)
    noise = rng.integers(0, 65536, size=(70, 50, 3), dtype=np.uint16)  # incompressible: ~21 kB of IDAT
    data = encode_png(noise)
    kinds = chunks_of(data)
    idats = [n for kind, n in kinds if kind == b"IDAT"]
    assert next(k for k, _ in kinds) == b"IHDR" and kinds[-1] == (b"IEND", 0)
    assert len(idats) > 10 and max(idats) <= 1000
    assert np.array_equal(cv2_decode(data), noise)
    alpha = rng.integers(0, 65536, size=(70, 50), dtype=np.uint16)  # given apart, joined group by group
    buf = io.BytesIO()
    writer = PngWriter(buf, 50, 70, 4, np.uint16)
    writer.write(noise, alpha)
    writer.close()
    assert np.array_equal(cv2_decode(buf.getvalue()), np.dstack([noise, alpha]))


def test_a_file_that_appears_meanwhile_is_not_replaced(tmp_path, photo):
    """The existence check comes before the network runs; another process may create the file during it."""
    target = tmp_path / "o.png"

    def racing():
        yield photo[:32]
        target.write_bytes(b"someone else's file")
        yield photo[32:]

    with pytest.raises(ImageError, match="already exists"):
        write_image(target, PictureStream(64, 80, racing()))
    assert target.read_bytes() == b"someone else's file"
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]


def test_gather_rows():
    from superres.imaging.io import gather_rows

    whole = np.arange(12).reshape(4, 3)
    assert gather_rows([whole], 4) is whole  # one strip with every row: no copy
    assert np.array_equal(gather_rows([whole[:1], whole[1:]], 4), whole)
    with pytest.raises(ValueError, match="more than"):
        gather_rows([whole, whole[:1]], 4)
    with pytest.raises(ValueError, match="held 1 rows"):
        gather_rows([whole[:1]], 4)
