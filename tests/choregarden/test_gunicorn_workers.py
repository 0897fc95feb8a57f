"""gunicorn's workers die with their master, as every process the project starts does."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

from dbops.localdb.cluster import free_port
from sqlmigrations.lib import processes
from tests.helpers import REPO, alive


def children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found |= {int(p) for p in text.split()}
    return found


def test_workers_die_when_the_master_is_killed_even_in_the_middle_of_a_request() -> None:
    port = free_port()
    gunicorn = Path(sys.executable).with_name("gunicorn")
    env = {**os.environ, "WEB_CONCURRENCY": "2", "GUNICORN_THREADS": "1"}
    master = processes.popen(
        [
            str(gunicorn),
            "-c",
            "gunicorn.conf.py",
            "--bind",
            f"127.0.0.1:{port}",
            "tests.hello_wsgi:app",
        ],
        cwd=REPO,
        env=env,
        stdout=processes.DEVNULL,
        stderr=processes.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    assert answer.read() == b"hello"
                workers = children(master.pid)
                if len(workers) == 2:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)

        # A worker busy with a request would finish it (up to the graceful timeout, 35 s)
        # before noticing that its master is gone.
        def slow() -> None:
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"http://127.0.0.1:{port}/slow", timeout=90).read()

        threading.Thread(target=slow, daemon=True).start()
        time.sleep(1)
        os.kill(master.pid, signal.SIGKILL)
        master.wait(timeout=10)

        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in workers), "workers outlived their master"
    finally:
        processes.stop(master)
