"""Small helpers for the reader, network and writer threads of batch and video runs: a thread whose
exception the caller raises, and queue calls that give up when the run is stopped."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

END = object()  # put by a producer after its last item; returned by get() when the run stops


class Worker:
    """A daemon thread running `job`; its exception is kept in .error for the caller to raise."""

    def __init__(self, job: Callable[[], None], name: str) -> None:
        self.error: BaseException | None = None

        def run() -> None:
            try:
                job()
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                self.error = e

        self.thread = threading.Thread(target=run, name=name, daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread.is_alive()

    def join(self) -> None:
        """Wait for the thread, and raise its exception if it had one."""
        self.thread.join()
        if self.error is not None:
            raise self.error


def put(q: queue.Queue, item: Any, stop: threading.Event, consumer_alive: Callable[[], bool] = lambda: True) -> bool:
    """Put `item`, waiting for room unless the run stops or the consumer goes first. Returns whether it was put."""
    while not stop.is_set() and consumer_alive():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def get(q: queue.Queue, stop: threading.Event, producer_alive: Callable[[], bool] = lambda: True) -> Any:
    """The next item; END once the run stops, or once the producer has gone and the queue is empty."""
    while not stop.is_set():
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if not producer_alive():
                try:
                    return q.get_nowait()
                except queue.Empty:
                    return END
    return END
