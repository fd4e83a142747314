"""The server's limits and their defaults, apart from the server so that the CLI can state them without the
`serve` extra installed: per request (web.app.Server) and per connection (web.listener.Listener)."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_UPLOAD = 64 * 2**20
DEFAULT_UPLOAD_BUDGET = 512 * 2**20  # uploads arriving or stored for a job, together
DEFAULT_MAX_OUTPUT_PIXELS = 64_000_000  # e.g. 8000x8000, or a 12 MP photo at x2
DEFAULT_MAX_WORK = 50e12  # network multiply-adds per image (ImageUpscaler.work): a 12 MP photo at x2 with the
# default network is about 6e12, with its 8-pass self-ensemble 48e12

FD_RESERVE = 128  # descriptors kept out of the connection cap: uploads being written, models, logs, pipes
BACKLOG = 128  # the most connections asyncio accepts in one step (its `backlog`): those closed to make room give
# their descriptors back only at the next step, so the cap leaves room for them too


@dataclass(frozen=True)
class ConnectionLimits:
    """max_connections: open connections at once (held below the file limit, see `cap`); header_timeout:
    seconds for a request head to arrive; keep_alive: seconds an idle connection is kept after an answer
    (uvicorn's timeout_keep_alive); graceful: seconds the stop waits for answers in flight; write_timeout:
    seconds a connection may leave its answer unread."""

    max_connections: int = 256
    header_timeout: float = 10.0
    keep_alive: float = 5.0
    graceful: float = 1.0
    write_timeout: float = 30.0

    def cap(self) -> int:
        """max_connections, or less where the process may not open that many files besides FD_RESERVE and
        a BACKLOG of connections accepted at once (on Windows, which has no such limit: max_connections)."""
        try:
            import resource  # noqa: PLC0415 - POSIX only
        except ImportError:
            return self.max_connections
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(1, min(self.max_connections, soft - FD_RESERVE - BACKLOG))
