"""Argument types for the commands: a bad value is a usage error (exit 2) before any work.

argparse calls a type with the text given and reports an ArgumentTypeError as
`manage.py CMD: error: argument --days: must be between 1 and 366`, after the usage line,
with exit status 2, before the command connects to anything.
"""

from __future__ import annotations

import re
from argparse import ArgumentTypeError
from collections.abc import Callable
from datetime import date

_RATE = re.compile(r"^(\d+)([KMG]?)$", re.I)
_MONTH = re.compile(r"(\d{4})-(\d{2})", re.ASCII)


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """Return a type for a whole number from `minimum` to `maximum` (no upper bound if None)."""
    limits = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ArgumentTypeError(f"{text!r} is not a whole number {limits}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise ArgumentTypeError(f"{value} is not {limits}")
        return value

    parse.__name__ = "whole number"  # argparse names the type in some messages
    return parse


def month(text: str) -> date:
    """Parse YYYY-MM into the first day of that month."""
    match = _MONTH.fullmatch(text)
    try:
        if match is None:
            raise ValueError
        return date(int(match[1]), int(match[2]), 1)
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not a month: use YYYY-MM, e.g. 2026-01") from None


def rate(text: str) -> int:
    """Parse a rate in bytes per second, with an optional K, M or G suffix (20M)."""
    match = _RATE.match(text.strip())
    if not match or int(match[1]) == 0:
        raise ArgumentTypeError(f"{text!r} is not a rate: use bytes per second, e.g. 20M")
    return int(match[1]) * 1024 ** " KMG".index(match[2].upper() or " ")
