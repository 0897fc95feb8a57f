"""Benchmark `manage.py backup create` against a plain `pg_dump -Fc -f FILE` (issue 7, item 1).

    .venv/bin/python bench/backup_bench.py [--rows 3000000] [--repeat 3]

In one run, on a throwaway local SSL cluster (never the machine's own server): build a
database of a few hundred MB with generate_series, then time, alternately, the baseline
`pg_dump -Fc -f file` and our `manage.py backup create` to a folder (a real process,
Django start-up included, streaming through Python with sha256, then rename + manifest).
Each figure is the median of --repeat runs, wall clock. Goal: ratio <= 1.1. Also timed, for
information: `backup create --fingerprint` (hashes every table in the dump's snapshot).
"""

from __future__ import annotations

import argparse
import os
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


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{argv[0]} failed: {proc.stderr.strip()}")
    return elapsed


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

        baseline_times, ours_times, fingerprint_times = [], [], []
        for _ in range(args.repeat):
            target = out / "plain.dump"
            target.unlink(missing_ok=True)
            baseline_times.append(timed([*pg_dump, "-f", str(target)], client_env))
            shutil.rmtree(out / "ours", ignore_errors=True)
            ours_times.append(timed(ours, ours_env))
            dumps = list((out / "ours").glob("*.dump"))
            assert len(dumps) == 1, dumps
            ours_size = dumps[0].stat().st_size
            if args.fingerprint:
                shutil.rmtree(out / "ours", ignore_errors=True)
                fingerprint_times.append(timed([*ours, "--fingerprint"], ours_env))

        baseline, mine = statistics.median(baseline_times), statistics.median(ours_times)
        ratio = mine / baseline
        print(f"pg_dump -Fc -f file : {baseline:6.2f}s  ({human_size(target.stat().st_size)})")
        print(f"backup create       : {mine:6.2f}s  ({human_size(ours_size)})")
        print(
            f"ratio               : {ratio:.3f}x (goal <= {GOAL}x: "
            f"{'met' if ratio <= GOAL else 'NOT met'}); median of {args.repeat}"
        )
        print(
            f"runs: pg_dump {', '.join(f'{t:.2f}' for t in baseline_times)}; "
            f"backup create {', '.join(f'{t:.2f}' for t in ours_times)}"
        )
        if fingerprint_times:
            fp = statistics.median(fingerprint_times)
            print(
                f"backup create --fingerprint: {fp:6.2f}s, {fp / baseline:.3f}x pg_dump "
                f"(also hashes every table in the dump's snapshot; informational)"
            )
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
