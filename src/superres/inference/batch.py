"""Upscaling many files: reading, the network and writing overlap, and torchrun's processes share the files.

In one process, a reader thread reads (and measures, for --denoise auto) the next images while the calling
thread runs the network, and a writer thread compresses and writes each output band by band as the network
makes it. With torchrun, each process takes its share of the files (`share`), runs them so, and rank 0
reports for all (`Ranks.gather`).
"""

from __future__ import annotations

import datetime
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from superres.errors import Hint, SuperresError, one_line
from superres.imaging.io import DEFAULT_MAX_PIXELS, PictureStream, read_image, write_image
from superres.inference.threads import END, Worker, get, put
from superres.inference.video import FrameUpscaler, upscale_video

log = logging.getLogger(__name__)

READ_AHEAD = 2  # images read ahead of the network
BANDS_AHEAD = 2  # output bands made ahead of the writer
_DONE = object()  # the last band of an image


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    video: bool = False


@dataclass
class Outcome:
    done: list[Job] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def share(jobs: list[Job], rank: int, world: int) -> list[Job]:
    """The jobs of process `rank` of `world`: largest files first, each to the process with the fewest bytes
    so far (the lowest rank on a tie). Every process computes the same split, so each job is done once."""
    if world == 1:
        return list(jobs)
    sizes = {job: (job.source.stat().st_size if job.source.exists() else 0) for job in jobs}
    load = [0] * world
    mine = set()
    for job in sorted(jobs, key=lambda j: (-sizes[j], str(j.source))):
        r = min(range(world), key=lambda k: (load[k], k))
        load[r] += sizes[job]
        if r == rank:
            mine.add(job)
    return [job for job in jobs if job in mine]


class _Writer:
    """A thread that writes images one after another, each from bands handed to it as they are made."""

    def __init__(self, overwrite: bool, stop: threading.Event, outcome: Outcome, describe: Describe) -> None:
        self.overwrite, self.stop, self.outcome, self.describe = overwrite, stop, outcome, describe
        self.tasks: queue.Queue = queue.Queue(1)
        self.worker = Worker(self._run, "superres-write")

    def write(self, job: Job, stream: PictureStream) -> None:
        """Write `stream` to job.target, running its bands (the network) in the calling thread."""
        bands: queue.Queue = queue.Queue(BANDS_AHEAD)
        if not put(self.tasks, (job, stream, bands), self.stop, self.worker.alive):
            raise SuperresError(f"{job.target}: the writer stopped")
        try:
            for band in stream.strips:
                if not put(bands, band, self.stop, self.worker.alive):
                    break
        except BaseException:
            put(bands, END, self.stop, self.worker.alive)  # the writer drops the half-written file
            raise
        put(bands, _DONE, self.stop, self.worker.alive)

    def finish(self) -> None:
        put(self.tasks, END, self.stop, self.worker.alive)
        self.worker.join()

    def _run(self) -> None:
        while (task := get(self.tasks, self.stop)) is not END:
            job, stream, bands = task

            def rows(bands=bands) -> Iterable:
                while (band := get(bands, self.stop)) is not _DONE:
                    if band is END:
                        raise _Abandoned
                    yield band

            bands_in = rows()
            try:
                write_image(
                    job.target,
                    PictureStream(stream.height, stream.width, bands_in, stream.alpha, stream.icc_profile),
                    overwrite=self.overwrite,
                )
                self.outcome.done.append(job)
                log.info("%s -> %s", job.source, job.target)
            except _Abandoned:
                continue
            except SuperresError as e:
                self.outcome.errors.append(self.describe(e, job.target))
                try:
                    for _ in bands_in:  # let the network thread finish handing over this image's bands
                        pass
                except _Abandoned:
                    pass


class _Abandoned(Exception):
    """The network failed on the image being written."""


TILE_HINT = Hint("tile", "try a smaller {}", "tile")
Describe = Callable[[BaseException, Path | None], str]  # an error and its file -> the line to report


