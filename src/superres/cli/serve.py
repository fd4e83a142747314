"""`superres serve`: the local web page (superres.web) on uvicorn."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import webbrowser
from pathlib import Path

from superres.errors import SuperresError
from superres.web.limits import (
    DEFAULT_MAX_OUTPUT_PIXELS,
    DEFAULT_MAX_UPLOAD,
    DEFAULT_MAX_WORK,
    DEFAULT_UPLOAD_BUDGET,
    ConnectionLimits,
)

INSTALL_HINT = "the web page needs its extra: pip install 'superres[serve]'"
LIMITS = ConnectionLimits()  # the defaults


def add_serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="a local web page: drop images, compare with a slider, download")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST[:PORT]",
        help="another Host header to accept (e.g. a name this machine has on the network)",
    )
    mb = 2**20
    p.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_MAX_UPLOAD / mb,
        help=f"largest upload in MB (default {DEFAULT_MAX_UPLOAD / mb:g}); larger: 413",
    )
    p.add_argument(
        "--upload-budget-mb",
        type=float,
        default=DEFAULT_UPLOAD_BUDGET / mb,
        help="room for uploads in MB, those arriving and those waiting for the network together (default "
        f"{DEFAULT_UPLOAD_BUDGET / mb:g}); an upload that does not fit is answered 503 before its body is read",
    )
    p.add_argument("--max-pixels", type=int, default=None, help="largest input in pixels (default 200M); larger: 413")
    p.add_argument(
        "--max-output-pixels",
        type=int,
        default=DEFAULT_MAX_OUTPUT_PIXELS,
        help=f"largest output in pixels (default {DEFAULT_MAX_OUTPUT_PIXELS:,}); larger: 413. 0: no limit",
    )
    p.add_argument(
        "--max-work",
        type=float,
        default=DEFAULT_MAX_WORK / 1e12,
        help="largest estimated network work per image, in 10^12 multiply-adds (the network's parameters times "
        f"the input's pixels, times 8 with self-ensemble; default {DEFAULT_MAX_WORK / 1e12:g}, a 12 MP photo at "
        "x2 with the default model is about 6); more: 413. 0: no limit",
    )
    p.add_argument("--queue", type=int, default=8, help="jobs that may wait for the network (default 8); more get 503")
    p.add_argument(
        "--max-connections",
        type=int,
        default=LIMITS.max_connections,
        help=f"open connections at once (default {LIMITS.max_connections}, and below the limit on open files); "
        "past it the oldest "
        "idle one is closed, or a newcomer gets 503 if none is idle",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=LIMITS.header_timeout,
        help="seconds a connection has to send a request's headers, after opening or after an answer "
        f"(default {LIMITS.header_timeout:g})",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="FILE",
        help="a weights file of yours to offer on the page beside the bundled models, named by its file name "
        "without the extension (repeat for several)",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto")


def page_models(files: list[str]) -> dict[str, Path]:
    """The models the page offers beside the bundled ones: those registered with `superres models add`, and
    the files given to --model (named by their stems), each file checked by loading it once."""
    from superres.models import load_model  # noqa: PLC0415
    from superres.models.registry import PRETRAINED  # noqa: PLC0415
    from superres.models.user import user_models  # noqa: PLC0415

    models: dict[str, Path] = dict(user_models())  # (bundled and preset names excepted)
    for text in files:
        path = Path(text)
        name = path.stem
        if name in models or name in PRETRAINED:
            raise SuperresError(f"{path}: the page already has a model named '{name}'; rename the file")
        load_model(path)  # an unreadable or unknown file is a one-line error before the server starts
        models[name] = path
    return models


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn  # noqa: F401, PLC0415 - the extra's marker (the modules below may be imported already)

        from superres.web.app import Server, create_app  # noqa: PLC0415
        from superres.web.listener import Listener  # noqa: PLC0415
        from superres.web.upload import OVERHEAD_BYTES  # noqa: PLC0415
    except ImportError:
        raise SuperresError(INSTALL_HINT) from None
    from superres.imaging.io import DEFAULT_MAX_PIXELS  # noqa: PLC0415

    if args.queue < 1 or args.max_upload_mb <= 0 or args.max_connections < 1 or args.header_timeout <= 0:
        raise SuperresError("--queue and --max-connections must be >= 1, --max-upload-mb and --header-timeout > 0")
    if args.max_output_pixels < 0 or args.max_work < 0:
        raise SuperresError("--max-output-pixels and --max-work must be >= 0 (0: no limit)")
    if args.upload_budget_mb * 2**20 < args.max_upload_mb * 2**20 + OVERHEAD_BYTES:
        raise SuperresError("--upload-budget-mb must hold the largest upload (--max-upload-mb, and 64 KB of form)")
    models = page_models(args.model)
    try:  # bind first, so that a port in use is a one-line error; uvicorn then serves on this socket
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
    except OSError as e:
        raise SuperresError(f"cannot listen on {args.host}:{args.port} ({e.strerror or e})") from e
    port = sock.getsockname()[1]
    server = Server(
        models=models,
        device=args.device,
        precision=args.precision,
        max_upload=int(args.max_upload_mb * 2**20),
        max_pixels=args.max_pixels or DEFAULT_MAX_PIXELS,
        max_waiting=args.queue,
        upload_budget=int(args.upload_budget_mb * 2**20),
        max_output_pixels=args.max_output_pixels or None,
        max_work=args.max_work * 1e12 or None,
    )
    app = create_app(args.host, port, server, allowed_hosts=args.allow_host)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else shown}:{port}/"
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {args.host}: anyone who can reach this machine can use the page and its "
            f"CPU/GPU; there is no login",
            file=sys.stderr,
        )
    print(f"superres: serving on {url} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    if args.open:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    limits = ConnectionLimits(max_connections=args.max_connections, header_timeout=args.header_timeout)
    listener = Listener(app, server, limits)
    try:  # Ctrl-C or SIGTERM: jobs cancelled, a short graceful stop, then the signal again (KeyboardInterrupt)
        listener.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # from here on, another signal leaves at once
            signal.signal(sig, listener.exit_now)
        server.queue.close(timeout=0.5)  # (done already by the app's lifespan, unless that failed)
    print("superres: stopped", file=sys.stderr, flush=True)
    sys.stdout.flush()
    # Nothing is left to clean up. Leave now rather than through the interpreter's teardown: it takes a while
    # (torch, OpenVINO), a signal in it would end the process by default, and with the worker thread still
    # inside the network it would abort ("terminate called without an active exception").
    os._exit(0)
