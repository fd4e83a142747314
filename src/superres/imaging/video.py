"""Reading and writing video with PyAV (the optional extra `superres[video]`; its wheels carry FFmpeg).

`VideoReader` decodes a file's first video stream to RGB frames (uint8, or uint16 for more than 8 bits),
in the stream's own colour matrix and range, and hands on the packets of its audio and subtitle streams
untouched. `VideoWriter` encodes RGB frames at their original timestamps, tags the output with the same
colour description and rotation, and copies those packets into the new container (re-encoding audio only
where the container cannot hold its codec). What is kept and what is not is said in the README.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import numpy as np

from superres.errors import Hint, VideoError

if TYPE_CHECKING:  # av is optional (superres[video]): imported where used
    from av import AudioStream, VideoFrame
    from av.subtitles.stream import SubtitleStream

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {
    ".mp4",
    ".m4v",
    ".mov",
    ".mkv",
    ".webm",
    ".avi",
    ".ts",
    ".mts",
    ".m2ts",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
    ".ogv",
    ".3gp",
    ".y4m",
}
CONTAINERS = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
    ".ts": "mpegts",
    ".mts": "mpegts",
    ".m2ts": "mpegts",
    ".mpg": "mpeg",
    ".mpeg": "mpeg",
    ".flv": "flv",
    ".ogv": "ogg",
    ".3gp": "3gp",
}
DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 18  # x264's 'visually lossless'; FFmpeg's own default is 23
CODEC_ALIASES = {
    "h264": "libx264",
    "x264": "libx264",
    "h265": "libx265",
    "hevc": "libx265",
    "x265": "libx265",
    "vp9": "libvpx-vp9",
    "av1": "libsvtav1",
}
INSTALL_HINT = "video needs PyAV: pip install 'superres[video]'"


IMAGE_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}  # ISO files that are images


def looks_like_video(path: str | Path) -> bool:
    """Whether a file's first bytes are those of a video container (MP4/MOV, Matroska/WebM, AVI, MPEG-TS/PS,
    FLV, Ogg, ASF, Y4M), whatever its name. Image signatures (PNG, JPEG, GIF, BMP, TIFF, WebP, HEIF/AVIF)
    are never videos."""
    try:
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError:
        return False
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    ):
        return False
    if head[4:8] == b"ftyp":  # ISO media: MP4, MOV, 3GP, ... but also HEIC and AVIF pictures
        return head[8:12] not in IMAGE_BRANDS
    return (
        head[4:8] in (b"moov", b"mdat", b"free", b"wide")  # QuickTime without ftyp
        or head[:4] == b"\x1a\x45\xdf\xa3"  # EBML: Matroska, WebM
        or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        or (len(head) > 376 and head[0] == head[188] == head[376] == 0x47)  # MPEG-TS: sync bytes 188 apart
        or head[:4] == b"\x00\x00\x01\xba"  # MPEG program stream
        or head[:3] == b"FLV"
        or (head[:4] == b"OggS" and b"theora" in head)
        or head[:16] == bytes.fromhex("3026b2758e66cf11a6d900aa0062ce6c")  # ASF / WMV
        or head[:10] == b"YUV4MPEG2 "
    )


def require_av(path: str | Path):
    """The av module, or a one-line error naming the file and what to install."""
    try:
        import av  # noqa: PLC0415 - optional
    except ImportError:
        raise VideoError(f"{path}: is a video; {INSTALL_HINT}") from None
    return av


@dataclass
class VideoInfo:
    """What a video stream says about itself, as far as the output must keep it."""

    width: int
    height: int
    rate: Fraction | None  # average frame rate
    time_base: Fraction
    frames: int  # as the container says or estimates (0: unknown)
    rotation: int  # degrees counter-clockwise, as FFmpeg's display matrix says
    pix_fmt: str
    deep: bool  # more than 8 bits per sample: frames are uint16
    colorspace: int  # the YUV matrix used to decode (FFmpeg's AVColorSpace)
    color_range: int  # 1: limited (MPEG), 2: full (JPEG)
    color_primaries: int
    color_trc: int
    sample_aspect: Fraction | None


@dataclass
class Frame:
    pixels: np.ndarray  # (H, W, 3) RGB, uint8 or uint16
    pts: int  # in VideoInfo.time_base


def _unspecified_matrix(height: int) -> int:
    """The matrix players assume for an untagged stream: BT.709 for HD, BT.601 (SMPTE 170M) below."""
    return 1 if height >= 720 else 6


class VideoReader:
    """A video file opened for decoding. Iterate `items()` for Frames and the packets of the copied streams,
    in file order; close() when done (or use it as a context manager)."""

    def __init__(self, path: str | Path) -> None:
        av = require_av(path)
        from av.error import FFmpegError  # noqa: PLC0415 - av is there: require_av checked

        self.path = Path(path)
        try:
            self.container = av.open(str(path), metadata_errors="replace")
        except (FFmpegError, UnicodeDecodeError) as e:
            raise VideoError(f"{path}: not a video that can be read ({_reason(e)})") from e
        if not self.container.streams.video:
            self.container.close()
            raise VideoError(f"{path}: holds no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"
        entries = self.stream.index_entries  # an index (MP4's sample table) that points past the end: cut short
        end = max((e.pos + e.size for e in entries), default=0) if entries is not None else 0
        size = self.path.stat().st_size
        if end > size:
            self.container.close()
            raise VideoError(f"{path}: truncated: its index points {end - size:,} bytes past the end of the file")
        self.copied = [s for s in self.container.streams if s.type in ("audio", "subtitle")]
        cc = self.stream.codec_context
        if cc is None or not cc.width or not cc.height or cc.format is None:  # (no decoder for its codec: None)
            self.container.close()
            raise VideoError(f"{path}: the video stream has no picture size or pixel format")
        deep = max((c.bits for c in cc.format.components), default=8) > 8
        # PyAV types it Optional (a stream may have none); FFmpeg's demuxers give every stream one
        time_base = cast(Fraction, self.stream.time_base)
        frames = self.stream.frames
        if not frames and self.stream.duration and self.stream.average_rate:
            frames = int(self.stream.duration * time_base * self.stream.average_rate + 0.5)
        self.info = VideoInfo(
            width=cc.width,
            height=cc.height,
            rate=self.stream.average_rate or self.stream.guessed_rate,
            time_base=time_base,
            frames=frames or 0,
            rotation=0,
            pix_fmt=cc.format.name,
            deep=deep,
            colorspace=int(cc.colorspace) if int(cc.colorspace) not in (2, 0) else _unspecified_matrix(cc.height),
            color_range=int(cc.color_range)
            if int(cc.color_range) in (1, 2)
            else (2 if cc.format.name.startswith("yuvj") else 1),
            color_primaries=int(cc.color_primaries),
            color_trc=int(cc.color_trc),
            sample_aspect=cc.sample_aspect_ratio,
        )
        if cc.format.name.startswith(("rgb", "bgr", "gbr", "gray")):
            self.info.color_range = 2

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    def items(self) -> Iterator[Frame | object]:
        """Frames of the video stream (RGB, at their timestamps) and packets of the copied streams, in the
        order of the file. A read error, or fewer frames than the container declares, is a VideoError."""
        from av.error import FFmpegError  # noqa: PLC0415

        count = 0
        last_pts = None
        rgb = "rgb48le" if self.info.deep else "rgb24"
        try:
            for packet in self.container.demux([self.stream, *self.copied]):
                if packet.stream is not self.stream:
                    if packet.dts is not None:  # the demuxer's empty flush packets carry nothing
                        yield packet
                    continue
                for frame in cast("list[VideoFrame]", packet.decode()):  # a video stream's packet: video frames
                    if count == 0:
                        self.info.rotation = int(frame.rotation or 0)
                    pts = frame.pts if frame.pts is not None else (0 if last_pts is None else last_pts + 1)
                    if last_pts is not None and pts <= last_pts:  # repeated or backward stamps: keep the order
                        pts = last_pts + 1
                    last_pts = pts
                    image = frame.reformat(
                        format=rgb,
                        src_colorspace=self.info.colorspace,
                        src_color_range=self.info.color_range,
                        dst_color_range=2,
                    )
                    count += 1
                    yield Frame(image.to_ndarray(), pts)
        except FFmpegError as e:
            raise VideoError(
                f"{self.path}: cannot be decoded after {count} frame(s), the file may be truncated "
                f"or corrupt ({_reason(e)})"
            ) from e
        if count == 0:
            raise VideoError(f"{self.path}: no video frame could be decoded (truncated or corrupt?)")
        declared = self.stream.frames
        if declared and count < declared:  # an edit list (a trimmed clip) also shows fewer: not an error
            log.warning(
                "%s: %d of the %d frames the file declares were decoded (trimmed by an edit list, or truncated)",
                self.path,
                count,
                declared,
            )


def _reason(e: Exception) -> str:
    text = getattr(e, "strerror", None) or str(e)
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__


def codec_name(name: str | None) -> str:
    """An encoder name from what a user types (h264, hevc, vp9, ...)."""
    return CODEC_ALIASES.get((name or DEFAULT_CODEC).lower(), name or DEFAULT_CODEC)


class VideoWriter:
    """Encode RGB frames into `file` (open, seekable, binary) as the container `suffix` names, keeping
    the reader's timestamps, colour description and rotation, and copying its audio and subtitle streams.

    size: (height, width) of the frames to come. codec: an FFmpeg encoder (default libx264); crf: its
    constant-quality setting where it has one; pix_fmt: default the input's where the encoder takes it,
    else yuv420p (or the encoder's first format)."""

    def __init__(
        self,
        file: BinaryIO,
        suffix: str,
        reader: VideoReader,
        size: tuple[int, int],
        codec: str | None = None,
        crf: int | None = None,
        pix_fmt: str | None = None,
        name: str | Path = "output",
    ) -> None:
        import av  # noqa: PLC0415
        from av.error import FFmpegError  # noqa: PLC0415

        self.name = name
        container = CONTAINERS.get(suffix.lower())
        if container is None:
            raise VideoError(f"{name}: cannot write '{suffix}' video; use one of {', '.join(sorted(CONTAINERS))}")
        codec = codec_name(codec)
        if codec not in av.codecs_available:
            raise VideoError(f"unknown video encoder '{codec}' (e.g. libx264, libx265, libvpx-vp9, libsvtav1, ffv1)")
        try:
            encoder = av.Codec(codec, "w")
        except FFmpegError as e:
            raise VideoError(f"'{codec}' cannot encode ({_reason(e)})") from e
        if encoder.type != "video":
            raise VideoError(f"'{codec}' is not a video encoder")
        self.out = av.open(file, "w", format=container)
        try:
            self._setup(av, encoder, reader, size, crf, pix_fmt)
        except BaseException:
            self.out.close()
            raise

    def _setup(
        self, av, encoder, reader: VideoReader, size: tuple[int, int], crf: int | None, pix_fmt: str | None
    ) -> None:
        info = reader.info
        if encoder.name not in self.out.supported_codecs:
            raise VideoError(f"{self.name}: a {self.out.format.name} file cannot hold {encoder.name} video")
        self.pix_fmt = pix_fmt = _pixel_format(encoder, info.pix_fmt, pix_fmt)
        h, w = size
        fmt = av.VideoFormat(pix_fmt, w, h)
        if any(
            c.is_chroma and (c.width * (w // max(c.width, 1)) != w or c.height * (h // max(c.height, 1)) != h)
            for c in fmt.components
        ):
            raise VideoError(
                f"{self.name}: {pix_fmt} needs an even width and height, and the output would be {w}x{h}",
                hint=Hint("pix_fmt", "give an output size with even sides, or {}", "pix_fmt='yuv444p'"),
            )
        self.video = self.out.add_stream(encoder.name, rate=info.rate)
        self.video.width, self.video.height, self.video.pix_fmt = w, h, pix_fmt
        self.video.time_base = info.time_base
        cc = self.video.codec_context
        cc.time_base = info.time_base
        if info.sample_aspect:  # keep the display aspect where the output changes the picture's
            sar = info.sample_aspect * Fraction(info.width * h, info.height * w)
            cc.sample_aspect_ratio = sar.limit_denominator(65535)
        self.deep = fmt.components[0].bits > 8 if fmt.components else False
        full = pix_fmt.startswith(("yuvj", "rgb", "bgr", "gbr"))
        self.color_range = 2 if full else info.color_range
        cc.colorspace, cc.color_range = info.colorspace, self.color_range
        cc.color_primaries, cc.color_trc = info.color_primaries, info.color_trc
        cc.options = _quality_options(encoder.name, cc, crf)
        self.video.metadata.update({k: v for k, v in reader.stream.metadata.items() if k in ("language", "title")})
        if info.rotation:
            self.video.set_display_rotation(info.rotation)
        self.copies = {}
        self.recoders = {}
        for stream in reader.copied:
            self._add_copy(av, stream)
        dropped = ("encoder", "major_brand", "minor_version", "compatible_brands")
        self.out.metadata.update({k: v for k, v in reader.container.metadata.items() if k not in dropped})

    def _add_copy(self, av, stream) -> None:
        """Copy `stream` into the output; where the container cannot hold its codec, re-encode audio with
        the container's default codec, and text subtitles with its subtitle codec (e.g. SRT to mov_text)."""
        codec = stream.codec_context.name
        if stream.type == "audio":
            default = self.out.default_audio_codec
        else:  # MP4's default is none, though it holds mov_text
            default = next(
                (c for c in (self.out.default_subtitle_codec, "mov_text", "webvtt") if c in self.out.supported_codecs),
                None,
            )
        text = stream.type == "subtitle" and bool(stream.codec_context.codec.text_sub)
        if codec in self.out.supported_codecs:
            out = self.out.add_stream_from_template(stream)
            self.copies[stream.index] = out
        elif default not in (None, "none") and (stream.type == "audio" or text):
            if stream.type == "audio":
                out = cast("AudioStream", self.out.add_stream(default, rate=stream.codec_context.sample_rate))
                out.layout = stream.codec_context.layout
            else:
                if not stream.codec_context.is_open:
                    stream.codec_context.open()  # which makes its ASS header, the encoder's input format
                out = cast("SubtitleStream", self.out.add_stream(default))
                out.codec_context.subtitle_header = stream.codec_context.subtitle_header
            self.recoders[stream.index] = (stream, out)
            log.warning(
                "%s: a %s file cannot hold %s %s; re-encoding it as %s",
                self.name,
                self.out.format.name,
                codec,
                stream.type,
                default,
            )
        else:
            log.warning(
                "%s: a %s file cannot hold %s %s; that stream is left out",
                self.name,
                self.out.format.name,
                codec,
                stream.type,
            )
            return
        out.metadata.update({k: v for k, v in stream.metadata.items() if k in ("language", "title")})
        out.disposition = stream.disposition

    def write_frame(self, pixels: np.ndarray, pts: int) -> None:
        """One upscaled frame, (H, W, 3) RGB uint8 or uint16, at its input timestamp."""
        import av  # noqa: PLC0415

        if pixels.dtype == np.uint16:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb48le")
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")
        frame = frame.reformat(
            format=self.pix_fmt,
            dst_colorspace=self.video.codec_context.colorspace,
            src_color_range=2,
            dst_color_range=self.color_range,
        )
        frame.pts = pts
        frame.time_base = self.video.codec_context.time_base
        for packet in self.video.encode(frame):
            self.out.mux(packet)

    def copy_packet(self, packet) -> None:
        """A packet of an audio or subtitle stream of the input, copied as it is (or re-encoded, see above)."""
        index = packet.stream.index
        if index in self.copies:
            packet.stream = self.copies[index]
            self.out.mux(packet)
        elif index in self.recoders:
            source, out = self.recoders[index]
            if source.type == "subtitle":
                subtitle = source.codec_context.decode2(packet)
                if subtitle is None or not len(subtitle):
                    return
                encoded = out.codec_context.encode_subtitle(subtitle)
                encoded.pts = encoded.dts = packet.pts
                encoded.duration, encoded.time_base, encoded.stream = packet.duration, packet.time_base, out
                self.out.mux(encoded)
                return
            for frame in packet.decode():
                if frame.pts is not None:  # the source's time, counted in samples, so that sync is kept
                    rate = out.codec_context.sample_rate
                    frame.pts, frame.time_base = round(frame.pts * frame.time_base * rate), Fraction(1, rate)
                for p in out.encode(frame):
                    self.out.mux(p)

    def close(self) -> None:
        """Flush the encoders and finish the file."""
        for packet in self.video.encode():
            self.out.mux(packet)
        for source, out in self.recoders.values():
            for packet in out.encode() if source.type == "audio" else ():
                self.out.mux(packet)
        self.out.close()

    def abort(self) -> None:
        try:
            self.out.close()
        except Exception:  # noqa: BLE001 - the file is being thrown away
            pass


def _pixel_format(encoder, source: str | None, asked: str | None) -> str:
    """The output pixel format: the one asked for (which the encoder must take), else the source's where the
    encoder takes it, else yuv420p, else the encoder's first."""
    formats = [f.name for f in (encoder.video_formats or [])]
    if asked is None:
        if source in formats:
            return str(source)
        return "yuv420p" if "yuv420p" in formats or not formats else formats[0]
    if formats and asked not in formats:
        raise VideoError(f"{encoder.name} cannot encode pixel format '{asked}'; it takes {', '.join(formats)}")
    return asked


def _quality_options(encoder: str, cc, crf: int | None) -> dict[str, str]:
    """The encoder options for a constant quality (crf; DEFAULT_CRF unless given), where the encoder has one."""
    if "crf" not in {o.name for o in cc.supported_options.private}:
        if crf is not None:
            raise VideoError(f"{encoder} has no crf setting")
        return {}
    options = {"crf": str(DEFAULT_CRF if crf is None else crf)}
    if encoder.startswith("libvpx"):
        options["b"] = "0"  # VP8/9 take crf as constant quality only without a bitrate
    return options
