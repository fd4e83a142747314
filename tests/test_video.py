"""Video in, video out: clips made here with PyAV (a sine-wave audio track, a rotation tag, subtitles)."""

import hashlib
import signal
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest

from conftest import nearest_edsr
from superres.cli import main
from superres.imaging.video import VideoReader, looks_like_video
from superres.models import save_weights

av = pytest.importorskip("av")


def make_clip(
    path,
    frames=50,
    rate=25,
    size=(64, 48),
    audio=True,
    rotation=90,
    codec="libx264",
    pix_fmt="yuv420p",
    pts=None,
    subtitles=False,
    colour=None,
    photo=None,
    options=None,
    audio_start=0,
):
    """A clip with a moving bar over a still picture; `pts` (in 1/rate) for variable frame rate;
    audio_start: the audio's first timestamp, in samples (48 kHz)."""
    w, h = size
    out = av.open(str(path), "w", options=options or {})
    v = out.add_stream(codec, rate=rate)
    v.width, v.height, v.pix_fmt = w, h, pix_fmt
    v.codec_context.time_base = Fraction(1, rate)
    if colour:
        v.codec_context.colorspace, v.codec_context.color_range = colour
    if rotation:
        v.set_display_rotation(rotation)
    a = None
    if audio:
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
    s = out.add_mux_stream("subrip") if subtitles else None
    if s is not None:
        s.metadata["language"] = "fra"
    base = np.zeros((h, w, 3), np.uint8) if photo is None else photo[:h, :w]
    for i in range(frames):
        img = base.copy()
        img[h // 4 : h // 2, (3 * i) % (w - 4) : (3 * i) % (w - 4) + 4] = (255, 200, 0)
        f = av.VideoFrame.from_ndarray(img, format="rgb24")
        if colour:
            f = f.reformat(format=pix_fmt, dst_colorspace=colour[0], dst_color_range=colour[1])
        f.pts = i if pts is None else pts[i]
        for p in v.encode(f):
            out.mux(p)
    if a is not None:
        sr = 48000
        t = np.arange(int(frames / rate * sr)) / sr
        wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for k in range(0, len(wave), 1024):
            af = av.AudioFrame.from_ndarray(wave[None, k : k + 1024], format="flt", layout="mono")
            af.sample_rate, af.pts = sr, audio_start + k
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    if s is not None:
        for k in range(2):
            p = av.Packet(f"line {k}".encode())
            p.stream, p.pts, p.dts, p.duration, p.time_base = s, k * 500, k * 500, 400, Fraction(1, 1000)
            out.mux(p)
    for p in v.encode():
        out.mux(p)
    out.close()
    return path


def packets(path, kind):
    """(count, SHA-256 of the bytes) of a stream's packets."""
    with av.open(str(path)) as c:
        digest, n = hashlib.sha256(), 0
        for p in c.demux(getattr(c.streams, kind)[0]):
            if p.size:
                digest.update(bytes(p))
                n += 1
    return n, digest.hexdigest()


def describe(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = list(c.decode(v))
        info = dict(
            frames=len(frames),
            rate=v.average_rate,
            size=(frames[0].width, frames[0].height),
            rotation=frames[0].rotation,
            times=[float(f.pts * f.time_base) for f in frames],
            codec=v.codec_context.name,
            colorspace=int(v.codec_context.colorspace),
            color_range=int(v.codec_context.color_range),
            pix_fmt=v.codec_context.format.name,
        )
    with av.open(str(path)) as c:
        if c.streams.audio:
            a = c.streams.audio[0]
            info["audio_seconds"] = sum(f.samples for f in c.decode(a)) / a.codec_context.sample_rate
            info["audio_codec"] = a.codec_context.name
    return info


def run(capsys, *args):
    code = main([str(a) for a in args])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, err


@pytest.fixture
def nearest(tmp_path):
    """An exact x2 model (nearest neighbour) in a weights file, so that frames can be checked."""
    return save_weights(nearest_edsr(2), tmp_path / "nearest.safetensors")


def test_clip_keeps_frames_rate_rotation_and_copies_audio(tmp_path, capsys, nearest):
    clip = make_clip(tmp_path / "clip.mp4")
    code, err = run(capsys, "upscale", clip, "--model", nearest, "-o", tmp_path / "big.mp4")
    assert code == 0, err
    src, out = describe(clip), describe(tmp_path / "big.mp4")
    assert out["frames"] == src["frames"] == 50 and out["rate"] == 25
    assert out["size"] == (128, 96) and out["rotation"] == 90 and out["codec"] == "h264"
    assert out["times"] == src["times"]
    assert abs(out["audio_seconds"] - 2.0) < 0.05
    assert packets(tmp_path / "big.mp4", "audio") == packets(clip, "audio")  # copied, not re-encoded


def test_frames_are_the_upscaled_input_frames(tmp_path, capsys, nearest):
    """Lossless in and out (FFV1, 4:4:4): each output frame is the nearest x2 of the decoded input frame,
    up to the rounding of the RGB -> YUV conversion on the way out."""
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[100:148, 180:244])
    clip = make_clip(
        tmp_path / "clip.mkv", frames=6, codec="ffv1", pix_fmt="yuv444p", audio=False, rotation=0, photo=photo
    )
    code, err = run(capsys, "upscale", clip, "--model", nearest, "--codec", "ffv1", "-o", tmp_path / "big.mkv")
    assert code == 0, err
    with VideoReader(clip) as a, VideoReader(tmp_path / "big.mkv") as b:
        src = [f.pixels for f in a.items()]
        out = [f.pixels for f in b.items()]
    assert len(out) == len(src) == 6 and describe(tmp_path / "big.mkv")["pix_fmt"] == "yuv444p"
    for lr, sr in zip(src, out, strict=False):
        expected = lr.repeat(2, axis=0).repeat(2, axis=1).astype(int)
        assert np.abs(sr.astype(int) - expected).max() <= 2


def test_variable_frame_rate_timestamps_are_kept(tmp_path, capsys, nearest):
    stamps = [0, 1, 2, 4, 5, 9, 10, 11, 15, 20]
    clip = make_clip(tmp_path / "vfr.mkv", frames=len(stamps), pts=stamps, audio=False, rotation=0)
    code, err = run(capsys, "upscale", clip, "--model", nearest, "-o", tmp_path / "out.mkv")
    assert code == 0, err
    src, out = describe(clip), describe(tmp_path / "out.mkv")
    assert out["times"] == src["times"] == [s / 25 for s in stamps]


def test_colour_matrix_and_range_are_kept(tmp_path, capsys, nearest):
    clip = make_clip(tmp_path / "hd.mp4", frames=4, audio=False, rotation=0, colour=(1, 2))  # BT.709, full range
    code, err = run(capsys, "upscale", clip, "--model", nearest, "-o", tmp_path / "out.mp4")
    assert code == 0, err
    out = describe(tmp_path / "out.mp4")
    assert (out["colorspace"], out["color_range"]) == (1, 2)
    untagged = make_clip(tmp_path / "sd.mp4", frames=4, audio=False, rotation=0)
    code, err = run(capsys, "upscale", untagged, "--model", nearest, "-o", tmp_path / "sd_out.mp4")
    out = describe(tmp_path / "sd_out.mp4")
    assert code == 0 and (out["colorspace"], out["color_range"]) == (6, 1)  # said outright: BT.601, limited


def test_subtitles_copied_or_converted_and_audio_reencoded_only_where_needed(tmp_path, capsys, nearest):
    clip = make_clip(tmp_path / "subs.mkv", frames=10, subtitles=True, rotation=0)
    code, err = run(capsys, "upscale", clip, "--model", nearest, "-o", tmp_path / "same.mkv")
    assert code == 0 and "WARNING" not in err
    assert packets(tmp_path / "same.mkv", "subtitles") == packets(clip, "subtitles")
    code, err = run(capsys, "upscale", clip, "--model", nearest, "-o", tmp_path / "out.mp4")
    assert code == 0 and "re-encoding it as mov_text" in err
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.subtitles[0].codec_context.name == "mov_text"
        assert c.streams.subtitles[0].metadata.get("language") == "fra"
        texts = [bytes(p) for p in c.demux(c.streams.subtitles[0]) if p.size > 2]
    assert [t[2:] for t in texts] == [b"line 0", b"line 1"]
    code, err = run(capsys, "upscale", clip, "--model", nearest, "--codec", "vp9", "-o", tmp_path / "out.webm")
    assert code == 0 and "cannot hold aac audio; re-encoding it as opus" in err
    assert describe(tmp_path / "out.webm")["audio_codec"] == "opus"


def test_a_video_is_known_by_its_content(tmp_path, capsys, nearest):
    clip = make_clip(tmp_path / "clip.mp4", frames=5, audio=False)
    renamed = tmp_path / "holiday"
    renamed.write_bytes(clip.read_bytes())
    assert looks_like_video(renamed) and not looks_like_video(nearest)
    code, err = run(capsys, "upscale", renamed, "--model", nearest, "-o", tmp_path / "out")
    assert code == 0, err
    assert describe(tmp_path / "out" / "holiday.mkv")["frames"] == 5


def test_truncated_and_bad_videos_are_one_line_errors(tmp_path, capsys, nearest):
    clip = make_clip(tmp_path / "clip.mp4", frames=25)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cut.mp4").write_bytes(clip.read_bytes()[:3000])
    (tmp_path / "in" / "fake.mkv").write_bytes(b"\x1a\x45\xdf\xa3" + bytes(100))
    (tmp_path / "in" / "good.mp4").write_bytes(clip.read_bytes())
    code, err = run(capsys, "upscale", tmp_path / "in", "--model", nearest, "-o", tmp_path / "out")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 3 and "upscaled 1 of 3" in lines[-1]
    assert any("cut.mp4" in line for line in lines) and any("fake.mkv" in line for line in lines)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.mp4"]


def test_a_clip_cut_mid_stream_is_an_error(tmp_path, capsys, nearest):
    """An MP4 with its index first ('faststart'), cut after two thirds: FFmpeg alone would decode the first
    frames and stop quietly; the index points past the end of the file, so it is refused."""
    clip = make_clip(tmp_path / "clip.mp4", frames=40, audio=False, rotation=0, options={"movflags": "faststart"})
    data = clip.read_bytes()
    assert data[4:8] == b"ftyp" and b"moov" in data[:64]
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])
    code, err = run(capsys, "upscale", tmp_path / "cut.mp4", "--model", nearest, "-o", tmp_path / "out.mp4")
    assert code == 1 and "cut.mp4: truncated: its index points" in err and not (tmp_path / "out.mp4").exists()
    code, err = run(capsys, "upscale", clip, "--model", nearest, "-o", tmp_path / "whole.mp4")
    assert code == 0 and describe(tmp_path / "whole.mp4")["frames"] == 40


