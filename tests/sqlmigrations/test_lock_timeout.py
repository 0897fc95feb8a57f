"""`migrate` bounds each file's lock waits, retries, and names the blockers (issue 19).

A file whose DDL waits behind a long transaction must not queue the application's queries
for longer than `lock_timeout`: each try gives up its lock request after it, rolls back
(no lock held), pauses and tries again, naming the sessions that held the lock. Every
test runs the real `manage.py migrate` on a throwaway project on real PostgreSQL, with
another real session holding the lock.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sqlmigrations.lib.exceptions import ScriptConfigError
from sqlmigrations.lib.executor import apply_file
from sqlmigrations.lib.files import discover
from sqlmigrations.lib.history import SchemaHistory
from sqlmigrations.lib.lockwait import LockGuard, LockLimits, _masked
from sqlmigrations.lib.scriptconfig import parse_script_config
from tests.blocking import wait_until_blocked
from tests.helpers import REPO
from tests.sqlproject import SqlProject

SECRET = "hunter2-not-for-logs"

# Small limits keep the tests short; a file's directive overrides the first three.
FAST = {
    "LOCK_TIMEOUT": "500ms",
    "LOCK_RETRIES": 20,
    "LOCK_RETRY_BACKOFF": "100ms",
    "LOCK_RETRY_BACKOFF_MAX": "300ms",
}


def configure(project: SqlProject, **limits: Any) -> None:
    """Write the wrappers and settings, then add lock-wait settings to SQL_MIGRATIONS."""
    project.sync_wrappers()
    settings = project.root / f"{project.package}_settings.py"
    settings.write_text(
        settings.read_text() + f"\nSQL_MIGRATIONS = {{**SQL_MIGRATIONS, **{limits!r}}}\n"
    )


def migrate(project: SqlProject, *args: str, **limits: Any) -> subprocess.CompletedProcess[str]:
    configure(project, **{**FAST, **limits})
    return project.manage("migrate", "--no-input", *args, sync=False)


def start_migrate(project: SqlProject, *args: str, **limits: Any) -> subprocess.Popen[str]:
    """Start `manage.py migrate` in the background (to act while it waits)."""
    configure(project, **{**FAST, **limits})
    return subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "migrate", "--no-input", *args],
        cwd=project.root,
        env=project.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"{result.stdout}\n{result.stderr}"


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, output(result)
    return output(result)


@contextmanager
def blocker(
    project: SqlProject, query: str = "SELECT count(*) FROM t", app: str = "blocker-app"
) -> Iterator[psycopg.Connection[Any]]:
    """A session that ran `query` in a transaction it keeps open (idle in transaction)."""
    conn = psycopg.connect(**project.server.conninfo(project.database), application_name=app)
    try:
        conn.execute(query)
        yield conn
    finally:
        conn.close()


def release_after(conn: psycopg.Connection[Any], seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, conn.rollback)
    timer.start()
    return timer


def released_while_waiting(
    project: SqlProject,
    conn: psycopg.Connection[Any],
    *args: str,
    hold: float = 1.5,
    **limits: Any,
) -> subprocess.CompletedProcess[str]:
    """Run migrate; once it waits for `conn`'s lock, let go after `hold` more seconds."""
    proc = start_migrate(project, *args, **limits)
    try:
        wait_until_blocked(project, conn.info.backend_pid)
        time.sleep(hold)
        conn.rollback()
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def columns(project: SqlProject, table: str = "t") -> list[str]:
    rows = project.query(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        [table],
    )
    return [r[0] for r in rows]


@pytest.fixture
def project(sqlproject: SqlProject) -> SqlProject:
    """A project whose table t exists (V1), with an ALTER of it pending (V2)."""
    sqlproject.write("V1__create_t.sql", "CREATE TABLE t (id int);\n")
    ok(migrate(sqlproject))
    sqlproject.write(
        "V2__add_c.sql", "-- the ALTER takes ACCESS EXCLUSIVE\nALTER TABLE t ADD c int;\n"
    )
    return sqlproject


# --- retries, blockers named ---------------------------------------------------------------


def test_retries_names_the_blocker_and_succeeds_once_it_lets_go(project: SqlProject) -> None:
    with blocker(project) as conn:
        pid = conn.info.backend_pid
        text = ok(released_while_waiting(project, conn))
    assert (
        "V2__add_c.sql: lock_timeout (500ms) reached waiting for AccessExclusiveLock on t" in text
    )
    assert f"blocked by: pid {pid} (application_name 'blocker-app', user " in text
    assert "idle in transaction, in a transaction for " in text
    assert "rolled back, no lock held" in text
    assert columns(project) == ["id", "c"]
    assert [r[4] for r in project.history()] == ["V1__create_t.sql", "V2__add_c.sql"]


