"""Render Django's DEBUG error pages in a fresh process, with the settings its environment makes.

Run `python -m tests.dbops.web.error_page_probe` with DJANGO_SETTINGS_MODULE and the database
variables set; stdin holds a JSON object, whose optional "secret" (the RDS JSON) is stored
first in moto's Secrets Manager under DB_SECRET_ID. Two requests fail, as they would under
`runserver` (whose requests carry the process environment in request.META): an admin
sign-in while the database is down, and a view whose local variables hold the password.
With "every_page", also every other error page (400, 403, 404, 500, CSRF), DEBUG on and off.
Prints a JSON object with the status, HTML and text page of each; the log goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import ExitStack
from typing import Any

SIGN_IN_PASSWORD = "Sign-in pw <&'\" MARKER-04"
QUERY_TOKEN = "Query-MARKER-05"


def render(client: Any, method: str, url: str, accept: str, **data: Any) -> dict[str, Any]:
    response = getattr(client, method)(url, data, HTTP_ACCEPT=accept, **dict(os.environ))
    return {"status": response.status_code, "body": response.content.decode()}


def every_error_page(settings: Any) -> dict[str, dict[str, Any]]:
    """Each error page Django renders (400, 403, 404, 500, CSRF), with DEBUG on and off."""
    from django.test import Client

    client = Client(raise_request_exception=False)
    csrf_client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    pages = {}
    debug = settings.DEBUG
    try:
        for debug_on in (True, False):
            settings.DEBUG = debug_on
            mode = "debug" if debug_on else "production"
            for path in ("bad", "denied", "missing", "boom", "no-such-page"):
                pages[f"{path}_{mode}"] = render(
                    client, "get", f"/{path}/", "text/html", token=QUERY_TOKEN
                )
            pages[f"csrf_{mode}"] = render(
                csrf_client, "post", "/post/", "text/html", token=QUERY_TOKEN
            )
    finally:
        settings.DEBUG = debug
    return pages


def main() -> None:
    config = json.loads(sys.stdin.read() or "{}")
    with ExitStack() as stack:
        if config.get("secret"):
            import boto3
            from moto import mock_aws

            stack.enter_context(mock_aws())
            boto3.client("secretsmanager", region_name=os.environ["AWS_REGION"]).create_secret(
                Name=os.environ["DB_SECRET_ID"], SecretString=config["secret"]
            )
        import django

        django.setup()
        from django.conf import settings
        from django.test import Client

        settings.ROOT_URLCONF = "tests.dbops.web.error_page_urls"
        client = Client(raise_request_exception=False)
        sign_in = {"username": "alice", "password": SIGN_IN_PASSWORD}
        pages = {}
        for kind, accept in (("html", "text/html"), ("text", "text/plain")):
            pages[f"sign_in_{kind}"] = render(client, "post", "/admin/login/", accept, **sign_in)
            pages[f"boom_{kind}"] = render(client, "get", "/boom/", accept, token=QUERY_TOKEN)
        if config.get("every_page"):
            pages.update(every_error_page(settings))
        print(json.dumps(pages))


if __name__ == "__main__":
    main()
