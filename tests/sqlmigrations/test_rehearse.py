"""`migrate --rehearse`: pending files applied to a restored backup, measured, dropped.

Each test builds a throwaway project (tests/sqlproject.py) with a table of 20 000 rows,
backs it up with `manage.py backup create` into a folder, adds pending files and runs
`manage.py migrate --rehearse` as a deploy pipeline would, on the real PostgreSQL.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import Popen
from typing import Any

import psycopg
import pytest

from tests import forkserver
from tests.helpers import REPO, create_database
from tests.sqlproject import SqlProject

ROWS = 20_000
BIG = f"""CREATE TABLE big (id integer PRIMARY KEY, n integer NOT NULL);
INSERT INTO big SELECT g, g FROM generate_series(1, {ROWS}) g;
"""
# Each file keeps its locks a while (pg_sleep in its transaction), longer than several
# sampling intervals: a file over in 5 ms may run between two samples.
WIDEN = "ALTER TABLE big ALTER COLUMN n TYPE bigint;\nSELECT pg_sleep(0.3);\n"
ADD_NOTE = (
    "ALTER TABLE big ADD COLUMN note text;\nUPDATE big SET note = 'x' WHERE id <= 150;\n"
    "SELECT pg_sleep(0.3);\n"
)


def manage(
    project: SqlProject,
    backups: Path,
    *args: str,
    settings: str = "",
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`manage.py ARGS` of the project, backups in `backups`; `settings`: lines to add."""
    project.sync_wrappers()
    if settings:
        module = project.root / f"{project.package}_settings.py"
        module.write_text(module.read_text() + settings)
    env = dict(project.env(), BACKUP_DIR=str(backups), BACKUP_ENV="test", **(env or {}))
    return forkserver.run_manage(*args, env=env, timeout=300, cwd=project.root)


def scratch_databases(project: SqlProject) -> list[str]:
    rows = project.query(
        "SELECT datname FROM pg_database WHERE datname LIKE %s",
        [project.database[:30] + "\\_rehearse\\_%"],
    )
    return [name for (name,) in rows]


@pytest.fixture
def backed_up(sqlproject: SqlProject, tmp_path: Path) -> tuple[SqlProject, Path]:
    """The project with V1 (a 20 000-row table) applied and backed up."""
    backups = tmp_path / "backups"
    sqlproject.write("V1__big.sql", BIG)
    result = manage(sqlproject, backups, "migrate", "--no-input")
    assert result.returncode == 0, result.stdout + result.stderr
    result = manage(sqlproject, backups, "backup", "create")
    assert result.returncode == 0, result.stdout + result.stderr
    return sqlproject, backups


def live_state(project: SqlProject) -> tuple[Any, Any]:
    columns = project.query(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = 'big' ORDER BY column_name"
    )
    return project.history(), columns