def test_gives_up_after_the_retries_with_nothing_applied_and_no_literal_shown(
    project: SqlProject,
) -> None:
    project.write("V3__after.sql", "CREATE TABLE never (id int);\n")
    query = f"SELECT count(*) FROM t WHERE '{SECRET}' <> '' AND id <> 4242424242"
    with blocker(project, query) as conn:
        pid = conn.info.backend_pid
        result = migrate(project, LOCK_TIMEOUT="300ms", LOCK_RETRIES=2)
        # The session is still there and still holds its lock: nothing ended it.
        assert conn.execute("SELECT 1").fetchone() == (1,)
    text = output(result)
    assert result.returncode == 1, text
    assert "Traceback" not in text
    assert "migration failed: ERROR: canceling statement due to lock timeout" in result.stderr
    assert "it waited for a lock longer than lock_timeout (300ms) 3 times" in result.stderr
    assert f"  pid {pid} (application_name 'blocker-app'" in result.stderr
    assert "SELECT count(*) FROM t WHERE ? <> ? AND id <> ?" in result.stderr
    assert "Nothing of the file was applied and nothing was recorded for it" in result.stderr
    assert "--wait-for-blockers N" in result.stderr
    assert SECRET not in text and "4242424242" not in text
    assert columns(project) == ["id"]
    assert [r[4] for r in project.history()] == ["V1__create_t.sql"]
    assert "never" not in {r[0] for r in project.query("SELECT tablename FROM pg_tables")}
    # No lock is left behind: the table takes an exclusive lock at once.
    project.query("SET lock_timeout = '1s'; LOCK TABLE t IN ACCESS EXCLUSIVE MODE")


def test_wait_for_blockers_keeps_trying_past_the_retries(project: SqlProject) -> None:
    with blocker(project) as conn:
        text = ok(
            released_while_waiting(
                project, conn, "--wait-for-blockers", "30", LOCK_TIMEOUT="300ms", LOCK_RETRIES=0
            )
        )
    assert "try 2;" in text  # past LOCK_RETRIES=0: the time budget kept it going
    assert columns(project) == ["id", "c"]


def test_application_queries_wait_at_most_about_lock_timeout(project: SqlProject) -> None:
    """A query on the table that starts while migrate waits queues behind migrate's lock
    request; it runs as soon as that try times out, not when the blocker lets go."""
    with blocker(project) as conn:
        proc = start_migrate(project, LOCK_TIMEOUT="1s", LOCK_RETRY_BACKOFF="2s")
        try:
            wait_until_blocked(project, conn.info.backend_pid)
            app = psycopg.connect(
                **project.server.conninfo(project.database), application_name="app"
            )
            with app:
                started = time.monotonic()
                app.execute("SELECT count(*) FROM t").fetchone()
                waited = time.monotonic() - started
            conn.rollback()
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, stdout + stderr
    # Without a lock_timeout it would wait until the blocker let go (never, here).
    assert waited < 1.0 + 1.0, f"the application's query waited {waited:.2f}s"
    assert columns(project) == ["id", "c"]


# --- files outside a transaction: the same limits, statement by statement ------------------


def test_non_transactional_file_retries_each_statement(project: SqlProject) -> None:
    project.remove("V2__add_c.sql")
    project.write(
        "V2__two.sql", "CREATE TABLE u (id int);\nALTER TABLE t ADD d int;\nCREATE TABLE w ();\n"
    )
    project.write(
        "V2__two.sql.conf",
        "executeInTransaction=false\n# choregarden: lockTimeout=300ms, lockRetries=30\n",
    )
    with blocker(project) as conn:
        text = ok(released_while_waiting(project, conn, LOCK_TIMEOUT="5s"))
    # The directive's 300ms, not the setting's 5s; the line of the waiting statement.
    assert "V2__two.sql, line 2: lock_timeout (300ms) reached" in text
    assert columns(project) == ["id", "d"]
    assert [r[4] for r in project.history()][-1] == "V2__two.sql"
    # The session's own timeouts are restored after the file.


def test_non_transactional_file_gives_up_on_the_statement_and_records_a_failed_row(
    project: SqlProject,
) -> None:
    project.remove("V2__add_c.sql")
    project.write("V2__two.sql", "CREATE TABLE u (id int);\nALTER TABLE t ADD d int;\n")
    project.write("V2__two.sql.conf", "executeInTransaction=false\n")
    with blocker(project):
        result = migrate(project, LOCK_TIMEOUT="300ms", LOCK_RETRIES=1)
    assert result.returncode == 1, output(result)
    assert "migration failed, line 2: ERROR: canceling statement due to lock timeout" in (
        result.stderr
    )
    assert "it waited for a lock longer than lock_timeout (300ms) 2 times" in result.stderr
    assert "statements before the failure stay applied" in result.stderr
    assert columns(project) == ["id"]
    assert columns(project, "u") == ["id"]  # line 1 ran: outside a transaction it stays
    assert [(r[4], r[8]) for r in project.history()][-1] == ("V2__two.sql", False)


