"""Benchmark `manage.py backup create` against a plain `pg_dump -Fc -f FILE` (issue 7, item 1).

    .venv/bin/python bench/backup_bench.py [--rows 3000000] [--repeat 3]

In one run, on a throwaway local SSL cluster (never the machine's own server): build a
database of a few hundred MB with generate_series, then time the baseline
`pg_dump -Fc -f file` and our `manage.py backup create` to a folder (a real process, Python
and Django start-up included; pg_dump writes the partial file, then sha256, rename and
manifest), rotating the order each round. Also timed, for information: the start-up alone
(`manage.py backup --help`) and `backup create --fingerprint` (hashes every table in the
dump's snapshot). Each figure is the median of --repeat runs, wall clock; client CPU is
that of the process and its children (pg_dump), not the server's. Goal: ratio <= 1.1.

Then (issue 18) the restore of one such backup into a fresh database: plain
`CREATE DATABASE` + `pg_restore -j N --no-owner -d DB FILE` against our
`manage.py backup restore NAME --database DB` (sha256 read through, table of contents,
create, pg_restore -j N, rename), the same N for both (BACKUP_RESTORE_JOBS), in the same
run, orders rotated. Goal: ratio <= 1.1. `--part dump` or `--part restore` runs one half.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dbops.backups.progress import human_size  # noqa: E402
from dbops.localdb import LocalCluster  # noqa: E402
from dbops.localdb.binaries import find_bindir  # noqa: E402

GOAL = 1.1
DATABASE = "backup_bench"

BUILD = """
CREATE TABLE completions (
    id bigint PRIMARY KEY, task_id bigint NOT NULL, member_id bigint NOT NULL,
    completed_at timestamptz NOT NULL, points integer NOT NULL, note text, photo_key text
);
INSERT INTO completions
SELECT i, i % 50000, i % 3000, timestamptz '2024-01-01' + i * interval '7 seconds',
       i % 20, CASE WHEN i % 3 = 0 THEN 'done ' || md5(i::text) END,
       CASE WHEN i % 5 = 0 THEN 'photos/' || md5((i * 7)::text) || '.jpg' END
FROM generate_series(1, {rows}) AS i;
CREATE INDEX completions_task_idx ON completions (task_id, completed_at);
CREATE TABLE audit_log (id bigint PRIMARY KEY, at timestamptz NOT NULL, payload jsonb);
INSERT INTO audit_log
SELECT i, timestamptz '2024-01-01' + i * interval '13 seconds',
       jsonb_build_object('actor', i % 3000, 'action', 'update', 'digest', md5(i::text))
