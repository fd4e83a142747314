"""Upscaling a video frame by frame, streaming: decode, network and encode overlap in three threads, and
memory holds a few frames whatever the length.

The decoder thread reads the file in order and passes on frames (RGB) and the packets of the audio and
subtitle streams; the calling thread upscales the frames; the encoder thread encodes them and writes
everything, in the order read, into a file with no name until it is complete (imaging.files.atomic_file).
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from superres.errors import Hint, SuperresError, VideoError
from superres.imaging.files import TargetExistsError, atomic_file
from superres.imaging.io import DEFAULT_MAX_PIXELS, Picture, PictureStream
from superres.imaging.video import Frame, VideoReader, VideoWriter
from superres.inference.denoise import DenoiseChoice
from superres.inference.sizes import OutputSize
from superres.inference.threads import END, Worker, get, put

log = logging.getLogger(__name__)

OVERWRITE_HINT = Hint("overwrite", "use {} to replace it", "overwrite=True")
MAX_PIXELS_HINT = Hint("max_pixels", "raise the limit ({}) if the video is genuine", "max_pixels")

QUEUE_FRAMES = 4  # frames waiting between two threads, at most


class FrameUpscaler(Protocol):
    """What upscale_video needs of an upscaler (api.ImageUpscaler has it)."""

    size: OutputSize

    def choose_denoise(self, picture: Picture) -> DenoiseChoice: ...

    def stream(self, picture: Picture, denoise: DenoiseChoice | None = None) -> PictureStream: ...


@dataclass
class VideoResult:
    frames: int
    size: tuple[int, int]  # (height, width) of the output frames
    denoise: DenoiseChoice


def output_shape(size: OutputSize, frame: tuple[int, int], rotation: int) -> tuple[int, int]:
    """(height, width) of the stored output frames. Sizes given by the user mean the picture as displayed:
    for a stream turned by 90 degrees, the stored frames' sides swap."""
    turned = rotation % 180 == 90
    h, w = frame
    out_h, out_w = size.shape_for((w, h) if turned else (h, w))
    return (out_w, out_h) if turned else (out_h, out_w)


def upscale_video(
    source: str | Path,
    target: str | Path,
    upscaler: FrameUpscaler,
    *,
    codec: str | None = None,
    crf: int | None = None,
    pix_fmt: str | None = None,
    overwrite: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    progress: Callable[[Iterable, int], Iterable] | None = None,
) -> VideoResult:
    """Upscale every frame of `source` and write the video `target` (container from its extension).

    The denoise strength is chosen once, from the first frame, so that it cannot change from frame to frame.
    codec, crf, pix_fmt: see imaging.video.VideoWriter; max_pixels: the largest frame accepted.
    progress(iterable, total) wraps the frame loop (e.g. tqdm). On any error or interruption nothing is left at
    `target` (an existing file there is kept)."""
    source, target = Path(source), Path(target)
    if target.exists() and not overwrite:
        raise SuperresError(f"{target}: already exists", hint=OVERWRITE_HINT)
    with VideoReader(source) as reader:
        w, h = reader.info.width, reader.info.height
        if max_pixels is not None and w * h > max_pixels:
            raise VideoError(
                f"{source}: frames of {w}x{h} = {w * h:,} pixels are over the limit of {max_pixels:,}",
                hint=MAX_PIXELS_HINT,
            )
        ahead, items, shape, upscaler, choice = _start(source, reader, upscaler)
        try:
            with atomic_file(target, overwrite) as file:
                writer = VideoWriter(file, target.suffix, reader, shape, codec, crf, pix_fmt, name=target)
                log.debug("%s: writing", target)
                count = _pipeline(
                    source, _chain(ahead, items), writer, upscaler, choice, shape, progress, reader.info.frames
                )
        except TargetExistsError:
            raise SuperresError(f"{target}: already exists", hint=OVERWRITE_HINT) from None
        except OSError as e:
            raise VideoError(f"{target}: cannot write ({e.strerror or e})") from e
        except _av_errors() as e:
            raise VideoError(f"{target}: the encoder failed ({str(e).strip() or type(e).__name__})") from e
    return VideoResult(count, shape, choice)


