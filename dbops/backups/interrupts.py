"""SIGTERM as Ctrl-C, for the commands that must clean up what they made when stopped."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (a cancelled pipeline job, a stopped container or cron job) as Ctrl-C,
    so the `finally` that drops a scratch database or deletes a drill instance still runs.

    Only the main thread may set a signal handler; elsewhere this does nothing.
    """

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
