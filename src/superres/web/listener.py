"""The page's HTTP server: uvicorn, with the limits a server open to careless or hostile clients needs, and
a stop that does not wait for the work in hand.

- **Header deadline.** A connection must send a whole request head within `header_timeout` seconds of
  opening, or of the end of its previous answer, or it is closed. (uvicorn's keep-alive timeout covers only
  a connection that has sent nothing since its last answer; one that never sends a request, or sends its
  head a byte at a time, would otherwise be kept for ever.)
- **Write deadline.** A connection that does not read its answer (its writing stays paused) for `write_timeout`
  seconds is dropped, so that a client cannot hold requests in flight for ever by never reading.
- **Connection cap.** Past `max_connections` open connections, the oldest one with no request in flight (or,
  failing that, the oldest whose answer is stuck unread) is dropped to make room, so that a normal request is
  still answered while many idle ones are open; when every connection has a request in flight, the newcomer
  is answered 503 and closed. The cap is held below the
  process's limit on open files (less FD_RESERVE for uploads, models and logs), so that accepting a
  connection never fails for want of a descriptor; if it still does, one line is logged, not a traceback
  per attempt.
- Each kind of refusal is logged once, when it first happens, and counted; the counts are logged at the stop.
  uvicorn's own warning for a malformed request is counted the same way; websockets are off.
- **Stopping.** The first SIGINT or SIGTERM cancels every job at once (waiting clients are answered 503),
  lets answers in flight finish for up to `graceful` seconds, then removes the private folder; a second
  signal removes the folder and exits at once, with status 130.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import socket
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from superres.web.limits import BACKLOG, ConnectionLimits

if TYPE_CHECKING:
    from superres.web.app import Server

log = logging.getLogger(__name__)

LISTEN_QUEUE = 2048  # the kernel's queue of connections not yet accepted, set once serving (a burst that
# overflows it has its connection attempts dropped, and retried by the clients a second or more later)
OUT_OF_FILES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_BUSY = b'{"error": "busy: too many connections; try again shortly"}'
BUSY_ANSWER = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nretry-after: 1\r\nconnection: close\r\n\r\n%s" % (len(_BUSY), _BUSY)
)


class Refusals:
    """Connections refused or closed by the limits, counted by kind; the first of each kind is logged."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def add(self, kind: str, line: str) -> None:
        if not self.counts[kind]:
            log.warning("%s (logged once; the stop reports how many)", line)
        self.counts[kind] += 1

    def summary(self) -> str:
        return ", ".join(f"{n:,} {kind}" for kind, n in sorted(self.counts.items()))


