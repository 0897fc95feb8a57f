"""Bulk test data for the benchmarks: generate_series straight into the real schema.

Members, tasks and their ids are laid out arithmetically so that later rows can refer to
them without lookups: household h (1..H) has members 3h-2 (owner), 3h-1, 3h and tasks
3h-2..3h. Audit triggers are off during a load (a bulk load is not an application change)
and back on afterwards; everything else (foreign keys, checks, indexes) stays on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from dbops.localdb import LocalCluster
from dbops.localdb.reaper import destroy_with_this_process


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


REPO = Path(__file__).resolve().parents[1]


def environment(cluster: LocalCluster) -> dict[str, str]:
    """The project's settings for this cluster: app role, owner for migrations, SSL."""
    return {
        **os.environ,
        "DJANGO_ENV": "test",
        "DB_POOL": "false",
        "DATABASE_URL": cluster.url("app"),
        "MIGRATION_DATABASE_URL": cluster.url("owner"),
        "DB_SSLMODE": "verify-full",
        "DB_SSLROOTCERT": str(cluster.ca_file),
    }


@contextmanager
def migrated_cluster(keep: Path | None, prefix: str) -> Iterator[LocalCluster]:
    """A throwaway cluster (or the one kept in `keep`), migrated, with this process's
    environment pointing Django at it; destroyed afterwards unless kept."""
    base = keep or Path(tempfile.mkdtemp(prefix=prefix))
    cluster = LocalCluster(base, database="choregarden_bench")
    cluster.start()
    if keep is None:
        destroy_with_this_process(cluster)  # also when the benchmark is killed
    try:
        env = environment(cluster)
        log("migrate")
        subprocess.run(
            [sys.executable, str(REPO / "manage.py"), "migrate", "--no-input", "-v", "0"],
            env=env,
            cwd=REPO,
            check=True,
        )
        os.environ.update(env)
        os.environ["DJANGO_SETTINGS_MODULE"] = "choregarden.settings"
        yield cluster
    finally:
        if keep is None:
            cluster.destroy()
            base.rmdir()  # destroy() empties the folder mkdtemp made
        else:
            cluster.stop()


def owner_connection(cluster: LocalCluster) -> psycopg.Connection[Any]:
    return psycopg.connect(**cluster.conninfo("owner"), autocommit=True)


@contextmanager
def audit_off(conn: psycopg.Connection[Any]) -> Iterator[None]:
    triggers = conn.execute(
        "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " JOIN pg_proc p ON p.oid = t.tgfoid"
        " WHERE p.proname = 'choregarden_audit' AND t.tgparentid = 0"
    ).fetchall()
    for table, trigger in triggers:
        conn.execute(f'ALTER TABLE "{table}" DISABLE TRIGGER "{trigger}"')
    try:
        yield
    finally:
        for table, trigger in triggers:
            conn.execute(f'ALTER TABLE "{table}" ENABLE TRIGGER "{trigger}"')


def count(conn: psycopg.Connection[Any], table: str) -> int:
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def load_profiles(conn: psycopg.Connection[Any], n: int) -> None:
    log(f"loading {n:,} profiles")
    conn.execute(
        """
        INSERT INTO users (cognito_sub, email, email_verified, display_name, is_active,
                           created_at, last_seen_at)
        SELECT md5(n::text), 'user' || n || '@example.com', n %% 3 <> 0,
               (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald'])[1 + n %% 6] || ' ' || n,
               n %% 10 <> 0, now() - make_interval(secs => n),
               now() - make_interval(mins => n %% 5000)
        FROM generate_series(1, %s) n
        """,
        [n],
    )