def _start(source: Path, reader: VideoReader, upscaler: FrameUpscaler):
    """Decode up to the first frame: the items read so far, the rest, the output shape (the picture as shown,
    rotation included), the upscaler sized for it, and the denoise strength chosen from that frame."""
    items = reader.items()
    ahead = []  # decoding starts here, so that the first frame's size and rotation are known
    while not isinstance(ahead[-1] if ahead else None, Frame):
        ahead.append(next(items))  # (audio packets may come before it)
    first = ahead[-1].pixels
    shape = output_shape(upscaler.size, first.shape[:2], reader.info.rotation)
    if shape != upscaler.size.shape_for(first.shape[:2]):  # a turned stream given a width or height
        upscaler = copy.copy(upscaler)
        upscaler.size = OutputSize(width=shape[1], height=shape[0])
    choice = upscaler.choose_denoise(Picture(first))
    info = reader.info
    log.info("%s: %dx%d, %s frames, rotation %d; output %dx%d; %s", source.name, first.shape[1], first.shape[0],
             info.frames or "?", info.rotation, shape[1], shape[0], choice.describe())  # fmt: skip
    return ahead, items, shape, upscaler, choice


def _pipeline(
    source: Path,
    items: Iterable,
    writer: VideoWriter,
    upscaler: FrameUpscaler,
    choice: DenoiseChoice,
    shape: tuple[int, int],
    progress,
    total: int | None,
) -> int:
    """Decode, upscale and encode in three threads, a few frames between them; returns the frame count. On any
    error or interruption the threads are stopped and joined and the writer aborted (nothing is written)."""
    stop = threading.Event()
    frames_in: queue.Queue = queue.Queue(QUEUE_FRAMES)
    frames_out: queue.Queue = queue.Queue(QUEUE_FRAMES)

    def decode() -> None:
        for item in items:
            put(frames_in, item, stop)
            if stop.is_set():
                return
        put(frames_in, END, stop)

    def encode() -> None:
        while (item := get(frames_out, stop)) is not END:
            if isinstance(item, Frame):
                writer.write_frame(item.pixels, item.pts)
            else:
                writer.copy_packet(item)

    decoder = encoder = None
    try:
        decoder = Worker(decode, "superres-decode")
        encoder = Worker(encode, "superres-encode")
        count = _run_frames(source, frames_in, frames_out, decoder, encoder, upscaler, choice, stop, shape, progress,
                            total)  # fmt: skip
        for worker in (encoder, decoder):
            worker.join()  # raises what failed in it
        writer.close()
        return count
    except BaseException:
        stop.set()
        for worker in (w for w in (encoder, decoder) if w is not None):
            while worker.alive():  # (a second Ctrl-C must not leave them using what is closed)
                try:
                    worker.thread.join()
                except KeyboardInterrupt:
                    pass
        writer.abort()  # the unnamed file is then dropped: nothing appears at target
        raise
    finally:
        stop.set()


def _chain(first: list, rest: Iterable) -> Iterable:
    yield from first
    yield from rest


def _run_frames(
    source: Path,
    frames_in: queue.Queue,
    frames_out: queue.Queue,
    decoder: Worker,
    encoder: Worker,
    upscaler: FrameUpscaler,
    choice: DenoiseChoice,
    stop: threading.Event,
    shape: tuple[int, int],
    progress,
    total: int | None,
) -> int:
    """The calling thread's part: frames from the decoder, upscaled, to the encoder; packets passed on."""
    count = 0

    def frames():
        while (item := get(frames_in, stop, decoder.alive)) is not END:
            yield item

    try:
        bar = progress(frames(), total) if progress is not None else frames()
        for item in bar:
            if not encoder.alive():  # it failed: its error is raised by the caller
                return count
            if isinstance(item, Frame):
                out = upscaler.stream(Picture(item.pixels), choice).collect().pixels
                if out.shape[:2] != shape:
                    raise SuperresError(
                        f"{source}: a frame of {item.pixels.shape[1]}x{item.pixels.shape[0]} changes "
                        f"the picture size mid-stream; this is not supported"
                    )
                if out.ndim == 2:
                    out = np.repeat(out[..., None], 3, axis=2)
                item = replace(item, pixels=out)
                count += 1
            if not put(frames_out, item, stop, encoder.alive):
                return count
        if decoder.error is not None:
            raise decoder.error
        put(frames_out, END, stop, encoder.alive)
    except BaseException:
        stop.set()  # the caller joins the threads
        raise
    return count


def _av_errors() -> tuple[type[BaseException], ...]:
    try:
        from av.error import FFmpegError  # noqa: PLC0415
    except ImportError:
        return ()
    return (FFmpegError,)
