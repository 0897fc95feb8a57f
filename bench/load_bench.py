"""Load the production server (gunicorn, 2 workers x 4 threads, DEBUG off) on loopback.

    .venv/bin/python bench/load_bench.py [--profiles 100000] [--seconds 15] [--rounds 2]
                                         [--clients 16,64] [--keep DIR] [--profile]
                                         [--pages index,changelist,change]

On a throwaway local cluster: migrate, demo data plus N profiles, a signed-in superuser,
collectstatic; then gunicorn with gunicorn.conf.py (WEB_CONCURRENCY=2, GUNICORN_THREADS=4,
DB_POOL_MAX_SIZE=4) and, per page and client count, keep-alive HTTP clients in threads
sending GETs for a fixed time: the admin index, the profiles changelist (50 rows) and a
profile's change form. Prints requests/s, p50, p99, errors, and the peak of the server's
database connections (pg_stat_activity, sampled) against the pools' maximum.

Each figure is measured twice in the same run, alternately, --rounds times (the median
is shown): as the project serves it ("ours") and as before this issue's render-path
changes ("baseline": ADMIN_FAST_ROWS = False, Django's own changelist rows and
queryset; ADMIN_NAV_MEMO = False, the sidebar rendered on every page; USE_I18N = True);
the ratio is ours/baseline. Also the servers' CPU time per request (from /proc), which
the machine's other load does not change.
--profile prints cProfile's top functions of the profiles changelist rendered
in-process instead.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import os
import pstats
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import data  # noqa: E402
from bench.data import log  # noqa: E402
from dbops.localdb import LocalCluster  # noqa: E402
from sqlmigrations.lib import processes  # noqa: E402

WORKERS, THREADS, POOL_MAX = 2, 4, 4
VARIANTS = ("baseline", "ours")
PAGES = {  # --pages name: (label, path)
    "index": ("admin index", "/admin/"),
    "changelist": ("profiles changelist", "/admin/accounts/userprofile/"),
    "change": ("profile change form", "/admin/accounts/userprofile/{profile}/change/"),
}
GUNICORN = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
SESSION_SCRIPT = """
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from accounts.models import UserProfile
User = get_user_model()
admin = User.objects.filter(username="bench").first() or User.objects.create_superuser(
    "bench", "bench@example.com", "bench-password-1")