def load_households(conn: psycopg.Connection[Any], households: int) -> None:
    """Households 1..H, each with an owner and two members, and three daily tasks."""
    log(f"loading {households:,} households, {3 * households:,} members and tasks")
    with conn.transaction():  # a household needs its owner in the same transaction
        conn.execute(
            "INSERT INTO households (id, name) OVERRIDING SYSTEM VALUE "
            "SELECT h, 'Household ' || h FROM generate_series(1, %s) h",
            [households],
        )
        conn.execute(
            """
            INSERT INTO household_members (id, household_id, user_id, role)
            OVERRIDING SYSTEM VALUE
            SELECT u.rn, 1 + (u.rn - 1) / 3, u.id,
                   CASE WHEN (u.rn - 1) %% 3 = 0 THEN 'owner' ELSE 'member' END
            FROM (SELECT id, row_number() OVER (ORDER BY created_at DESC, id) rn
                  FROM users ORDER BY created_at DESC, id LIMIT %s) u
            """,
            [3 * households],
        )
    conn.execute(
        "INSERT INTO tasks (id, household_id, title, effort_points, recurrence, starts_on) "
        "OVERRIDING SYSTEM VALUE SELECT t, 1 + (t - 1) / 3, 'Chore ' || t, 1 + t %% 5, "
        "'FREQ=DAILY', current_date - 60 FROM generate_series(1, %s) t",
        [3 * households],
    )
    for table in ("households", "household_members", "tasks"):
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
        )


def load_completions(conn: psycopg.Connection[Any], n: int, households: int) -> None:
    """n completions over the last twelve months, spread over every member."""
    conn.execute(
        "SELECT choregarden_create_completion_partitions("
        "(date_trunc('month', now()) - interval '12 months')::date, "
        "date_trunc('month', now())::date)"
    )
    batch = 1_000_000
    for start in range(0, n, batch):
        size = min(batch, n - start)
        log(f"loading completions {start + 1:,}-{start + size:,} of {n:,}")
        conn.execute(
            """
            INSERT INTO completions (household_id, member_id, task_id, completed_at, points)
            SELECT h, 3 * h - 2 + (n / %s) %% 3, 3 * h - 2 + (n / 7) %% 3,
                   now() - make_interval(mins => ((n::bigint * 7919) %% (360 * 24 * 60))::int),
                   n %% 10
            FROM (SELECT n, 1 + n %% %s AS h FROM generate_series(%s::int, %s::int) n) s
            """,
            [households, households, start + 1, start + size],
        )


def load_assignments(conn: psycopg.Connection[Any], households: int, days: int = 30) -> None:
    """One assignment per task and day, from 20 days ago on; most past ones done.

    The assignee rotates among the household's three members ((t + d + 21) % 3: never
    negative, as PostgreSQL's % of a negative number would be for the first tasks)."""
    log(f"loading {3 * households * days:,} assignments")
    conn.execute(
        """
        INSERT INTO assignments (task_id, household_id, assignee_id, due_at, status)
        SELECT t, 1 + (t - 1) / 3, 3 * ((t - 1) / 3) + 1 + (t + d + 21) %% 3,
               date_trunc('day', now()) + make_interval(days => d, hours => 18),
               CASE WHEN d < 0 AND (t + d) %% 5 <> 0 THEN 'done' ELSE 'open' END
        FROM generate_series(1, %s) t, generate_series(-20, %s) d
        """,
        [3 * households, days - 21],
    )


def load_notifications(conn: psycopg.Connection[Any], n: int, households: int) -> None:
    """n notifications spread over every member; one in seven unread, spread over every
    member too unless the member count (3 per household) is a multiple of 7."""
    log(f"loading {n:,} notifications")
    conn.execute(
        """
        INSERT INTO notifications (recipient_id, household_id, kind, created_at, read_at)
        SELECT m.user_id, m.household_id, 'assignment_due',
               now() - make_interval(mins => s.n %% 50000),
               CASE WHEN s.n %% 7 = 0 THEN NULL ELSE now() END
        FROM generate_series(1, %s) s(n)
        JOIN household_members m ON m.id = 1 + s.n %% %s
        """,
        [n, 3 * households],
    )


def finish(conn: psycopg.Connection[Any], started: float) -> None:
    log("VACUUM ANALYZE")
    conn.execute("VACUUM ANALYZE")
    log(f"loaded in {time.perf_counter() - started:.0f} s")
