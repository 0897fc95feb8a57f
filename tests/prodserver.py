"""The production server (gunicorn with gunicorn.conf.py) on the test database, for tests.

`production_env` is the environment a deploy would give it, on the test cluster; `serve`
runs `collectstatic` into a temporary STATIC_ROOT, starts gunicorn on a free loopback port
(sqlmigrations.lib.processes: it dies with the test process), waits for /healthz and stops it after.
"""

from __future__ import annotations

import http.client
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dbops.localdb.cluster import free_port
from sqlmigrations.lib import processes

REPO = Path(__file__).resolve().parents[1]
START_SECONDS = 60


def production_env(manage_env: dict[str, str], static_root: Path) -> dict[str, str]:
    """The test database's settings as production would serve them: DEBUG off, manifest on.

    Django's own pool, unless the application's connection goes through a pooler
    (TEST_DB_POOLER: manage_env sets DB_POOLER), which pools instead.
    """
    pool = (
        {}
        if manage_env.get("DB_POOLER")
        else {"DB_POOL": "true", "DB_POOL_MIN_SIZE": "1", "DB_POOL_MAX_SIZE": "2"}
    )
    return {
        **manage_env,
        **pool,
        "DEBUG": "false",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "2",
        "ALLOWED_HOSTS": "127.0.0.1",
        "STATIC_MANIFEST": "true",
        "STATIC_ROOT": str(static_root),
    }


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), response.headers
    finally:
        conn.close()


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[int]:
    """collectstatic, then gunicorn -c gunicorn.conf.py; yield its port, stop it after."""
    python = sys.executable
    processes.run(
        [python, "manage.py", "collectstatic", "--no-input", "-v0"],
        env=env,
        cwd=REPO,
        check=True,
        timeout=120,
    )
    port = free_port()
    with log.open("wb") as out:
        server = processes.popen(
            [python, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=processes.STDOUT,
        )
    try:
        started = time.monotonic()
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {server.returncode}:\n{log.read_text()}")
            try:
                if get(port, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() - started > START_SECONDS:
                raise RuntimeError(f"gunicorn did not answer in {START_SECONDS} s")
            time.sleep(0.2)
        yield port
    finally:
        processes.stop(server)