def test_audio_start_time_is_kept_when_reencoded(tmp_path, capsys, nearest):
    """Audio that starts a second after the picture still does after AAC is re-encoded to Opus for WebM."""
    clip = make_clip(tmp_path / "late.mkv", frames=50, rotation=0, audio_start=48000)
    code, err = run(capsys, "upscale", clip, "--model", nearest, "--codec", "vp9", "-o", tmp_path / "late.webm")
    assert code == 0 and "re-encoding it as opus" in err

    def audio_start(path):
        with av.open(str(path)) as c:
            frame = next(c.decode(audio=0))
            return float(frame.pts * frame.time_base)

    assert abs(audio_start(clip) - 1.0) < 0.03
    assert abs(audio_start(tmp_path / "late.webm") - audio_start(clip)) < 0.03


def test_images_are_not_taken_for_videos(tmp_path, photo):
    from PIL import Image

    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        for k in range(40):  # GIFs start with 'G' = 0x47, MPEG-TS's sync byte: vary the content
            path = tmp_path / f"{k}.{fmt.lower()}"
            Image.fromarray(np.roll(photo, 7 * k, axis=1)).save(path, fmt)
            assert not looks_like_video(path), (fmt, k)
    heic = tmp_path / "x.heic"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(64))
    assert not looks_like_video(heic)


