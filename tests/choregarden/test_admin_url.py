"""ADMIN_URL moves the admin; a value that is not a plain path is refused at start-up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import quote

import pytest
from django.contrib import admin
from django.urls import URLResolver, path
from django.urls.resolvers import RegexPattern
from hypothesis import given
from hypothesis import strategies as st

from choregarden.settings import ADMIN_URL_SEGMENTS
from tests.helpers import REPO


def run_requests(steps: list[dict[str, object]], **env: str) -> subprocess.CompletedProcess[str]:
    """Send `steps` through tests.choregarden.proxyhop in a process with `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "ADMIN_"))}
    return subprocess.run(
        [sys.executable, "-c", "from tests.choregarden.proxyhop import main; main()"],
        cwd=REPO,
        env={**base, "DJANGO_ENV": "test", "DJANGO_SETTINGS_MODULE": "choregarden.settings", **env},
        input=json.dumps(steps),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_admin_moves_to_admin_url() -> None:
    steps = [{"path": p, "peer": "127.0.0.1"} for p in ("/staff-7f3c/login/", "/admin/", "/")]
    proc = run_requests(steps, ADMIN_URL="staff-7f3c/")
    assert proc.returncode == 0, proc.stderr
    moved, old, root = json.loads(proc.stdout)
    assert moved["status"] == 200
    assert old["status"] == 404
    assert (root["status"], root["location"]) == (302, "/staff-7f3c/")


@pytest.mark.parametrize("value", ["/admin/", "admin", "", "a b/", "../", "x//", "é/", "a/%2e/"])
def test_a_value_that_is_not_a_plain_path_is_refused(value: str) -> None:
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO,
        env={**os.environ, "DJANGO_ENV": "test", "ADMIN_URL": value},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: ADMIN_URL={value!r} is not a path")
    assert len(proc.stderr.splitlines()) == 1


@given(st.text(max_size=30))
def test_every_accepted_value_is_a_path_the_admin_answers_at(value: str) -> None:
    if not ADMIN_URL_SEGMENTS.fullmatch(value):
        return
    assert quote(value, safe="/") == value
    assert not value.startswith("/")
    resolver = URLResolver(RegexPattern(r"^/"), [path(value, admin.site.urls)])
    assert resolver.resolve(f"/{value}").url_name == "index"
    assert resolver.resolve(f"/{value}login/").url_name == "login"