def test_rehearse_reports_rewrite_locks_rows_and_leaves_live_alone(backed_up) -> None:
    project, backups = backed_up
    project.write("V2__widen.sql", WIDEN)
    project.write("V3__add_note.sql", ADD_NOTE)
    before = live_state(project)

    result = manage(project, backups, "migrate", "--rehearse", "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["pending"] == ["V2__widen.sql", "V3__add_note.sql"]
    widen, note = report["files"]
    assert widen["scripts"] == ["V2__widen.sql"]
    assert widen["rewritten"] == ["public.big"]
    assert widen["seconds"] >= 0.3  # its execution_time: the file sleeps 0.3 s
    assert widen["error"] is None
    exclusive = [lock for lock in widen["locks"] if lock["table"] == "public.big"]
    assert "AccessExclusiveLock" in [lock["mode"] for lock in exclusive]
    assert all(
        lock["held_seconds"] >= 0.1 for lock in exclusive if lock["mode"] == "AccessExclusiveLock"
    )
    assert note["scripts"] == ["V3__add_note.sql"]
    assert note["rewritten"] == []
    assert note["rows_touched"] == {"public.big": 150}
    assert "AccessExclusiveLock" in {lock["mode"] for lock in note["locks"]}
    # The copy is gone; the live database has neither file.
    assert scratch_databases(project) == []
    assert live_state(project) == before
    # The pipeline's next step (docs/migrations.md): the deploy's migrate applies both.
    result = manage(project, backups, "migrate", "--no-input")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [row[4] for row in project.history()][-2:] == ["V2__widen.sql", "V3__add_note.sql"]


def test_rehearse_text_report(backed_up) -> None:
    project, backups = backed_up
    project.write("V2__widen.sql", WIDEN)

    result = manage(project, backups, "migrate", "--rehearse")

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Rehearsal on " in out and "1 pending file(s)" in out
    assert "V2__widen.sql (dbops.V2__widen): OK" in out
    assert "rewrote: public.big" in out
    assert "lock: AccessExclusiveLock on public.big, held ~" in out
    assert "Restoring choregarden-test-" in out
    assert scratch_databases(project) == []


def test_nothing_pending_restores_nothing(backed_up) -> None:
    project, backups = backed_up

    result = manage(project, backups, "migrate", "--rehearse")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "No pending migration files: nothing to rehearse." in result.stdout
    assert "Restoring" not in result.stdout


def test_failing_file_exits_1_naming_it(backed_up) -> None:
    project, backups = backed_up
    project.write("V2__widen.sql", WIDEN)
    project.write("V3__broken.sql", "ALTER TABLE no_such_table ADD COLUMN x int;\n")
    before = live_state(project)

    result = manage(project, backups, "migrate", "--rehearse")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "V3__broken.sql (dbops.V3__broken): FAILED" in result.stdout
    assert "The rehearsal failed at V3__broken.sql" in result.stderr
    assert "no_such_table" in result.stderr
    assert scratch_databases(project) == []
    assert live_state(project) == before


def test_lock_over_budget_exits_1(backed_up) -> None:
    project, backups = backed_up
    # Holds ACCESS EXCLUSIVE on big for at least 0.6 s, in the file's transaction.
    project.write("V2__slow.sql", "ALTER TABLE big ADD COLUMN late text;\nSELECT pg_sleep(0.6);\n")

    result = manage(project, backups, "migrate", "--rehearse", "--lock-budget", "100ms")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "OVER BUDGET" in result.stdout
    assert "V2__slow.sql held AccessExclusiveLock on public.big for " in result.stderr
    assert "over the lock budget of 0.1s" in result.stderr
    assert scratch_databases(project) == []

    # The same file within a budget it fits: the rehearsal passes.
    result = manage(project, backups, "migrate", "--rehearse", "--lock-budget", "5s")
    assert result.returncode == 0, result.stdout + result.stderr


def test_unknown_backup_exits_1_with_the_list_hint(backed_up) -> None:
    project, backups = backed_up
    project.write("V2__widen.sql", WIDEN)

    name = "choregarden-test-20200101T000000Z.dump"
    result = manage(project, backups, "migrate", "--rehearse", "--from-backup", name)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "backup list" in result.stderr
    assert scratch_databases(project) == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--rehearse", "--lock-budget", "soon"], "--lock-budget='soon' is not a duration"),
        (["--rehearse", "--lock-budget", "2"], "has no unit"),
        (["--rehearse", "--fake"], "--rehearse runs a plain `migrate` on a copy: leave out --fake"),
        (["dbops", "--rehearse"], "leave out an app label"),
        (["--from-backup", "latest"], "--from-backup: goes only with --rehearse"),
        (["--from-snapshot", "latest"], "--from-snapshot: goes only with --rehearse"),
        (
            ["--rehearse", "--from-backup", "latest", "--from-snapshot", "latest"],
            "argument --from-snapshot: not allowed with argument --from-backup",
        ),
    ],
)
def test_usage_errors_exit_2(backed_up, args: list[str], says: str) -> None:
    project, backups = backed_up

    result = manage(project, backups, "migrate", *args)

    assert result.returncode == 2, result.stdout + result.stderr
    assert says in result.stderr


