"""Requests as a TLS-ending load balancer forwards them, run in a `manage.py`-like process.

`python -c "from tests.choregarden.proxyhop import main; main()"` reads a JSON list of
requests on stdin, sends each through Django's test client with one cookie jar (as one
browser would), and prints each answer's status, redirect and cookie flags as JSON. The
test that starts it picks the environment (production settings, the test database).
"""

from __future__ import annotations

import json
import sys
from typing import Any


def cookie_flags(response: Any) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "secure": bool(morsel["secure"]),
            "httponly": bool(morsel["httponly"]),
            "samesite": morsel["samesite"],
        }
        for name, morsel in response.cookies.items()
    }


def main() -> None:
    import django

    django.setup()
    from django.test import Client

    client = Client()
    answers = []
    for step in json.load(sys.stdin):
        response = client.generic(
            step.get("method", "GET"),
            step["path"],
            data=step.get("body", ""),
            content_type="application/x-www-form-urlencoded",
            headers=step.get("headers", {}),
            REMOTE_ADDR=step["peer"],
            HTTP_HOST=step.get("host", "localhost"),
        )
        answers.append(
            {
                "status": response.status_code,
                "location": response.get("Location", ""),
                "cookies": cookie_flags(response),
                "headers": dict(response.headers),
                "content": response.content.decode(errors="replace"),
            }
        )
    print(json.dumps(answers))
