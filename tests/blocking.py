"""Kill a `manage.py` subprocess with SIGKILL while its statement waits on a lock.

The test holds a lock in an open transaction; the command's statement waits on it; the
command is killed; the lock is released, and the orphaned backend runs on until it finds
its client gone. What the database keeps then is what a real kill -9 leaves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

import psycopg

from tests.helpers import REPO
from tests.sqlproject import SqlProject


def start_manage(project: SqlProject, *args: str) -> subprocess.Popen[str]:
    project.sync_wrappers()
    return subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), *args],
        cwd=project.root,
        env=project.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_blocked(project: SqlProject, me: int, timeout: float = 60) -> int:
    """Return the pid of the backend of this database that waits on a lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = project.query(
            "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid "
            "WHERE a.datname = current_database() AND NOT l.granted AND a.pid <> %s",
            [me],
        )
        if rows:
            return int(rows[0][0])
        time.sleep(0.05)
    raise AssertionError("nothing waited on the lock")


def wait_until_gone(project: SqlProject, pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while project.query("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]):
        assert time.monotonic() < deadline, f"backend {pid} is still there"
        time.sleep(0.05)


def kill_while_blocked(project: SqlProject, blocker: psycopg.Connection[Any], *args: str) -> None:
    """Run `manage.py ARGS`, SIGKILL it once it waits on `blocker`'s lock, release the lock."""
    proc = start_manage(project, *args)
    try:
        backend = wait_until_blocked(project, blocker.info.backend_pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    blocker.rollback()  # the orphaned backend goes on, then finds its client gone
    wait_until_gone(project, backend)