def test_lint_findings_use_the_copys_sizes(backed_up) -> None:
    """With a threshold below the copy's 20 000 rows, migrate refuses the rewrite there:
    the rehearsal fails before the first file and shows the finding with the size."""
    project, backups = backed_up
    project.write("V2__widen.sql", WIDEN)
    small = 'SQL_MIGRATIONS["LARGE_TABLE_ROWS"] = 1000\n'

    result = manage(project, backups, "migrate", "--rehearse", settings=small)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "V2__widen.sql: NOT RUN (refused before the first file)" in result.stdout
    assert "lint: V2__widen.sql:1: table-rewrite:" in result.stdout
    assert "The rehearsal failed before the first file ran" in result.stderr
    assert scratch_databases(project) == []


def test_leftovers_of_a_killed_run_are_dropped_after_an_hour(backed_up) -> None:
    project, backups = backed_up
    project.write("V2__widen.sql", WIDEN)
    prefix = project.database[:30] + "_rehearse_"
    old, recent = prefix + "20200101000000_abcd", prefix + "29990101000000_abcd"
    for name in (old, recent):
        project.query(f'CREATE DATABASE "{name}"')
    try:
        result = manage(project, backups, "migrate", "--rehearse")

        assert result.returncode == 0, result.stdout + result.stderr
        assert f"Dropping {old}, left by an interrupted rehearsal." in result.stdout
        assert scratch_databases(project) == [recent]
    finally:
        for name in (old, recent):
            project.query(f'DROP DATABASE IF EXISTS "{name}"')


@contextmanager
def rehearsing(project: SqlProject, env: dict[str, str], *args: str) -> Iterator[Popen[str]]:
    """`manage.py migrate --rehearse ARGS` running as a pipeline job; killed if left running."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "migrate", "--rehearse", *args],
        env=env,
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def cancel(proc: Popen[str]) -> tuple[str, str]:
    """Cancel the job as a pipeline does (SIGTERM); return what it printed."""
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=60)


def test_a_cancelled_rehearsal_drops_its_copy(backed_up) -> None:
    """SIGTERM (a cancelled pipeline job) while a file runs: exit 1, the copy is dropped."""
    project, backups = backed_up
    project.write("V2__slow.sql", "ALTER TABLE big ADD COLUMN late text;\nSELECT pg_sleep(60);\n")
    project.sync_wrappers()
    env = dict(project.env(), BACKUP_DIR=str(backups), BACKUP_ENV="test")
    with rehearsing(project, env) as proc:
        deadline = time.monotonic() + 120
        while not project.query(
            "SELECT 1 FROM pg_stat_activity WHERE datname LIKE %s AND query LIKE %s",
            [project.database[:30] + "\\_rehearse\\_%", "%pg_sleep(60)%"],
        ):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the file never started on the copy"
            time.sleep(0.1)
        out, err = cancel(proc)

    assert proc.returncode == 1, out + err
    assert "The rehearsal was interrupted: its copy was removed" in err
    assert scratch_databases(project) == []


# The REHEARSAL_SOURCE of the snapshot test, in the throwaway project: moto plays RDS in the
# `migrate` process (an instance with automated snapshots; the clone, its waiter, its
# delete), and the clone's endpoint is reached as the database CLONE_DB of the test server
# (moto runs no database). What RDS holds at the end is written to RDS_STATE.
ON_MOTO = """
import contextlib, json, os
from pathlib import Path

import boto3
from moto import mock_aws

from dbops.backups import rds, rehearsal
from dbops.connections.config import conninfo