class Guard:
    """The open connections, oldest first, and the limits they are held to."""

    def __init__(self, limits: ConnectionLimits, refusals: Refusals) -> None:
        self.limits, self.refusals = limits, refusals
        self.cap = limits.cap()
        self.open: dict[GuardedProtocol, None] = {}  # insertion order: the oldest first

    def admit(self, protocol: GuardedProtocol) -> bool:
        """Make room for a new connection (closing the oldest idle one if the cap is reached): whether it may stay."""
        if len(self.open) >= self.cap:
            idle = next((p for p in self.open if not p.busy), None)
            idle = idle or next((p for p in self.open if p.flow.write_paused), None)
            if idle is None:
                self.refusals.add("refused, every connection busy", f"{self.cap} connections, each with a "
                                  "request in flight: a new one was answered 503")  # fmt: skip
                return False
            self.refusals.add(
                "idle closed at the connection cap",
                f"{self.cap} connections open: the oldest idle one was closed to make room",
            )
            idle.drop()  # (and forgotten: its descriptor is given back at the loop's next step)
        self.open[protocol] = None
        return True

    def forget(self, protocol: GuardedProtocol) -> None:
        self.open.pop(protocol, None)


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol under a Guard: the header deadline, and the cap on connections."""

    def __init__(self, *args: Any, guard: Guard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        self.deadline: asyncio.TimerHandle | None = None
        self.stall: asyncio.TimerHandle | None = None

    @property
    def busy(self) -> bool:
        """Whether a request is in flight (its head has arrived and its answer is not finished)."""
        return self.cycle is not None and not self.cycle.response_complete

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[arg-type]
        if not self.guard.admit(self):
            transport.write(BUSY_ANSWER)  # type: ignore[attr-defined]
            transport.close()
            return
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._cancel_stall()
        self.guard.forget(self)
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.stall is None:
            self.stall = self.loop.call_later(self.guard.limits.write_timeout, self._answer_unread)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_stall()

    def handle_events(self) -> None:
        super().handle_events()
        if self.busy:
            self._cancel_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.busy:
            self._await_head()

    def drop(self) -> None:
        """Close the connection now, whatever it has left to send (abort: its buffer is not waited for)."""
        self._cancel_deadline()
        self._cancel_stall()
        self.guard.forget(self)
        self.transport.abort()

    def _await_head(self) -> None:
        self._cancel_deadline()
        self.deadline = self.loop.call_later(self.guard.limits.header_timeout, self._head_too_late)

    def _cancel_deadline(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _cancel_stall(self) -> None:
        if self.stall is not None:
            self.stall.cancel()
            self.stall = None

    def _answer_unread(self) -> None:
        self.stall = None
        self.guard.refusals.add(
            "dropped for not reading its answer",
            f"a connection read none of its answer for {self.guard.limits.write_timeout:g} s: dropped",
        )
        self.drop()

    def _head_too_late(self) -> None:
        self.deadline = None
        if not self.busy and not self.transport.is_closing():
            self.guard.refusals.add(
                "closed for no request head in time",
                f"a connection sent no whole request head within {self.guard.limits.header_timeout:g} s: closed",
            )
            self.drop()


class Listener(uvicorn.Server):
    """uvicorn's server for the page's app (superres.web.app.create_app), with the Guard's protocol, the
    stop described above, and accept errors as one line."""

    def __init__(self, app: Any, server: Server, limits: ConnectionLimits | None = None) -> None:
        limits = limits or ConnectionLimits()
        self.refusals = Refusals()
        self.guard = Guard(limits, self.refusals)
        protocol = functools.partial(GuardedProtocol, guard=self.guard)
        config = uvicorn.Config(
            app,
            http=cast(Any, protocol),
            ws="none",
            log_level="warning",
            lifespan="on",
            timeout_keep_alive=max(1, round(limits.keep_alive)),
            timeout_graceful_shutdown=max(1, round(limits.graceful)),
            backlog=BACKLOG,
        )
        super().__init__(config)
        self.app_server = server
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for sock in sockets or []:  # asyncio listened with BACKLOG; the kernel may hold more than it takes at once
            sock.listen(LISTEN_QUEUE)

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.loop.set_exception_handler(self._loop_error)
        if self.guard.cap < self.guard.limits.max_connections:
            log.warning(
                "at most %d connections at once: the limit on open files leaves room for no more",
                self.guard.cap,
            )
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.addFilter(self._count_invalid_requests)
        try:
            await super().serve(sockets)
        finally:
            uvicorn_log.removeFilter(self._count_invalid_requests)
            if self.refusals.counts:
                log.warning("connections refused or closed by the limits: %s", self.refusals.summary())

    def handle_exit(self, sig: int, frame: Any) -> None:
        """A signal (in the main thread, between two steps of the loop): the first stops, the second exits."""
        if self.should_exit:
            self.exit_now(sig, frame)
        if self.loop is not None:  # in the loop, not here: the queue's lock may be held by the code interrupted
            self.loop.call_soon_threadsafe(self.app_server.queue.stop)
        super().handle_exit(sig, frame)

    def exit_now(self, sig: int = 0, frame: Any = None) -> None:
        """Remove the private folder and exit with status 130, at once (a signal handler, for the second
        signal; and for any signal once the server has stopped serving and the process is on its way out).
        It writes with os.write: sys.stderr may be in the middle of a write the signal interrupted."""
        self.app_server.queue.remove_folder()
        os.write(2, b"superres: stopped at once (second signal); its temporary folder is removed\n")
        os._exit(130)

    def _count_invalid_requests(self, record: logging.LogRecord) -> bool:
        """uvicorn's warning for each malformed request, counted as a refusal instead (one line in all)."""
        if record.getMessage() == "Invalid HTTP request received.":
            self.refusals.add("invalid HTTP", "a request that is not valid HTTP was answered 400")
            return False
        return True

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, OSError) and error.errno in OUT_OF_FILES:
            self.refusals.add("accept failed, out of files", f"cannot accept a connection: {error.strerror}")
            return
        loop.default_exception_handler(context)
