"""The web page and its HTTP API, as a Starlette app (the optional extra `superres[serve]`).

    GET  /                       the page (static files under /static; no CDN, works offline)
    GET  /api/info               the models, options and limits the page offers
    POST /api/upscale            multipart: the file in 'image', options named as the CLI's; answers with
                                 the upscaled image in the input's format, or 4xx {"error": "..."}
    POST /api/jobs               the same, answered at once with a job (202) whose progress can be read:
    GET  /api/jobs/{id}          {"state": queued|running|done|failed|cancelled, "progress": 0..1, ...}
    GET  /api/jobs/{id}/result   the image, once; its files are deleted once it is sent
    DELETE /api/jobs/{id}        cancel (POST /api/jobs/{id}/cancel does the same, for navigator.sendBeacon)

Requests whose Host header is not the served address are refused (DNS rebinding), as are cross-site
requests that change anything (an Origin other than the page's, scheme included, or Sec-Fetch-Site:
cross-site).

Every job is bounded before its body is stored or its network runs: the upload's size (413), the room left
for uploads in the private folder (503), the input's and the output's pixels and the network's estimated
multiply-adds (413, with the numbers); an upload must arrive within a deadline that grows with its size (408).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mimetypes
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from superres.errors import ConfigError, ImageError, SuperresError
from superres.imaging.io import DEFAULT_MAX_PIXELS, READ_SUFFIXES, WRITE_FORMATS, image_size
from superres.inference.denoise import parse_denoise
from superres.inference.options import UpscaleOptions
from superres.web.jobs import Busy, Job, JobQueue, QueueFull
from superres.web.limits import (
    DEFAULT_MAX_OUTPUT_PIXELS,
    DEFAULT_MAX_UPLOAD,
    DEFAULT_MAX_WORK,
    DEFAULT_UPLOAD_BUDGET,
)
from superres.web.upload import OVERHEAD_BYTES, Upload, UploadError, discard, read_upload, within

if TYPE_CHECKING:
    from superres.api import ImageUpscaler

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
UPLOAD_GRACE = 30.0  # seconds an upload may take, plus its size at UPLOAD_RATE
UPLOAD_RATE = 64 * 1024  # bytes per second
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class Server:
    """The app's state: the job queue and the upscalers it runs, one per set of options (a few kept)."""

    def __init__(
        self,
        device: str = "auto",
        precision: str = "auto",
        max_upload: int = DEFAULT_MAX_UPLOAD,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_waiting: int = 8,
        heartbeat: float = 30.0,
        keep: float = 600.0,
        models: Mapping[str, str | os.PathLike] | None = None,
        upload_budget: int = DEFAULT_UPLOAD_BUDGET,
        max_output_pixels: int | None = DEFAULT_MAX_OUTPUT_PIXELS,
        max_work: float | None = DEFAULT_MAX_WORK,
    ) -> None:
        """models: the user's own models the page offers beside the bundled ones, by name (their files are
        checked by the caller; clients name them, never a path). max_upload: the largest file; upload_budget:
        the bytes all uploads may hold at once; max_pixels, max_output_pixels: per image; max_work: the
        network's estimated multiply-adds per image (None: no limit)."""
        self.device, self.precision = device, precision
        self.models = {name: str(path) for name, path in (models or {}).items()}
        self.max_upload, self.max_pixels = max_upload, max_pixels
        self.max_output_pixels, self.max_work = max_output_pixels, max_work
        self.runners: OrderedDict[UpscaleOptions, ImageUpscaler] = OrderedDict()
        self.runners_lock = threading.Lock()
        self.queue = JobQueue(
            self.runner,
            max_waiting=max_waiting,
            max_pixels=max_pixels,
            heartbeat=heartbeat,
            keep=keep,
            public=self.public,
            upload_budget=upload_budget,
        )

    def public(self, message: str) -> str:
        """`message` with the server's model files named as the page names them, never by their paths."""
        for name, path in self.models.items():
            message = message.replace(path, name)
        return message

    def runner(self, options: UpscaleOptions) -> ImageUpscaler:
        """The ImageUpscaler for `options`, made once (the four most recent are kept)."""
        with self.runners_lock:
            if options in self.runners:
                self.runners.move_to_end(options)
                return self.runners[options]
            runner = _make_runner(options.but(device=self.device, precision=self.precision))
            self.runners[options] = runner
            while len(self.runners) > 4:
                self.runners.popitem(last=False)
            return runner