session = SessionStore()
session[SESSION_KEY] = str(admin.pk)
session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
session[HASH_SESSION_KEY] = admin.get_session_auth_hash()
session.create()
print(session.session_key, UserProfile.objects.order_by("-created_at").first().pk)
"""


@dataclass
class Result:
    requests: int
    errors: int
    seconds: float
    latencies: list[float]
    peak_connections: int
    cpu_seconds: float  # gunicorn's processes, during the run

    @property
    def cpu_ms(self) -> float:
        return self.cpu_seconds * 1000 / max(self.requests, 1)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1]


def median_run(runs: list[Result]) -> Result:
    """The run with the median rate."""
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


def manage(env: dict[str, str], *args: str) -> str:
    out = processes.run(
        [sys.executable, str(REPO / "manage.py"), *args],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout


def prepare(cluster: LocalCluster, profiles: int) -> tuple[str, str]:
    """Demo data, N profiles, statistics; return a superuser's session and a profile's id."""
    env = data.environment(cluster)
    with data.owner_connection(cluster) as conn:
        if data.count(conn, "users") < profiles:
            manage(env, "demodata")
            started = time.perf_counter()
            with data.audit_off(conn):
                data.load_profiles(conn, profiles)
            data.finish(conn, started)
    session, profile = manage(env, "shell", "-c", SESSION_SCRIPT).split()[-2:]
    return session, profile


# The server before this render-path changes: Django's own changelist rows and
# queryset, the sidebar rendered on every page, translations on.
BASELINE_SETTINGS = (
    "from choregarden.settings import *  # noqa: F403\n"
    "ADMIN_FAST_ROWS = False\nADMIN_NAV_MEMO = False\nUSE_I18N = True\n"
)


def server_env(cluster: LocalCluster, static_root: Path, *, baseline: bool) -> dict[str, str]:
    settings_dir = static_root.parent / "settings"
    settings_dir.mkdir(parents=True, exist_ok=True)
    (settings_dir / "load_bench_baseline.py").write_text(BASELINE_SETTINGS)
    env = data.environment(cluster)
    return {
        **env,
        # Each server's connections are told apart in pg_stat_activity by their name.
        "DATABASE_URL": f"{env['DATABASE_URL']}?application_name={app_name(baseline)}",
        "DJANGO_SETTINGS_MODULE": "load_bench_baseline" if baseline else "choregarden.settings",
        "PYTHONPATH": os.pathsep.join([str(settings_dir), str(REPO)]),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DB_POOL": "true",
        "DB_POOL_MIN_SIZE": "2",
        "DB_POOL_MAX_SIZE": str(POOL_MAX),
        "WEB_CONCURRENCY": str(WORKERS),
        "GUNICORN_THREADS": str(THREADS),
        "STATIC_MANIFEST": "true",
        "STATIC_ROOT": str(static_root),
    }


def app_name(baseline: bool) -> str:
    return f"choregarden-bench-{'baseline' if baseline else 'ours'}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], log_file: Path) -> tuple[processes.Popen[bytes], int]:
    port = free_port()
    bind = f"127.0.0.1:{port}"
    with log_file.open("ab") as out:
        server = processes.popen(
            # No worker recycling: a recycled worker's CPU time would go uncounted.
            [*GUNICORN, "--bind", bind, "--max-requests", "0"],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=processes.STDOUT,
        )
    for _ in range(600):
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}; see {log_file}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server, port
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("gunicorn did not start within 60 s")


def stop_server(server: processes.Popen[bytes]) -> None:
    processes.stop(server)


def server_cpu(master: int) -> float:
    """CPU seconds used so far by gunicorn's master and its workers (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [master]
    for task in Path(f"/proc/{master}/task").iterdir():
        pids += [int(p) for p in (task / "children").read_text().split()]
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # a worker that just exited
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def sample_connections(
    cluster: LocalCluster, name: str, stop: threading.Event, peak: list[int]
) -> None:
    """Record the most connections one server's pools held at once, every 50 ms."""
    with data.owner_connection(cluster) as conn:
        while not stop.is_set():
            (count,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name]
            ).fetchone()
            peak[0] = max(peak[0], int(count))
            stop.wait(0.05)


def load(
    cluster: LocalCluster,
    server: tuple[str, int, int],
    session: str,
    path: str,
    clients: int,
    seconds: float,
) -> Result:
    """`clients` keep-alive clients GET `path` for `seconds`; every non-200 is an error."""
    name, port, pid = server
    headers = {"Cookie": f"sessionid={session}", "Host": "127.0.0.1"}
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[float] = []
        failed = 0
        start.wait()
        while time.perf_counter() < deadline[0]:
            began = time.perf_counter()
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                conn.close()
                ok = False
            mine.append(time.perf_counter() - began)
            failed += not ok
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=sample_connections, args=(cluster, name, stop, peak))
    threads = [threading.Thread(target=client) for _ in range(clients)]
    sampler.start()
    for t in threads:
        t.start()
    cpu_before = server_cpu(pid)
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    cpu = server_cpu(pid) - cpu_before
    stop.set()
    sampler.join()
    return Result(len(latencies), errors[0], elapsed, latencies, peak[0], cpu)