FROM generate_series(1, {rows} / 3) AS i;
ANALYZE;
"""


Variant = tuple[list[str], dict[str, str]] | Callable[[], object]


def in_process(cluster: LocalCluster, folder: Path) -> Callable[[], object]:
    """Our backup without the interpreter and Django start-up: the library call alone."""
    os.environ.update(DJANGO_SETTINGS_MODULE="choregarden.settings", DJANGO_ENV="development")
    os.environ.setdefault("DATABASE_URL", cluster.url("owner", DATABASE))
    import django

    django.setup()
    from django.core.files.storage import FileSystemStorage

    from dbops.backups.dump import create_backup

    source = cluster.conninfo("owner", DATABASE)
    return lambda: create_backup(source, FileSystemStorage(location=folder), "bench")


def timed(variant: Variant) -> tuple[float, float]:
    """Run a command or a call; return (wall seconds, CPU seconds of us and children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if callable(variant):
        variant()
    else:
        argv, env = variant
        proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{argv[0]} failed: {proc.stderr.strip()}")
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    cpu = sum(
        (a.ru_utime - b.ru_utime) + (a.ru_stime - b.ru_stime)
        for a, b in zip(after, before, strict=True)
    )
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--part", choices=["dump", "restore", "both"], default="both")
    parser.add_argument(
        "--no-fingerprint",
        dest="fingerprint",
        action="store_false",
        help="Skip the informational `backup create --fingerprint` timing.",
    )
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="choregarden-backup-bench-"))
    cluster = LocalCluster(base / "cluster", database=DATABASE)
    out = base / "out"
    out.mkdir()
    try:
        cluster.start()
        owner = cluster.conninfo("owner")
        started = time.perf_counter()
        with psycopg.connect(**owner, autocommit=True) as conn:
            conn.execute(BUILD.format(rows=args.rows))
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        print(
            f"database: {human_size(size)} ({args.rows:,} + {args.rows // 3:,} rows), "
            f"built in {time.perf_counter() - started:.0f}s"
        )

        client_env = dict(
            os.environ,
            PGPASSWORD=str(owner["password"]),
            PGSSLMODE="verify-full",
            PGSSLROOTCERT=str(cluster.ca_file),
        )
        pg_dump = [
            str(find_bindir() / "pg_dump"), "-Fc", "-h", str(owner["host"]),
            "-p", str(owner["port"]), "-U", str(owner["user"]), "-d", DATABASE,
        ]  # fmt: skip
        ours_env = dict(
            os.environ,
            DJANGO_ENV="development",
            DATABASE_URL=cluster.url("owner", DATABASE),
            DB_SSLMODE="verify-full",
            DB_SSLROOTCERT=str(cluster.ca_file),
            DB_POOL="false",
            BACKUP_DIR=str(out / "ours"),
        )
        ours_env.pop("MIGRATION_DATABASE_URL", None)
        for name in ("BACKUP_BUCKET", "BACKUP_REPLICA_BUCKET", "BACKUP_REPLICA_REGION",
                     "BACKUP_REPLICA_DIR", "BACKUP_RESTORE_JOBS"):  # fmt: skip
            ours_env.pop(name, None)
        ours = [sys.executable, str(REPO / "manage.py"), "backup", "create"]

        if args.part in ("dump", "both"):
            bench_dump(args, cluster, client_env, pg_dump, ours, ours_env, out)
        if args.part in ("restore", "both"):
            bench_restore(args, cluster, client_env, ours_env, out)
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


def report(names: list[str], wall: dict[str, list[float]], cpu: dict[str, list[float]],
           sizes: dict[str, int], repeat: int, what: str) -> None:  # fmt: skip
    """Print the medians, their ratios to the first variant, and the goal."""
    baseline = statistics.median(wall[names[0]])
    fastest = min(wall[names[0]])
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print(
        f"{'':32} {'median':>8} {'ratio':>7} {'fastest':>8} {'ratio':>7} {'client CPU':>11}  size"
    )
    for name in names:
        median, best = statistics.median(wall[name]), min(wall[name])
        size_text = human_size(sizes[name]) if name in sizes else ""
        print(
            f"{name:32} {median:7.2f}s {median / baseline:6.3f}x {best:7.2f}s "
            f"{best / fastest:6.3f}x {statistics.median(cpu[name]):10.2f}s  {size_text}"
        )
    ratio = statistics.median(wall[names[1]]) / baseline
    print(
        f"ratio {what} (medians of {repeat}): {ratio:.3f}x "
        f"(goal <= {GOAL}x: {'met' if ratio <= GOAL else 'NOT met'})"
    )
    for name in names:
        print(f"  runs {name}: {', '.join(f'{t:.2f}' for t in wall[name])}")


def restore_in_process(
    cluster: LocalCluster, folder: Path, name: str, jobs: int
) -> Callable[[], object]:
    """Our restore without the interpreter and Django start-up: the library call alone."""
    os.environ.update(DJANGO_SETTINGS_MODULE="choregarden.settings", DJANGO_ENV="development")
    os.environ.setdefault("DATABASE_URL", cluster.url("owner", DATABASE))
    import django

    django.setup()
    from django.core.files.storage import FileSystemStorage
    from django.test import override_settings

    from dbops.backups.restore_plan import restore_backup
    from dbops.backups.store import find_backup

    storage = FileSystemStorage(location=folder)
    admin = cluster.conninfo("owner", DATABASE)

    def run() -> None:
        with override_settings(BACKUP_RESTORE_JOBS=jobs):
            restore_backup(storage, find_backup(storage, "development", name), admin, "bench_lib")

    return run