def test_odd_output_sizes_and_bad_options_are_refused(tmp_path, capsys, nearest):
    clip = make_clip(tmp_path / "clip.mp4", frames=3, audio=False, rotation=0)
    code, err = run(capsys, "upscale", clip, "--width", "99", "-o", tmp_path / "a.mp4")
    assert code == 1 and "even width and height" in err and not (tmp_path / "a.mp4").exists()
    assert err.count(str(tmp_path)) == 1 and "--pix-fmt yuv444p" in err  # one path; the hint with the flag
    code, err = run(
        capsys,
        "upscale",
        clip,
        "--width",
        "99",
        "--pix-fmt",
        "yuv444p",
        "--method",
        "bicubic",
        "-o",
        tmp_path / "b.mp4",
    )
    assert code == 0, err
    assert describe(tmp_path / "b.mp4")["size"] == (99, 74)
    code, err = run(capsys, "upscale", clip, "--codec", "nonesuch", "-o", tmp_path / "c.mp4")
    assert code == 1 and "unknown video encoder 'nonesuch'" in err
    code, err = run(capsys, "upscale", clip, "-o", tmp_path / "c.png")
    assert code == 1 and "must be a video file" in err
    code, err = run(capsys, "upscale", clip, "--max-pixels", "3000", "-o", tmp_path / "d.mp4")
    assert code == 1 and "64x48 = 3,072 pixels are over the limit of 3,000" in err


