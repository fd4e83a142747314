"""The server's work queue: one network run at a time, a bounded queue in front of it, progress, cancelling,
and a private folder that holds uploads and results only as long as they are needed.

A Job is one uploaded image and its options. `JobQueue.submit` queues it (QueueFull when the queue is full);
one worker thread runs the jobs in order, tile by tile, so that progress can be read and a cancelled job
stops within one tile. A result is deleted once it has been downloaded, and every job's files once it
expires (nobody asked about it for `heartbeat` seconds while it waited or ran, or `keep` seconds have passed
since it ended, asked about or not). Uploads are held to a byte budget (`UploadBudget`): a request reserves
its size before its body is read, and gives it back when its file is deleted.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from superres.errors import Cancelled, SuperresError
from superres.imaging.io import DEFAULT_MAX_PIXELS, PictureStream, read_image, write_image
from superres.inference.options import UpscaleOptions

if TYPE_CHECKING:
    from superres.api import ImageUpscaler

log = logging.getLogger(__name__)


class Busy(Exception):
    """No room now (the message says for what); the client should retry later."""


class QueueFull(Busy):
    def __init__(self) -> None:
        super().__init__("busy: the queue is full; try again shortly")


class UploadBudget:
    """The bytes that uploads may hold in the private folder at once, counting those still arriving (by the
    size they announce) and those stored for a job until their file is deleted."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self.lock = threading.Lock()

    def reserve(self, nbytes: int) -> Reservation:
        """nbytes of the budget, or Busy when they do not fit now."""
        with self.lock:
            if self.used + nbytes > self.limit:
                raise Busy(
                    f"busy: uploads in progress hold {self.used:,} of this server's {self.limit:,} bytes for "
                    f"uploads, and this one needs {nbytes:,}; try again shortly"
                )
            self.used += nbytes
        return Reservation(self, nbytes)


class Reservation:
    """A share of an UploadBudget: shrunk to the stored file's size, given back (once) when it is deleted."""

    def __init__(self, budget: UploadBudget, nbytes: int) -> None:
        self.budget, self.nbytes = budget, nbytes

    def shrink(self, nbytes: int) -> None:
        with self.budget.lock:
            nbytes = min(nbytes, self.nbytes)
            self.budget.used -= self.nbytes - nbytes
            self.nbytes = nbytes

    def release(self) -> None:
        self.shrink(0)


@dataclass
class Job:
    name: str  # the uploaded file's name, as the user knows it
    source: Path
    options: UpscaleOptions  # as asked (the server adds its device and precision)
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    state: str = "queued"  # queued, running, done, failed, cancelled
    progress: float = 0.0
    error: str | None = None
    result: Path | None = None
    size: tuple[int, int] | None = None  # output (width, height)
    seconds: float | None = None
    seen: float = field(default_factory=time.monotonic)  # when a client last asked about it
    ended_at: float | None = None  # when it ended: its files are kept `keep` seconds from then, polled or not
    cancel: threading.Event = field(default_factory=threading.Event)
    finished: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    upload: Reservation | None = None  # the source's share of the upload budget, given back when it is deleted

    def drop_source(self) -> None:
        """Delete the uploaded file, and give back its share of the upload budget."""
        self.source.unlink(missing_ok=True)
        if self.upload is not None:
            self.upload.release()

    @property
    def ended(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    def public(self) -> dict:
        """What the job endpoint reports."""
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "progress": round(self.progress, 3),
            "error": self.error,
            "width": self.size[0] if self.size else None,
            "height": self.size[1] if self.size else None,
            "seconds": self.seconds,
        }


Runner = Callable[[UpscaleOptions], "ImageUpscaler"]  # makes an ImageUpscaler for the options (cached by the caller)