def bench_restore(
    args: argparse.Namespace,
    cluster: LocalCluster,
    client_env: dict[str, str],
    ours_env: dict[str, str],
    out: Path,
) -> None:
    """Plain CREATE DATABASE + pg_restore -j N against `backup restore`, same dump, same N."""
    jobs = max(1, min(os.cpu_count() or 1, 8))  # dbops.backups.restore.restore_jobs()
    env = dict(ours_env, BACKUP_DIR=str(out / "restore-src"), BACKUP_RESTORE_JOBS=str(jobs))
    made = subprocess.run(
        [sys.executable, str(REPO / "manage.py"), "backup", "create", "--json"],
        env=env, cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    if made.returncode != 0:
        sys.exit(f"backup create failed: {made.stderr.strip()}")
    name = json.loads(made.stdout)["name"]
    dump = out / "restore-src" / name
    owner = cluster.conninfo("owner")
    pg_restore = [
        str(find_bindir() / "pg_restore"), "--no-owner", "--exit-on-error", f"--jobs={jobs}",
        "-h", str(owner["host"]), "-p", str(owner["port"]), "-U", str(owner["user"]),
    ]  # fmt: skip

    # As an operator would: leave out the extension only a superuser may create (and its
    # grants), which `backup restore` leaves out by itself (docs/backups.md, "Restore").
    toc = subprocess.run(
        [str(find_bindir() / "pg_restore"), "--list", str(dump)], capture_output=True, text=True
    ).stdout
    use_list = out / "restore.list"
    use_list.write_text("".join(x for x in toc.splitlines(True) if "pg_stat_statements" not in x))

    def plain() -> None:
        with psycopg.connect(**owner, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_plain")
        done = subprocess.run(
            [*pg_restore, f"--use-list={use_list}", "-d", "bench_plain", str(dump)],
            env=client_env,
            capture_output=True,
        )
        if done.returncode != 0:
            sys.exit(f"pg_restore failed: {done.stderr.decode().strip()}")

    ours = [sys.executable, str(REPO / "manage.py"), "backup", "restore", name,
            "--database", "bench_ours"]  # fmt: skip
    variants: dict[str, Variant] = {
        f"pg_restore -j {jobs} (fresh db)": plain,
        "backup restore": (ours, env),
        "restore_backup() in-process": restore_in_process(cluster, dump.parent, name, jobs),
        "start-up only (backup --help)": ([*ours[:3], "--help"], env),
    }
    names = list(variants)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    print(f"restore of {name} ({human_size(dump.stat().st_size)}), pg_restore --jobs={jobs}")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for round_ in range(args.repeat):
        for n in names[round_ % len(names) :] + names[: round_ % len(names)]:
            with psycopg.connect(**owner, autocommit=True) as conn:
                for db in ("bench_plain", "bench_ours", "bench_lib"):
                    conn.execute(f"DROP DATABASE IF EXISTS {db}")
            seconds, cpu_seconds = timed(variants[n])
            wall[n].append(seconds)
            cpu[n].append(cpu_seconds)
    report(names, wall, cpu, {}, args.repeat, "backup restore / pg_restore -j")


def bench_dump(
    args: argparse.Namespace,
    cluster: LocalCluster,
    client_env: dict[str, str],
    pg_dump: list[str],
    ours: list[str],
    ours_env: dict[str, str],
    out: Path,
) -> None:
    """pg_dump -Fc -f file against `backup create` (issue 7)."""
    plain = out / "plain.dump"
    variants: dict[str, Variant] = {
        "pg_dump -Fc -f file": ([*pg_dump, "-f", str(plain)], client_env),
        "backup create": (ours, ours_env),
        "create_backup() in-process": in_process(cluster, out / "ours"),
        "start-up only (backup --help)": ([*ours[:3], "--help"], ours_env),
    }
    if args.fingerprint:
        variants["backup create --fingerprint"] = ([*ours, "--fingerprint"], ours_env)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    names = list(variants)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    sizes: dict[str, int] = {}
    for round_ in range(args.repeat):
        # Rotate the order every round, so that no variant always runs first or last.
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            plain.unlink(missing_ok=True)
            shutil.rmtree(out / "ours", ignore_errors=True)
            seconds, cpu_seconds = timed(variants[name])
            wall[name].append(seconds)
            cpu[name].append(cpu_seconds)
            made = [plain] if plain.exists() else list((out / "ours").glob("*.dump"))
            if made:
                sizes[name] = made[0].stat().st_size

    report(names, wall, cpu, sizes, args.repeat, "backup create / pg_dump")


if __name__ == "__main__":
    main()
