"""Benchmark Django's native connection pool against a new connection per request (D5).

    .venv/bin/python bench/pool_bench.py [--requests 1500] [--concurrency 8] [--repeat 3]

On a throwaway local cluster (SSL verify-full, SCRAM passwords, as in production): migrate,
add 50 staff users, then serve the project with Django's threaded WSGI server (`runserver
--noreload`, real request_started/finished signals, so CONN_MAX_AGE=0 really closes each
connection) and send a typical admin read, the users changelist as a signed-in superuser,
from --concurrency keep-alive clients. Two servers, alternately, --repeat times each:
  pool:    DB_POOL=true (min 4, max --concurrency), connections reused across requests;
  no pool: DB_POOL=false, CONN_MAX_AGE=0: a TCP + TLS handshake and a SCRAM login per request.
Prints the median requests per second of each and the ratio.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.data import log  # noqa: E402
from dbops.localdb import LocalCluster  # noqa: E402

PAGES = {
    "admin changelist": ("/admin/auth/user/", b"staff49"),
    "small read (5 rows, JSON)": ("/bench/users/", b"staff3"),
}
SETTINGS = (
    "from choregarden.settings import *  # noqa: F403\nROOT_URLCONF = 'bench.pool_bench_urls'\n"
)


def environment(cluster: LocalCluster, *, pool: bool, size: int) -> dict[str, str]:
    settings_dir = cluster.requested_dir / "settings"
    settings_dir.mkdir(exist_ok=True)
    (settings_dir / "pool_bench_settings.py").write_text(SETTINGS)
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pool_bench_settings",
        "PYTHONPATH": os.pathsep.join([str(settings_dir), str(REPO)]),
        "DJANGO_ENV": "test",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": cluster.url("app"),
        "MIGRATION_DATABASE_URL": cluster.url("owner"),
        "DB_SSLMODE": "verify-full",
        "DB_SSLROOTCERT": str(cluster.ca_file),
        "DB_POOL": "true" if pool else "false",
        "DB_POOL_MIN_SIZE": str(min(4, size)),
        "DB_POOL_MAX_SIZE": str(size),
    }


def prepare(cluster: LocalCluster) -> str:
    """Migrate, add staff users and return a signed-in superuser's session cookie."""
    env = environment(cluster, pool=False, size=1)
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "--no-input", "-v0"], env=env, check=True, cwd=REPO)
    script = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
User = get_user_model()
admin = User.objects.create_superuser("bench", "bench@example.com", "bench-password-1")
User.objects.bulk_create(
    User(username=f"staff{i}", email=f"staff{i}@example.com", is_staff=True) for i in range(50)
)
session = SessionStore()
session[SESSION_KEY] = str(admin.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = admin.get_session_auth_hash()
session.create()
print(session.session_key)
"""
    out = subprocess.run(
        [*manage, "shell", "-c", script],
        env=env,
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(cluster: LocalCluster, *, pool: bool, size: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "manage.py"),
            "runserver",
            f"127.0.0.1:{port}",
            "--noreload",
            "--skip-checks",
        ],
        env=environment(cluster, pool=pool, size=size),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the server did not start")


def load(port: int, session: str, page: str, requests: int, concurrency: int) -> float:
    """Send `requests` GETs of a page from `concurrency` keep-alive clients; return req/s."""
    path, marker = PAGES[page]
    remaining = [requests]
    lock = threading.Lock()
    errors: list[str] = []

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Cookie": f"sessionid={session}", "Host": "127.0.0.1"}
        while True:
            with lock:
                if remaining[0] <= 0:
                    break
                remaining[0] -= 1
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or marker not in body:
                errors.append(f"HTTP {response.status}")
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, e.g. {errors[0]}")
    return requests / elapsed


def connect_cost(cluster: LocalCluster, repeat: int = 20) -> float:
    """Median milliseconds for one new connection (TCP, TLS, SCRAM) and a first query."""
    import psycopg

    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        with psycopg.connect(**cluster.conninfo("app")) as conn:
            conn.execute("SELECT 1")
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="choregarden-poolbench-"))
    cluster = LocalCluster(base, database="poolbench")
    try:
        log("starting a throwaway cluster")
        cluster.start()
        session = prepare(cluster)
        modes = ("pool", "no pool")
        rates: dict[tuple[str, str], list[float]] = {(p, m): [] for p in PAGES for m in modes}
        for round_ in range(1, args.repeat + 1):
            for mode in modes:
                server, port = serve(cluster, pool=mode == "pool", size=args.concurrency)
                try:
                    for page in PAGES:
                        load(port, session, page, 50, args.concurrency)  # warm-up
                        rate = load(port, session, page, args.requests, args.concurrency)
                        rates[page, mode].append(rate)
                        log(f"round {round_}: {mode:<7} {page:<26} {rate:8.1f} req/s")
                finally:
                    server.terminate()
                    server.wait(30)
        cost = connect_cost(cluster)
        print()
        print(
            f"{args.requests} requests per figure, {args.concurrency} concurrent keep-alive "
            f"clients, signed-in superuser, median of {args.repeat} rounds; pool min 4, "
            f"max {args.concurrency}; no pool = CONN_MAX_AGE=0, a new connection per request."
        )
        print(f"{'page':<28}{'pool req/s':>12}{'no pool req/s':>15}{'ratio':>9}")
        for page, (path, _marker) in PAGES.items():
            pool = statistics.median(rates[page, "pool"])
            direct = statistics.median(rates[page, "no pool"])
            print(f"{page:<28}{pool:>12.1f}{direct:>15.1f}{pool / direct:>8.2f}x   GET {path}")
        print(f"one new connection (TCP + TLS verify-full + SCRAM + SELECT 1): {cost:.1f} ms")
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