def _make_runner(options: UpscaleOptions) -> ImageUpscaler:
    """The ImageUpscaler for one set of options."""
    from superres.api import ImageUpscaler  # noqa: PLC0415

    return ImageUpscaler(options)


def parse_options(fields: dict[str, str], models: Mapping[str, str] | None = None) -> UpscaleOptions:
    """Options from form fields named as the CLI's flags: scale, size (WxH), width, height, model, denoise,
    self_ensemble. `model` names a bundled model or one of `models` (the server's own: name -> file). Raises
    SuperresError with a one-line reason."""
    known = {"scale", "size", "width", "height", "model", "denoise", "self_ensemble"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise SuperresError(f"unknown option(s) {', '.join(unknown)}; use {', '.join(sorted(known))}")
    text = {k: v.strip() for k, v in fields.items() if v.strip()}
    scale = size = None
    try:
        if "scale" in text:
            scale = float(text["scale"])
        if "size" in text:
            w, h = text["size"].lower().split("x")
            size = (int(w), int(h))
    except ValueError:
        raise SuperresError("scale must be a number (e.g. 2 or 2.5) and size WIDTHxHEIGHT (e.g. 1920x1080)") from None
    if "width" in text or "height" in text:
        raise SuperresError("give size=WIDTHxHEIGHT; width or height alone are not taken here")
    if scale is not None and size is not None:
        raise SuperresError("give a scale or a size, not both")
    if scale is not None and not 0 < scale <= 16:
        raise SuperresError(f"scale must be above 0 and at most 16, got {text['scale']}")
    if size is not None and min(size) < 1:
        raise SuperresError(f"size must be positive, got {text['size']}")
    asked = text.get("denoise", "auto")
    try:
        denoise = None if asked == "off" else parse_denoise(asked)
    except ConfigError:
        raise SuperresError(f"denoise must be auto, auto+chain, off or a strength from 0 to 1, got {asked}") from None
    ensemble = text.get("self_ensemble", "false").lower()
    if ensemble not in ("1", "0", "true", "false", "on", "off", "yes", "no"):
        raise SuperresError(f"self_ensemble must be true or false, got {ensemble}")
    model = text.get("model")
    from superres.models.registry import PRETRAINED  # noqa: PLC0415

    own = dict(models or {})
    if model is not None and model not in PRETRAINED and model not in own:  # never a path on the server's disk
        known = [*PRETRAINED, *own]
        raise SuperresError(f"unknown model '{model}'; this server has {', '.join(known) or 'none'}")
    return UpscaleOptions(
        model=model if model is None or model in PRETRAINED else own[model],  # a bundled name is the bundled model
        scale=scale,
        width=None if size is None else size[0],
        height=None if size is None else size[1],
        denoise=denoise,
        self_ensemble=ensemble in ("1", "true", "on", "yes"),
    )


def create_app(
    host: str = "127.0.0.1", port: int = 8000, server: Server | None = None, allowed_hosts: list[str] | None = None
) -> _Guard:
    """The ASGI app serving `server` (by default a Server() of its own) at host:port. allowed_hosts: Host
    header values accepted besides the served address (and, for a loopback address, localhost, 127.0.0.1 and
    [::1]); a server on 0.0.0.0 or :: accepts any Host."""
    app = Starlette(routes=_routes(), lifespan=_lifespan)
    app.state.server = server or Server()
    return _Guard(app, _accepted_hosts(host, port, allowed_hosts), any_host=host in ("0.0.0.0", "::", ""))


def _routes() -> list[Route | Mount]:
    return [
        Route("/", _page),
        Route("/api/info", _info),
        Route("/api/upscale", _upscale, methods=["POST"]),
        Route("/api/jobs", _jobs, methods=["POST"]),
        Route("/api/jobs/{id}", _job_status, methods=["GET"]),
        Route("/api/jobs/{id}", _cancel, methods=["DELETE"]),
        Route("/api/jobs/{id}/cancel", _cancel, methods=["POST"]),
        Route("/api/jobs/{id}/result", _job_result, methods=["GET"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    app.state.server.queue.close(timeout=0.5)  # cancels what waits and runs, deletes the private folder


def _accepted_hosts(host: str, port: int, allowed_hosts: list[str] | None) -> set[str]:
    """The Host header values (lower case) of the served address, with the port (alone, too, on port 80)."""
    hosts = {h.lower() for h in allowed_hosts or []}
    names = LOOPBACK if host in LOOPBACK else {f"[{host}]" if ":" in host else host}  # IPv6 in brackets
    return hosts | {f"{n}:{port}" for n in names} | ({*names} if port == 80 else set())


def _server(request: Request) -> Server:
    return request.app.state.server


# ---------------------------------------------------------------------------------------------- routes


async def _page(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def _info(request: Request) -> Response:
    from superres.models.registry import PRETRAINED  # noqa: PLC0415

    server = _server(request)
    models = [{"name": e.name, "default": e.default, "photo": e.photo} for e in PRETRAINED.values()]
    models += [{"name": name, "default": False, "photo": None} for name in server.models]
    return JSONResponse(
        {
            "models": models,
            "max_upload_bytes": server.max_upload,
            "upload_budget_bytes": server.queue.uploads.limit,
            "max_pixels": server.max_pixels,
            "max_output_pixels": server.max_output_pixels,
            "max_work": server.max_work,
            "formats": sorted({s.lstrip(".") for s in READ_SUFFIXES}),
            "queue": server.queue.max_waiting,
            "queued": server.queue.queued(),
        }
    )


async def _upscale(request: Request) -> Response:
    """POST /api/upscale: the result in the answer, once the job is done; the job is cancelled if the client
    goes away while it waits."""
    server = _server(request)
    job = await _submit(request)
    if isinstance(job, Response):
        return job
    while not job.finished.done():  # the client waits here; if it goes away, the job is cancelled
        job.seen = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(job.finished)), timeout=0.5)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                server.queue.cancel(job.id)
                return error(499, "the client went away")
    return _result_response(server, job)


async def _jobs(request: Request) -> Response:
    """POST /api/jobs: the job queued, answered at once (202) with its state."""
    job = await _submit(request)
    if isinstance(job, Response):
        return job
    return JSONResponse(job.public(), status_code=202, headers={"Location": f"/api/jobs/{job.id}"})


async def _job_status(request: Request) -> Response:
    job = _server(request).queue.get(request.path_params["id"])
    if job is None:
        return error(404, "no such job (finished and fetched, cancelled, or expired)")
    return JSONResponse(job.public())


async def _job_result(request: Request) -> Response:
    if request.method != "GET" or "range" in request.headers:  # the result is sent once, and whole
        return error(405 if request.method != "GET" else 416, "the result is sent once, whole: use a plain GET")
    server = _server(request)
    job = server.queue.get(request.path_params["id"])
    if job is None:
        return error(404, "no such job (finished and fetched, cancelled, or expired)")
    if not job.ended:
        return error(409, f"the job is {job.state}; ask for the result once it is done")
    return _result_response(server, job)


async def _cancel(request: Request) -> Response:
    job = _server(request).queue.cancel(request.path_params["id"])
    return Response(status_code=204) if job is not None else error(404, "no such job")


async def _submit(request: Request) -> Job | Response:
    """The upload read, its options parsed and the image checked, then queued: the Job, or the error's
    response (413 over a limit, 415/400/422 for what cannot be used, 408 for an upload too slow, 503 when the
    queue or the room for uploads is full, or the server is stopping: the last two before the body is read)."""
    server = _server(request)
    length = request.headers.get("content-length")
    size = int(length) if length is not None and length.isdigit() else None
    largest = server.max_upload + OVERHEAD_BYTES
    if size is not None and size > largest:
        return error(413, f"the upload is {size:,} bytes, over the limit of {server.max_upload:,}")
    need = largest if size is None else size  # chunked: the most it may be
    if need > server.queue.uploads.limit:
        return error(413, f"the upload may be {need:,} bytes, more than this server's room for uploads")
    try:
        if server.queue.stopping.is_set():
            raise Busy("the server is stopping")
        if server.queue.queued() >= server.queue.max_waiting:
            raise QueueFull
        room = server.queue.uploads.reserve(need)
    except Busy as e:
        return _busy(server, e)
    upload: Upload | None = None
    queued = False
    try:
        deadline = UPLOAD_GRACE + need / UPLOAD_RATE
        upload = await read_upload(
            request.headers.get("content-type", ""),
            within(request.stream(), deadline, server.queue.stopping.is_set),
            "image",
            server.max_upload,
            server.queue.upload_path,
        )
        room.shrink(upload.bytes)  # what the stored file holds, until it is deleted
        path, name = upload.path, upload.name
        assert path is not None and name is not None, "read_upload returns only with the file, named"
        options = parse_options(upload.fields, server.models)
        await run_in_threadpool(check_image, path, name, server, options)
        job = server.queue.submit(Job(name, path, options, upload=room))
        queued = True  # the job owns the file and its room now
        return job
    except UploadError as e:
        return error(e.status, str(e))
    except _Refused as e:
        return error(e.status, str(e))
    except SuperresError as e:
        assert upload is not None and upload.path is not None and upload.name is not None
        return error(422, server.public(str(e).replace(str(upload.path), upload.name)))
    except Busy as e:
        return _busy(server, e)
    finally:
        if not queued:
            if upload is not None:
                discard(upload)
            room.release()


def _busy(server: Server, e: Busy) -> Response:
    return error(503, str(e), {"Retry-After": str(server_retry(server))})


def _result_response(server: Server, job: Job) -> Response:
    """A finished job's image as the answer (its file deleted once sent; 410 if cancelled), or its error (422)."""
    if job.state == "failed":
        server.queue.cancel(job.id)
        return error(422, job.error or "failed")
    path = server.queue.take_result(job) if job.state == "done" else None
    if path is None and server.queue.stopping.is_set():
        return error(503, "the server is stopping; the job was cancelled")
    if path is None:
        return error(410, "the job was cancelled")
    stem = Path(job.name).stem
    assert job.size is not None, "a job that is done knows its output size"
    size_given = job.options.width is not None or job.options.height is not None
    label = f"x{job.options.scale:g}" if job.options.scale else f"{job.size[0]}x{job.size[1]}" if size_given else "x2"
    return FileResponse(
        path,
        media_type=mimetypes.guess_type(job.name)[0] or "application/octet-stream",
        filename=f"{stem}_{label}{path.suffix}",
        headers={
            "X-Superres-Width": str(job.size[0]),
            "X-Superres-Height": str(job.size[1]),
            "X-Superres-Seconds": str(job.seconds),
            "Cache-Control": "no-store",
        },
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_image(path: Path, name: str, server: Server, options: UpscaleOptions) -> None:
    """Refuse, before it takes a place in the queue, what is not an image, too large, or has options that
    cannot be met (e.g. an unknown model): 422, or 413 for sizes over the limits."""
    if Path(name).suffix.lower() not in WRITE_FORMATS:
        raise _Refused(
            422,
            f"{name}: give a file named .png, .jpg, .webp, .bmp, .tif or .gif; the result comes "
            f"back in the same format",
        )
    try:
        w, h = image_size(path)
    except ImageError:
        raise _Refused(422, f"{name}: not an image, or a format that cannot be read") from None
    if server.max_pixels is not None and w * h > server.max_pixels:
        raise _Refused(413, f"{name}: {w}x{h} = {w * h:,} pixels is over the limit of {server.max_pixels:,}")
    runner = server.runner(options)  # an unknown model or a bad denoise is a SuperresError here
    out_h, out_w = runner.size.shape_for((h, w))
    if server.max_output_pixels is not None and out_w * out_h > server.max_output_pixels:
        raise _Refused(
            413,
            f"{name}: the output would be {out_w}x{out_h} = {out_w * out_h:,} pixels, over this server's limit "
            f"of {server.max_output_pixels:,}",
        )
    work = runner.work((h, w))
    if server.max_work is not None and work > server.max_work:
        ensemble = " with self-ensemble" if options.self_ensemble else ""
        raise _Refused(
            413,
            f"{name}: {w}x{h}{ensemble} is about {work / 1e12:.1f}e12 multiply-adds of network work, over this "
            f"server's limit of {server.max_work / 1e12:g}e12",
        )


def server_retry(server: Server) -> int:
    """Seconds a client should wait before retrying, from the queue's length (at least 1)."""
    return max(1, server.queue.queued())


def _same_origin(origin: str, scope: dict, host: str) -> bool:
    """Whether an Origin header is the page's own: this server's scheme (http; https behind a proxy that says
    so in the ASGI scope) and its Host."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    return parts.scheme.lower() == scope.get("scheme", "http") and parts.netloc.lower() == host


class _Guard:
    """ASGI middleware: the Host check (DNS rebinding) and the cross-site check, answered with 403 JSON."""

    def __init__(self, app: Starlette, hosts: set[str], any_host: bool) -> None:
        self.app, self.hosts, self.any_host = app, hosts, any_host
        self.state = app.state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "").lower()
        reason = None
        if not self.any_host and host not in self.hosts:
            reason = f"host '{host}' is not this server's address; refused (DNS rebinding protection)"
        elif scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            origin = headers.get("origin")
            cross = origin is not None and not _same_origin(origin, scope, host)
            if cross or headers.get("sec-fetch-site") == "cross-site":
                reason = "cross-site request refused"
        if reason is None:
            return await self.app(scope, receive, send)
        await error(403, reason)(scope, receive, send)