# --- the per-file directive -------------------------------------------------------------------


def test_a_bad_directive_names_the_file_and_line_and_nothing_runs(project: SqlProject) -> None:
    project.write("V2__add_c.sql.conf", "# lock waits of this file\n# choregarden: lockTimeout=5\n")
    result = migrate(project)
    assert result.returncode == 1, output(result)
    assert "V2__add_c.sql.conf:2: invalid directive value" in result.stderr
    assert "lockTimeout='5' has no unit: write 5s or 5ms" in result.stderr
    assert columns(project) == ["id"]
    assert [r[4] for r in project.history()] == ["V1__create_t.sql"]


def test_directive_values_and_errors() -> None:
    config = parse_script_config(
        "executeInTransaction=false\n! choregarden: lockTimeout=10s, statementTimeout=0\n"
        "#choregarden: lockRetries=7\n# an ordinary comment: choregarden: is not at the start\n",
        path="V1__x.sql.conf",
    )
    assert (config.lock_timeout_ms, config.statement_timeout_ms, config.retries) == (10000, 0, 7)
    assert config.explicit == {"executeInTransaction"}  # directives are not Flyway keys
    limits = LockLimits().for_file(config)
    assert (limits.lock_timeout_ms, limits.statement_timeout_ms, limits.retries) == (10000, 0, 7)
    for bad, says in [
        ("# choregarden: lockTimout=1s", "unknown directive item 'lockTimout=1s'"),
        ("# choregarden: lockRetries=-1", "lockRetries='-1' is not a whole number"),
        ("# choregarden: lockTimeout", "unknown directive item 'lockTimeout'"),
        ("# choregarden:", "empty choregarden directive"),
    ]:
        with pytest.raises(ScriptConfigError) as raised:
            parse_script_config(f"\n{bad}\n", path="V1__x.sql.conf")
        assert says in str(raised.value) and raised.value.line == 2


PROPERTIES = """
import java.io.FileInputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.Properties;

public class Keys {
    public static void main(String[] args) throws Exception {
        Properties p = new Properties();
        p.load(new InputStreamReader(new FileInputStream(args[0]), StandardCharsets.UTF_8));
        System.out.println(new java.util.TreeSet<>(p.stringPropertyNames()));
    }
}
"""


