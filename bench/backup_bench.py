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
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
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


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run argv; return (wall seconds, CPU seconds of it and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} failed: {proc.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--repeat", type=int, default=3)
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
        ours_env.pop("BACKUP_BUCKET", None)
        ours = [sys.executable, str(REPO / "manage.py"), "backup", "create"]

        plain = out / "plain.dump"
        variants: dict[str, tuple[list[str], dict[str, str]]] = {
            "pg_dump -Fc -f file": ([*pg_dump, "-f", str(plain)], client_env),
            "backup create": (ours, ours_env),
            "start-up only (backup --help)": ([*ours[:3], "--help"], ours_env),
        }
        if args.fingerprint:
            variants["backup create --fingerprint"] = ([*ours, "--fingerprint"], ours_env)
        names = list(variants)
        wall: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        sizes: dict[str, int] = {}
        for round_ in range(args.repeat):
            # Rotate the order every round, so that no variant always runs first or last.
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                plain.unlink(missing_ok=True)
                shutil.rmtree(out / "ours", ignore_errors=True)
                argv, env = variants[name]
                seconds, cpu_seconds = timed(argv, env)
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
                made = [plain] if plain.exists() else list((out / "ours").glob("*.dump"))
                if made:
                    sizes[name] = made[0].stat().st_size

        baseline = statistics.median(wall[names[0]])
        print(f"{'':32} {'wall (median)':>14} {'ratio':>7} {'client CPU':>11}  size")
        for name in names:
            median = statistics.median(wall[name])
            size_text = human_size(sizes[name]) if name in sizes else ""
            print(
                f"{name:32} {median:13.2f}s {median / baseline:6.3f}x "
                f"{statistics.median(cpu[name]):10.2f}s  {size_text}"
            )
        ratio = statistics.median(wall["backup create"]) / baseline
        startup = statistics.median(wall["start-up only (backup --help)"])
        print(
            f"ratio backup create / pg_dump: {ratio:.3f}x (goal <= {GOAL}x: "
            f"{'met' if ratio <= GOAL else 'NOT met'}); without Python/Django start-up: "
            f"{(statistics.median(wall['backup create']) - startup) / baseline:.3f}x; "
            f"median of {args.repeat}"
        )
        for name in names:
            print(f"  runs {name}: {', '.join(f'{t:.2f}' for t in wall[name])}")
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