def _read_ahead(
    jobs: list[Job], upscaler: FrameUpscaler, max_pixels: int | None, ready: queue.Queue, stop: threading.Event
) -> None:
    """Read each image job's picture and choose its denoise strength, one job ahead of the network; put
    (job, (picture, choice)), or (job, the error), or (job, None) for a video, then END."""
    for job in jobs:
        item: Any = None
        if not job.video:
            try:
                picture = read_image(job.source, max_pixels)
                item = (picture, upscaler.choose_denoise(picture))
            except SuperresError as e:
                item = e
            except MemoryError:
                item = SuperresError(f"{job.source}: out of memory while reading it")
            except Exception as e:  # noqa: BLE001 - one file's surprise must not end the batch
                item = SuperresError(f"{job.source}: cannot be read ({type(e).__name__}: {e})")
        if not put(ready, (job, item), stop):
            return
    put(ready, END, stop)


def _failure(error: BaseException, job: Job, describe: Describe) -> str:
    """The line reported for a job that failed with `error`."""
    if isinstance(error, MemoryError):
        error = SuperresError("out of memory", hint=TILE_HINT)
    elif isinstance(error, RuntimeError) and not isinstance(error, SuperresError):  # torch, inside the network
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        error = SuperresError(f"failed while upscaling ({first})")
    named = str(error).startswith((str(job.source), str(job.target)))
    return describe(error, None if named else job.source)


def run_batch(
    jobs: list[Job],
    upscaler: FrameUpscaler,
    *,
    overwrite: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    video: dict[str, Any] | None = None,
    progress: Callable[[Iterable, int], Iterable] | None = None,
    frame_progress: Callable[[Iterable, int], Iterable] | None = None,
    describe: Describe = one_line,
) -> Outcome:
    """Upscale every job's source into its target; per-file failures are collected, not raised.

    video: codec, crf and pix_fmt for video jobs (see upscale_video). progress(iterable, total) wraps the loop
    over files, frame_progress the loop over a video's frames. describe(error, file) words a failure (the CLI
    names its flags in hints). Interrupted (KeyboardInterrupt), the files in progress are dropped and nothing is
    left under their names."""
    outcome = Outcome()
    stop = threading.Event()
    ready: queue.Queue = queue.Queue(READ_AHEAD)
    reader = Worker(lambda: _read_ahead(jobs, upscaler, max_pixels, ready, stop), "superres-read")
    writer = _Writer(overwrite, stop, outcome, describe)

    def taken() -> Iterable:
        while (got := get(ready, stop, reader.alive)) is not END:
            yield got

    try:
        for job, item in progress(taken(), len(jobs)) if progress else taken():
            try:
                if isinstance(item, SuperresError):
                    raise item
                if job.video:
                    options = dict(overwrite=overwrite, max_pixels=max_pixels, progress=frame_progress, **(video or {}))
                    result = upscale_video(job.source, job.target, upscaler, **options)
                    outcome.done.append(job)
                    log.info("%s -> %s (%d frames)", job.source, job.target, result.frames)
                    continue
                picture, choice = item
                if getattr(upscaler, "pair", None) is not None:
                    log.info("%s: %s", job.source.name, choice.describe())
                writer.write(job, upscaler.stream(picture, choice))
            except (SuperresError, MemoryError, RuntimeError) as e:
                outcome.errors.append(_failure(e, job, describe))
        reader.join()
        writer.finish()
    except BaseException:
        stop.set()  # the writer drops the file it is on; the reader stops
        writer.worker.thread.join()
        raise
    return outcome


class Ranks:
    """The processes torchrun started (WORLD_SIZE, RANK, LOCAL_RANK), or this process alone."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1:
            import torch.distributed as dist  # noqa: PLC0415

            if not dist.is_initialized():  # gloo: the summary is a few strings, whatever the devices
                dist.init_process_group("gloo", timeout=datetime.timedelta(days=7))  # ranks wait for the slowest

    def device(self, asked: str, gpu: bool = True) -> str:
        """One GPU per process: cuda:LOCAL_RANK where CUDA is asked for or 'auto' finds it (and `gpu`: the
        backend runs on one)."""
        import torch  # noqa: PLC0415

        if gpu and self.world > 1 and asked in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return asked

    def barrier(self) -> None:
        """Wait until every process is here (no-op alone)."""
        if self.world > 1:
            import torch.distributed as dist  # noqa: PLC0415

            dist.barrier()

    def gather(self, value: Any) -> list[Any]:
        """Every process's value, in rank order, on every process."""
        if self.world == 1:
            return [value]
        import torch.distributed as dist  # noqa: PLC0415

        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value)
        return values

    def close(self) -> None:
        if self.world > 1:
            import torch.distributed as dist  # noqa: PLC0415

            if dist.is_initialized():
                dist.destroy_process_group()
