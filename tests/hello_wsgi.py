"""A WSGI app with no Django, for tests of the server's own behaviour (gunicorn.conf.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/slow":  # a request still running when it matters
        time.sleep(60)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
