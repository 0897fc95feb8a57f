"""No lock shared across requests: one request blocked in the database stalls only itself.

The profiles changelist's count waits on a lock that another session holds on `users`;
meanwhile the tasks changelist (which never reads `users`) must be served by another
thread of the same process. functools.cached_property on Python 3.11 held one lock for
every paginator of the class while a count ran, and the second page waited for the first.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db(transaction=True)
PROFILES = reverse("admin:accounts_userprofile_changelist")
TASKS = reverse("admin:chores_task_changelist")


def get_as(user: Any, url: str, results: dict[str, Any]) -> None:
    client = Client()
    client.force_login(user)
    try:
        results[url] = client.get(url).status_code
    except Exception as err:  # noqa: BLE001 - the main thread reports it
        results[url] = err
    finally:
        connections.close_all()


def wait_for_lock_wait(conn: psycopg.Connection[Any], timeout: float = 30) -> None:
    """Return once a session of this database waits on a lock on `users`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.execute(
            "SELECT 1 FROM pg_locks WHERE NOT granted AND relation = 'users'::regclass"
        ).fetchone():
            return
        time.sleep(0.02)
    raise AssertionError("the profiles changelist never waited on the lock")


def test_a_changelist_blocked_in_the_database_does_not_stall_another(
    pg_server: Any, django_user_model: Any
) -> None:
    from django.conf import settings

    user = django_user_model.objects.create_superuser("ada", "ada@example.com", "pw-12345-x")
    name = settings.DATABASES["default"]["NAME"]
    results: dict[str, Any] = {}
    with (
        psycopg.connect(**pg_server.conninfo(name), autocommit=True) as watcher,
        psycopg.connect(**pg_server.conninfo(name)) as locker,
    ):
        locker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        blocked = threading.Thread(target=get_as, args=(user, PROFILES, results))
        blocked.start()
        try:
            wait_for_lock_wait(watcher)
            other = threading.Thread(target=get_as, args=(user, TASKS, results))
            other.start()
            other.join(timeout=30)
            assert results.get(TASKS) == 200, results
            # Served while the profiles page still waited, not after it gave up.
            assert blocked.is_alive() and PROFILES not in results
        finally:
            locker.rollback()
            blocked.join(timeout=60)
    assert results[PROFILES] == 200