def profile_changelist(cluster: LocalCluster, static_root: Path, repeat: int = 30) -> None:
    """cProfile of the profiles changelist rendered in-process, as the server renders it."""
    os.environ.update(
        server_env(cluster, static_root, baseline=False), DB_POOL="false", LOG_LEVEL="WARNING"
    )
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(get_user_model().objects.get(username="bench"))
    path = "/admin/accounts/userprofile/"
    assert client.get(path).status_code == 200
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(repeat):
        client.get(path)
    profiler.disable()
    log(f"{(time.perf_counter() - started) / repeat * 1000:.1f} ms a request (profiled)")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--clients", default="16,64")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="Cluster folder to keep and reuse.")
    parser.add_argument(
        "--pages",
        default=",".join(PAGES),
        help=f"Which pages to load, of {','.join(PAGES)} (default: all).",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the changelist.")
    args = parser.parse_args(argv)
    levels = [int(n) for n in args.clients.split(",")]
    chosen = [p.strip() for p in args.pages.split(",") if p.strip()]
    if not chosen or any(p not in PAGES for p in chosen):
        parser.error(f"--pages: choose from {','.join(PAGES)}, e.g. --pages changelist")

    work = Path(tempfile.mkdtemp(prefix="choregarden-loadbench-"))
    static_root = work / "static"
    with data.migrated_cluster(args.keep, "choregarden-loadbench-") as cluster:
        session, profile = prepare(cluster, args.profiles)
        manage(server_env(cluster, static_root, baseline=False), "collectstatic", "--no-input")
        if args.profile:
            profile_changelist(cluster, static_root)
            return 0
        pages = {
            label: path.format(profile=profile)
            for key, (label, path) in PAGES.items()
            if key in chosen
        }
        servers = {}
        try:
            for variant in VARIANTS:
                env = server_env(cluster, static_root, baseline=variant == "baseline")
                servers[variant] = start_server(env, work / f"gunicorn-{variant}.log")
            targets = {
                v: (app_name(v == "baseline"), servers[v][1], servers[v][0].pid) for v in VARIANTS
            }
            runs: dict[tuple[str, str, int], list[Result]] = {}
            for label, path in pages.items():
                for variant in VARIANTS:  # warm-up: templates, pools
                    load(cluster, targets[variant], session, path, THREADS, 2.0)
                for clients in levels:
                    for _ in range(args.rounds):
                        for variant in VARIANTS:
                            target = targets[variant]
                            r = load(cluster, target, session, path, clients, args.seconds)
                            runs.setdefault((variant, label, clients), []).append(r)
                            log(
                                f"{variant:<8} {label:<20} {clients:>3} clients: "
                                f"{r.rate:6.1f} req/s, p99 {r.percentile(99):.2f} s"
                            )
        finally:
            for server, _ in servers.values():
                stop_server(server)
        results = {key: median_run(found) for key, found in runs.items()}
    shutil.rmtree(work, ignore_errors=True)

    print()
    print(
        f"gunicorn {WORKERS} workers x {THREADS} threads, DEBUG off, pools of {POOL_MAX} "
        f"(max {WORKERS * POOL_MAX} connections); {args.profiles:,} profiles; "
        f"{args.seconds:g} s per run, median of {args.rounds}"
    )
    print(
        f"{'page':<20} {'clients':>7} {'variant':>8} {'req/s':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'errors':>6} {'peak conns':>10} {'ours/base':>9}"
    )
    for label in pages:
        for clients in levels:
            base = results["baseline", label, clients]
            for variant in VARIANTS:
                r = results[variant, label, clients]
                ratio = f"{r.rate / base.rate:8.2f}x" if variant == "ours" else ""
                print(
                    f"{label:<20} {clients:>7} {variant:>8} {r.rate:>7.1f} "
                    f"{r.percentile(50) * 1000:>7.0f} {r.percentile(99) * 1000:>7.0f} "
                    f"{r.errors:>6} {r.peak_connections:>4} of {WORKERS * POOL_MAX:<3} {ratio:>9}"
                )
    print()
    print("server CPU per request (gunicorn's processes; the machine's other load does not count)")
    for label in pages:
        for clients in levels:
            base = results["baseline", label, clients].cpu_ms
            ours = results["ours", label, clients].cpu_ms
            print(
                f"{label:<20} {clients:>3} clients: baseline {base:6.1f} ms, "
                f"ours {ours:6.1f} ms, {base / ours:5.2f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