@contextlib.contextmanager
def source(backup_name, say, snapshot=None):
    with mock_aws():
        client = boto3.client("rds", region_name="eu-west-1")
        client.create_db_instance(
            DBInstanceIdentifier="cg-prod", Engine="postgres", DBInstanceClass="db.r6g.large",
            MasterUsername="owner", MasterUserPassword="not-used-here", AllocatedStorage=20,
            BackupRetentionPeriod=7,
        )
        reach, make_client = rds.endpoint_conninfo, rds.rds_client
        if os.environ.get("SLOW_CLONE"):  # the clone stays "creating": the wait goes on
            from moto.rds.models import rds_backends

            def still_creating(parsed, **_):
                name = parsed["DBInstance"]["DBInstanceIdentifier"]
                rds_backends["123456789012"]["eu-west-1"].databases[name].status = "creating"

            def slow(region):
                found = make_client(region)
                found.meta.events.register(
                    "after-call.rds.RestoreDBInstanceFromDBSnapshot", still_creating
                )
                return found

            rds.rds_client = slow
        if os.environ.get("CLONE_DB"):  # else the clone's name, which no DNS knows
            rds.endpoint_conninfo = lambda address, port: conninfo("owner").on(
                os.environ["CLONE_DB"]
            )
        try:
            with rehearsal.scratch_database(backup_name, say, snapshot) as scratch:
                yield scratch
        finally:
            rds.endpoint_conninfo, rds.rds_client = reach, make_client
            found = client.describe_db_instances()["DBInstances"]
            left = [i["DBInstanceIdentifier"] for i in found]
            Path(os.environ["RDS_STATE"]).write_text(json.dumps(left))