def test_flyway_reads_only_its_own_keys_from_a_conf_with_a_directive(tmp_path: Path) -> None:
    """Flyway loads a .sql.conf with java.util.Properties and refuses any key it does not
    know ("Unknown configuration property"): the directive line must be no key at all."""
    if subprocess.run(["java", "-version"], capture_output=True).returncode != 0:
        pytest.fail("java is needed to check what java.util.Properties reads (Flyway's way)")
    conf = tmp_path / "V1__x.sql.conf"
    conf.write_text(
        "executeInTransaction=false\n# choregarden: lockTimeout=10s, lockRetries=5\n"
        "! choregarden: statementTimeout=0\n"
    )
    (tmp_path / "Keys.java").write_text(PROPERTIES)
    keys = subprocess.run(
        ["java", str(tmp_path / "Keys.java"), str(conf)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    assert keys == "[executeInTransaction]"
    assert parse_script_config(conf.read_text(), path=conf.name).explicit == {
        "executeInTransaction"
    }


# --- ending idle blockers -----------------------------------------------------------------------


def test_terminate_ends_an_idle_in_transaction_blocker(project: SqlProject) -> None:
    with blocker(project) as conn:
        pid = conn.info.backend_pid
        time.sleep(0.3)
        text = ok(migrate(project, "--terminate-blockers-older-than", "0.2"))
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    assert f"ended a blocking session idle in a transaction: pid {pid}" in text
    assert columns(project) == ["id", "c"]


def test_terminate_leaves_an_active_blocker_alone(project: SqlProject) -> None:
    conn = psycopg.connect(
        **project.server.conninfo(project.database), autocommit=True, application_name="busy"
    )
    pid = conn.info.backend_pid
    ended: list[BaseException] = []

    def run() -> None:
        try:
            conn.execute("SELECT count(*), pg_sleep(120) FROM t")
        except psycopg.Error as error:
            ended.append(error)

    busy = threading.Thread(target=run)
    active = "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND state = 'active'"
    try:
        busy.start()
        deadline = time.monotonic() + 30
        while not project.query(active, [pid]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        result = migrate(
            project, "--terminate-blockers-older-than", "0", LOCK_TIMEOUT="300ms", LOCK_RETRIES=1
        )
        still_active = project.query(active, [pid])
        project.query("SELECT pg_cancel_backend(%s)", [pid])
        busy.join(timeout=60)
    finally:
        conn.close()
    assert result.returncode == 1, output(result)
    assert f"pid {pid} (application_name 'busy'" in result.stderr
    assert ", active, " in result.stderr
    assert "ended a blocking session" not in output(result)
    assert still_active == [(1,)]  # not ended: its query was still running
    assert isinstance(ended[0], psycopg.errors.QueryCanceled)  # by the test, afterwards
    assert columns(project) == ["id"]


def test_terminate_refuses_a_bad_value(project: SqlProject) -> None:
    result = migrate(project, "--terminate-blockers-older-than", "soon")
    assert result.returncode == 2, output(result)
    assert "'soon' is not a number of seconds" in result.stderr


def test_a_bad_lock_setting_is_a_usage_error(project: SqlProject) -> None:
    result = migrate(project, LOCK_TIMEOUT="5")
    assert result.returncode == 2, output(result)
    assert "SQL_MIGRATIONS['LOCK_TIMEOUT']='5' has no unit" in result.stderr
    assert columns(project) == ["id"]


# --- backwards: the undo files obey the same limits -----------------------------------------


def test_an_undo_file_is_retried_inside_djangos_transaction(project: SqlProject) -> None:
    """Going back, Django's executor opens the wrapper's transaction: tries are savepoints."""
    project.write("U2__add_c.sql", "ALTER TABLE t DROP c;\n")
    ok(migrate(project))
    with blocker(project) as conn:
        pid = conn.info.backend_pid
        text = ok(released_while_waiting(project, conn, "dbops", "V1__create_t"))
    assert "U2__add_c.sql: lock_timeout (500ms) reached waiting for AccessExclusiveLock on t" in (
        text
    )
    assert f"blocked by: pid {pid} (application_name 'blocker-app'" in text
    assert columns(project) == ["id"]
    assert [r[4] for r in project.history()] == ["V1__create_t.sql"]


# --- inside a caller's transaction: a savepoint per try ------------------------------------------


def test_rollback_to_savepoint_releases_the_locks_taken_after_it(project: SqlProject) -> None:
    """The design rests on it: PostgreSQL releases a subtransaction's locks on its abort."""
    with psycopg.connect(**project.server.conninfo(project.database)) as conn:
        conn.execute("SELECT 1")  # the transaction is open from here
        conn.execute("SAVEPOINT s")
        conn.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        locks = "SELECT count(*) FROM pg_locks WHERE pid = %s AND relation = 't'::regclass"
        assert project.query(locks, [conn.info.backend_pid]) == [(1,)]
        conn.execute("ROLLBACK TO SAVEPOINT s")
        assert project.query(locks, [conn.info.backend_pid]) == [(0,)]
        conn.rollback()


def test_a_file_inside_a_callers_transaction_is_retried_in_a_savepoint(
    project: SqlProject, tmp_path: Path
) -> None:
    """Django's executor runs a wrapper of several files in one atomic block: each try of a
    file is a savepoint there, and what ran before it in the transaction stays."""
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "V2__add_c.sql").write_text("ALTER TABLE t ADD c int;\n")
    (mf,) = discover(folder)
    said: list[str] = []
    with psycopg.connect(**project.server.conninfo(project.database)) as conn:
        guard = LockGuard(
            LockLimits(lock_timeout_ms=300, retries=20, backoff_ms=100, backoff_max_ms=200),
            pid=conn.info.backend_pid,
            connect=lambda: psycopg.connect(
                **project.server.conninfo(project.database), autocommit=True
            ),
            in_transaction=True,
            say=said.append,
        )
        cursor = conn.cursor()
        cursor.execute("CREATE TABLE before_it (id int)")  # earlier work of the transaction
        with blocker(project) as other:
            timer = release_after(other, 1.0)
            apply_file(cursor, SchemaHistory(cursor), mf, mf.path.read_text(), guard=guard)
            timer.join()
        conn.commit()
    assert said and "rolled back, no lock held" in said[0]
    assert columns(project) == ["id", "c"]
    assert columns(project, "before_it") == ["id"]
    assert [r[4] for r in project.history()][-1] == "V2__add_c.sql"


def test_literals_are_masked_in_a_blockers_query() -> None:
    assert _masked(f"SELECT * FROM users WHERE token = '{SECRET}' AND n = 42") == (
        "SELECT * FROM users WHERE token = ? AND n = ?"
    )
    assert _masked("SELECT $x$secret$x$, E'it''s', 1.5e3 FROM t2") == "SELECT $?$, ?, ? FROM t2"
    assert SECRET not in _masked(f"SELECT '{SECRET}")  # cut off by track_activity_query_size
    assert len(_masked("SELECT " + "a, " * 100)) == 60