def test_rotated_clip_sizes_mean_the_displayed_picture(tmp_path, capsys):
    clip = make_clip(tmp_path / "clip.mp4", frames=3, audio=False, rotation=90)  # shown 48 wide, 64 high
    code, err = run(capsys, "upscale", clip, "--width", "96", "--method", "bicubic", "-o", tmp_path / "out.mp4")
    assert code == 0, err
    out = describe(tmp_path / "out.mp4")
    assert out["size"] == (128, 96) and out["rotation"] == 90  # stored 128x96, shown 96x128


def test_without_pyav_a_video_says_what_to_install(tmp_path, capsys, monkeypatch, nearest):
    clip = make_clip(tmp_path / "clip.mp4", frames=2, audio=False)
    monkeypatch.setitem(sys.modules, "av", None)  # import av now fails
    code, err = run(capsys, "upscale", clip, "--model", nearest)
    assert code == 1 and "clip.mp4: is a video; video needs PyAV: pip install 'superres[video]'" in err


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_interrupted_video_leaves_nothing(tmp_path, how):
    """Stopped while writing, politely or not, nothing appears under the output name or beside it."""
    clip = make_clip(tmp_path / "clip.mp4", frames=400, size=(128, 96), audio=False, rotation=0)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "superres",
            "--verbose",
            "upscale",
            str(clip),
            "--method",
            "bicubic",
            "--scale",
            "4",
            "--codec",
            "libx264",
            "-o",
            str(out / "big.mp4"),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    for line in proc.stderr:  # wait until the encoder is writing
        if "writing" in line or time.monotonic() > deadline:
            break
    time.sleep(0.3)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(how)
    rest = proc.stderr.read()
    proc.wait(timeout=60)
    if how == signal.SIGTERM:
        assert proc.returncode == 130 and "interrupted" in rest and "Traceback" not in rest
    assert not out.exists() or list(out.iterdir()) == []


def test_ten_bit_video_stays_ten_bit(tmp_path, capsys, nearest):
    clip = make_clip(tmp_path / "deep.mkv", frames=3, pix_fmt="yuv420p10le", audio=False, rotation=0)
    with VideoReader(clip) as reader:
        frame = next(f for f in reader.items())
    assert reader.info.deep and frame.pixels.dtype == np.uint16 and frame.pixels.max() > 255
    code, err = run(capsys, "upscale", clip, "--model", nearest, "-o", tmp_path / "out.mkv")
    assert code == 0, err
    out = describe(tmp_path / "out.mkv")
    assert out["pix_fmt"] == "yuv420p10le" and out["frames"] == 3 and out["size"] == (128, 96)