class JobQueue:
    """Jobs run one at a time, in a worker thread, by upscalers that `make_runner` gives for their options."""

    def __init__(
        self,
        make_runner: Runner,
        max_waiting: int = 8,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        heartbeat: float = 30.0,
        keep: float = 600.0,
        folder: Path | None = None,
        public: Callable[[str], str] = lambda message: message,
        upload_budget: int = 2**62,
    ) -> None:
        """public: a job's error as a client may see it (the server hides its own paths). upload_budget: the
        bytes uploads may hold in the folder at once (UploadBudget)."""
        self.make_runner, self.max_pixels, self.public = make_runner, max_pixels, public
        self.heartbeat, self.keep = heartbeat, keep
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="superres-serve-"))  # mode 0700
        self.jobs: dict[str, Job] = {}
        self.uploads = UploadBudget(upload_budget)
        self.max_waiting = max_waiting
        self.waiting: queue.Queue[Job] = queue.Queue()  # bounded by queued(), which cancelled jobs leave at once
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.worker = threading.Thread(target=self._work, name="superres-serve", daemon=True)
        self.worker.start()
        self.janitor = threading.Thread(target=self._sweep, name="superres-expire", daemon=True)
        self.janitor.start()

    def upload_path(self, name: str) -> Path:
        """A new file in the private folder for an upload, keeping the upload's extension."""
        return self.folder / f"{secrets.token_hex(8)}{Path(name).suffix.lower()[:8]}"

    def queued(self) -> int:
        """Jobs waiting for the network (not the one it runs, not cancelled ones)."""
        return sum(1 for job in list(self.jobs.values()) if job.state == "queued")

    def submit(self, job: Job) -> Job:
        """Queue a job: QueueFull when max_waiting wait already, Busy once the server is stopping."""
        with self.lock:
            if self.stopping.is_set():
                raise Busy("the server is stopping")
            if self.queued() >= self.max_waiting:
                raise QueueFull
            self.jobs[job.id] = job
            self.waiting.put_nowait(job)
        return job

    def get(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        if job is not None:
            job.seen = time.monotonic()
        return job

    def cancel(self, job_id: str) -> Job | None:
        """Stop a job (if it waits or runs) and delete its files."""
        with self.lock:  # against the worker's last step, which keeps a result only if not cancelled
            job = self.jobs.pop(job_id, None)
            if job is not None:
                job.cancel.set()
                if job.state == "queued":
                    self._end(job, "cancelled")
                self._delete(job)
        return job

    def take_result(self, job: Job) -> Path | None:
        """The result file, to be sent once: it leaves the queue's books, and is deleted after sending."""
        with self.lock:
            if self.jobs.pop(job.id, None) is None or job.result is None:
                return None
            return job.result

    def stop(self) -> None:
        """The server is stopping: refuse new jobs, and cancel every job now. Those waiting end at once,
        marked 'the server is stopping', so that clients waiting for them are answered; the running one stops
        within one tile."""
        self.stopping.set()
        with self.lock:
            for job in list(self.jobs.values()):
                job.cancel.set()
                if not job.ended:
                    job.error = "the server is stopping"
                    self._end(job, "cancelled")

    def close(self, timeout: float = 1.0) -> None:
        """stop(), wait up to `timeout` seconds for the worker to leave its tile, and delete the folder (with
        whatever the worker may still write into it)."""
        self.stop()
        self.worker.join(timeout=timeout)
        self.remove_folder()

    def remove_folder(self) -> None:
        """Delete the private folder and everything in it (safe from a signal handler: it takes no lock)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    # -------------------------------------------------------------------------------------------- worker

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                job = self.waiting.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._run_one(job)
            except BaseException as e:
                if not self.stopping.is_set():  # (while stopping, the folder may be gone under the job's feet)
                    log.exception("job %s failed unexpectedly", job.id)
                self._fail(job, f"{job.name}: failed ({type(e).__name__}: {e})")
            finally:
                job.drop_source()

    def _run_one(self, job: Job) -> None:
        if job.cancel.is_set():
            self._end(job, "cancelled")
            return
        job.state = "running"
        start = time.perf_counter()
        try:
            job.size = self._run(job)
            job.seconds = round(time.perf_counter() - start, 3)
            self._end(job, "done")
        except Cancelled:
            self._end(job, "cancelled")
            self._delete(job)
        except SuperresError as e:
            self._fail(job, str(e))
        except MemoryError:
            self._fail(job, f"{job.name}: out of memory")
        except RuntimeError as e:  # torch: out of memory and other failures inside the network
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self._fail(job, f"{job.name}: failed while upscaling ({first})")

    def _run(self, job: Job) -> tuple[int, int]:
        runner = self.make_runner(job.options)
        picture = read_image(job.source, self.max_pixels)
        stream = runner.stream(picture, cancel=job.cancel)
        target = self.folder / f"{job.id}{job.source.suffix}"

        def rows(strips) -> Iterator[np.ndarray]:
            done = 0
            for band in strips:  # (the network checks job.cancel before each tile, too)
                if job.cancel.is_set():
                    raise Cancelled
                done += len(band)
                job.progress = 0.05 + 0.9 * done / stream.height  # reading is the first 5%, writing the last
                yield band

        job.progress = 0.05
        write_image(
            target,
            PictureStream(stream.height, stream.width, rows(stream.strips), stream.alpha, stream.icc_profile),
            overwrite=True,
        )
        with self.lock:  # a cancel either came before (the file goes) or comes after (and deletes it)
            if job.cancel.is_set():
                target.unlink(missing_ok=True)
                raise Cancelled
            job.result = target
        job.progress = 1.0
        return stream.width, stream.height

    def _fail(self, job: Job, message: str) -> None:
        job.error = self.public(message.replace(str(job.source), job.name))  # the user's name for the file, not ours
        self._end(job, "failed")

    def _end(self, job: Job, state: str) -> None:
        if job.finished.done():  # ended already (cancelled while the worker finished it)
            return
        job.state = state
        job.ended_at = time.monotonic()
        try:
            job.finished.set_result(job)
        except concurrent.futures.InvalidStateError:
            pass

    def _delete(self, job: Job) -> None:
        job.drop_source()
        if job.result is not None:
            job.result.unlink(missing_ok=True)

    def _sweep(self) -> None:
        """Cancel jobs nobody asks about (a closed tab), and delete results nobody fetched."""
        while not self.stopping.wait(1.0):
            now = time.monotonic()
            for job in list(self.jobs.values()):
                forgotten = not job.ended and now - job.seen > self.heartbeat
                if forgotten or (job.ended_at is not None and now - job.ended_at > self.keep):
                    log.info("job %s (%s) expired", job.id, job.name)
                    self.cancel(job.id)