"""


def on_moto_env(clone: str, state: Path) -> dict[str, Any]:
    """manage()'s arguments for the ON_MOTO source: its settings line and environment."""
    return {
        "settings": 'SQL_MIGRATIONS["REHEARSAL_SOURCE"] = "rds_on_moto.source"\n',
        "env": {
            "CLONE_DB": clone,
            "RDS_STATE": str(state),
            "RDS_INSTANCE_ID": "cg-prod",
            "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        },
    }


def test_rehearse_on_an_rds_snapshot_clone(backed_up, tmp_path: Path) -> None:
    project, backups = backed_up
    # The clone: the data as the snapshot saved it (V1 applied), on "another server".
    clone = create_database(project.server, project.database + "_clone", template=project.database)
    try:
        (project.root / "rds_on_moto.py").write_text(ON_MOTO)
        project.write("V2__widen.sql", WIDEN)
        before = live_state(project)
        state = tmp_path / "rds.json"
        env = on_moto_env(clone, state)

        # A snapshot that is not there: exit 1, nothing made.
        result = manage(
            project, backups, "migrate", "--rehearse", "--from-snapshot", "nosuch", **env
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert "There is no RDS snapshot nosuch in eu-west-1" in result.stderr
        assert "Nothing was rehearsed." in result.stderr
        assert json.loads(state.read_text()) == ["cg-prod"]

        # A clone the runner cannot reach: exit 1 naming it, and the clone is deleted.
        unreachable = on_moto_env("", state)
        result = manage(
            project, backups, "migrate", "--rehearse", "--from-snapshot", "latest", **unreachable
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert re.search(r"cannot connect to the database \S*@cg-prod-rehearse-\S+", result.stderr)
        assert "(the rehearsal's clone of RDS_INSTANCE_ID): failed to resolve host" in result.stderr
        assert "Or unset" not in result.stderr
        assert "Deleting RDS instance cg-prod-rehearse-" in result.stdout
        assert json.loads(state.read_text()) == ["cg-prod"]

        result = manage(
            project, backups, "migrate", "--rehearse", "--from-snapshot", "latest", "--json", **env
        )

        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["ok"] is True
        assert report["backup"].startswith("RDS snapshot rds:cg-prod-")
        assert report["copy"].startswith("RDS instance cg-prod-rehearse-")
        assert report["copy"].endswith(f", database {clone}")
        (widen,) = report["files"]
        assert widen["scripts"] == ["V2__widen.sql"]
        assert widen["rewritten"] == ["public.big"]
        assert "Cloning RDS snapshot rds:cg-prod-" in result.stderr
        assert "db.r6g.large" in result.stderr
        # The file ran on the clone, not on the live database; the clone instance is gone.
        with psycopg.connect(**project.server.conninfo(clone)) as conn:
            applied = conn.execute("SELECT script FROM flyway_schema_history").fetchall()
        assert ("V2__widen.sql",) in applied
        assert live_state(project) == before
        assert json.loads(state.read_text()) == ["cg-prod"]
        assert scratch_databases(project) == []
    finally:
        project.query(f'DROP DATABASE IF EXISTS "{clone}"')


# A REHEARSAL_SOURCE whose copy could not be removed: the contract says the run fails.
STUCK = """
import contextlib, os


@contextlib.contextmanager
def source(backup_name, say):
    scratch = {"NAME": os.environ["COPY_DB"], "BACKUP": "a test copy"}
    yield scratch
    scratch["LEFT_BEHIND"] = "Could not remove the copy: remove it by hand."
    say(scratch["LEFT_BEHIND"])
"""


def test_a_copy_left_behind_fails_the_rehearsal(backed_up) -> None:
    project, backups = backed_up
    copy = create_database(project.server, project.database + "_copy", template=project.database)
    try:
        (project.root / "stuck_source.py").write_text(STUCK)
        project.write("V2__widen.sql", WIDEN)
        settings = 'SQL_MIGRATIONS["REHEARSAL_SOURCE"] = "stuck_source.source"\n'

        result = manage(
            project, backups, "migrate", "--rehearse", settings=settings, env={"COPY_DB": copy}
        )

        assert result.returncode == 1, result.stdout + result.stderr
        assert "V2__widen.sql (dbops.V2__widen): OK" in result.stdout
        assert "The copy is LEFT BEHIND; the live database was not touched." in result.stdout
        assert "CommandError: Could not remove the copy: remove it by hand." in result.stderr

        result = manage(
            project,
            backups,
            "migrate",
            "--rehearse",
            "--json",
            settings=settings,
            env={"COPY_DB": copy},
        )
        assert result.returncode == 1, result.stdout + result.stderr
        # Its first run applied V2 on the copy: nothing is pending there any more.
        assert json.loads(result.stdout)["ok"] is False
    finally:
        project.query(f'DROP DATABASE IF EXISTS "{copy}"')


def test_a_cancelled_snapshot_rehearsal_deletes_its_clone(backed_up, tmp_path: Path) -> None:
    """SIGTERM (a cancelled pipeline job) while it waits for the clone: exit 1, deleted."""
    project, backups = backed_up
    (project.root / "rds_on_moto.py").write_text(ON_MOTO)
    project.write("V2__widen.sql", WIDEN)
    state = tmp_path / "rds.json"
    moto = on_moto_env("", state)
    project.sync_wrappers()
    module = project.root / f"{project.package}_settings.py"
    module.write_text(module.read_text() + moto["settings"])
    env = dict(project.env(), BACKUP_DIR=str(backups), BACKUP_ENV="test", SLOW_CLONE="1")
    env.update(moto["env"])
    with rehearsing(project, env, "--from-snapshot", "latest") as proc:
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()  # said when the clone is asked for, before the wait
        assert first.startswith("Cloning RDS snapshot rds:cg-prod-"), first + proc.stderr.read()
        time.sleep(1)  # inside the waiter's sleep
        out, err = cancel(proc)

    assert proc.returncode == 1, out + err
    assert "The rehearsal was interrupted: its copy was removed" in err
    assert "Deleting RDS instance cg-prod-rehearse-" in out
    assert json.loads(state.read_text()) == ["cg-prod"]
