"""Progress of long dumps, uploads and restores on stderr: bytes, rate, elapsed time."""

from __future__ import annotations

import time
from typing import TextIO

UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_size(size: float) -> str:
    for unit in UNITS:
        if abs(size) < 1024 or unit == UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


class Progress:
    """Redraws one line on a terminal; on a pipe or log, prints a line every few seconds."""

    def __init__(
        self, label: str, stream: TextIO | None, total: int | None = None, tty: bool = False
    ) -> None:
        self.label = label
        self.stream = stream
        self.total = total
        self.tty = tty
        self.done = 0
        self.started = time.monotonic()
        self._last = 0.0
        self._every = 0.5 if tty else 5.0

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.done / elapsed
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        return f"{self.label}: {human_size(self.done)}{share}, {human_size(rate)}/s, {elapsed:.0f}s"

    def update(self, nbytes: int) -> None:
        self.done += nbytes
        if self.stream is None:
            return
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self._write()

    def _write(self, final: bool = False) -> None:
        assert self.stream is not None
        if self.tty:
            self.stream.write("\r\x1b[K" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.stream is not None:
            self._write(final=True)
