"""`superres serve`: the local web page (superres.web) on uvicorn."""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import webbrowser
from pathlib import Path

from superres.errors import SuperresError

INSTALL_HINT = "the web page needs its extra: pip install 'superres[serve]'"


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
    p.add_argument("--max-upload-mb", type=float, default=64, help="largest upload in MB (default 64)")
    p.add_argument("--max-pixels", type=int, default=None, help="largest input in pixels (default 200M)")
    p.add_argument("--queue", type=int, default=8, help="jobs that may wait for the network (default 8); more get 503")
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
        import uvicorn  # noqa: PLC0415

        from superres.web.app import Server, create_app  # noqa: PLC0415
    except ImportError:
        raise SuperresError(INSTALL_HINT) from None
    from superres.imaging.io import DEFAULT_MAX_PIXELS  # noqa: PLC0415

    if args.queue < 1 or args.max_upload_mb <= 0:
        raise SuperresError("--queue must be >= 1 and --max-upload-mb > 0")
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
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    try:
        uvicorn.Server(config).run(sockets=[sock])  # Ctrl-C or SIGTERM: a graceful stop, then the signal again
    except KeyboardInterrupt:
        pass
    print("superres: stopped", file=sys.stderr)
    return 0
