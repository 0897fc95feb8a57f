"""Point-in-time recovery with pgBackRest: `devdb start --with-wal-archive`, `backup pitr`.

Each test has a throwaway cluster of its own, archived by pgBackRest into its folder, as
`devdb start --with-wal-archive` leaves it. The recoveries run `manage.py` as an operator
would; the restored servers are stopped (and their folders removed) by the tests, or by
a reaper when the run is killed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from dbops.backups.pitr import parse_target, segments_to_salvage
from dbops.localdb import LocalCluster
from dbops.localdb.cluster import free_port
from dbops.localdb.files import make_private_folder
from dbops.localdb.reaper import destroy_with_this_process
from dbops.localdb.walarchive import STANZA, S3Repo, WalArchive
from tests.helpers import REPO, run_manage

EXAMPLE_TIME = "2026-12-06 10:15:00+00"
EXAMPLE_DIR = "/var/tmp/choregarden-pitr"
EXAMPLE_PORT = "5440"


def manage_env(cluster: LocalCluster) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "DATABASE_", "MIGRATION_", "PITR_"))
    }
    env.update(DJANGO_ENV="development", DEVDB_DIR=str(cluster.requested_dir), DB_POOL="false")
    return env


def archived_cluster() -> LocalCluster:
    """A started cluster with its WAL archive and first backup, destroyed with this process."""
    cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="choregarden-pitr-")))
    destroy_with_this_process(cluster)
    proc = run_manage("devdb", "start", "--with-wal-archive", env=manage_env(cluster))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "archive_mode turned on (server restarted); first full backup" in proc.stdout
    return cluster


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    made = archived_cluster()
    yield made
    made.destroy()
    with_parent = made.requested_dir
    if with_parent.exists():
        with_parent.rmdir()


@pytest.fixture
def new_dir() -> Iterator[Callable[[], Path]]:
    """New data folders for restored clusters, their servers stopped afterwards."""
    made: list[LocalCluster] = []

    def make() -> Path:
        # A folder of its own that the server's user can reach; `data` is created by pitr.
        holder = LocalCluster(Path(tempfile.mkdtemp(prefix="choregarden-pitr-copy-")))
        make_private_folder(holder.base_dir)
        destroy_with_this_process(holder)  # stops the copy's server if the run is killed
        made.append(holder)
        return holder.data_dir

    yield make
    for holder in made:
        holder.destroy()
        if holder.requested_dir.exists():
            holder.requested_dir.rmdir()


def sql(
    cluster: LocalCluster, query: str, *, port: int | None = None, role: str = "owner"
) -> list[tuple]:
    """Run `query` as the owner (who owns the project's tables, as in production)."""
    info = cluster.conninfo(role)
    if port is not None:
        info = replace(info, port=port)
    with psycopg.connect(**info, autocommit=True) as conn:
        cursor = conn.execute(query)
        return cursor.fetchall() if cursor.description else []


def server_time(cluster: LocalCluster) -> datetime:
    ((now,),) = sql(cluster, "SELECT clock_timestamp()")
    return now


def pitr(cluster: LocalCluster, *args: str) -> tuple[int, str, str]:
    proc = run_manage("backup", "pitr", *args, env=manage_env(cluster), timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


# -- 1. recover to a time -----------------------------------------------------------------------
def test_recovery_to_a_time_brings_back_what_was_there_then_and_nothing_after(
    cluster: LocalCluster, new_dir: Callable[[], Path]
) -> None:
    time.sleep(1.1)  # past the first backup's end, which pgBackRest records to the second
    sql(cluster, "CREATE TABLE ledger (id int PRIMARY KEY, note text)")
    for start in (1, 51):  # two transactions before T
        sql(
            cluster,
            f"INSERT INTO ledger SELECT i, 'before' FROM generate_series({start}, {start + 49}) i",
        )
    time.sleep(0.05)
    target = server_time(cluster)
    time.sleep(0.05)
    sql(cluster, "INSERT INTO ledger SELECT i, 'after' FROM generate_series(101, 150) i")
    sql(cluster, "CREATE TABLE later (id int)")
    sql(cluster, "DROP TABLE ledger")
    sql(cluster, "SELECT pg_switch_wal()", role="superuser")

    folder, port = new_dir(), free_port()
    code, out, err = pitr(
        cluster, "--to", target.isoformat(), "--cluster-dir", str(folder), "--port", str(port)
    )
    assert code == 0, out + err
    assert f"It runs read-only on 127.0.0.1:{port}" in out
    assert f"pg_ctl stop -D {folder} -m fast" in out
    assert "write: SET default_transaction_read_only = off" in out
    assert "pg_dump -Fc -d" in out

    rows = sql(cluster, "SELECT id, note FROM ledger ORDER BY id", port=port)
    assert rows == [(i, "before") for i in range(1, 101)]  # the dropped table is back
    assert sql(cluster, "SELECT to_regclass('later')", port=port) == [(None,)]
    assert sql(cluster, "SHOW archive_mode", port=port) == [("off",)]
    assert sql(cluster, "SELECT pg_is_in_recovery()", port=port) == [(False,)]
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        sql(cluster, "INSERT INTO ledger VALUES (999, 'write')", port=port)
    # The live cluster is untouched.
    assert sql(cluster, "SELECT to_regclass('ledger'), to_regclass('later')::text") == [
        (None, "later")
    ]
    # A session that says so, as the command prints, writes; the copy archives nothing.
    with psycopg.connect(**replace(cluster.conninfo("owner"), port=port), autocommit=True) as conn:
        conn.execute("SET default_transaction_read_only = off")
        conn.execute("INSERT INTO ledger VALUES (999, 'write')")
    assert sql(cluster, "SELECT count(*) FROM ledger", port=port) == [(101,)]
    ((archived,),) = sql(cluster, "SELECT archived_count FROM pg_stat_archiver", port=port)
    assert archived == 0


# -- 2. kill -9 mid-write, recover to the latest point ------------------------------------------
def wait_until_gone(data_dir: Path, timeout: float = 30) -> None:
    """Wait until no process works in `data_dir` (the killed postmaster's children)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and os.readlink(proc / "cwd") == str(data_dir):
                    busy.append(proc.name)
            except OSError:
                continue
        if not busy:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes still work in {data_dir}: {busy}")


def test_a_crash_mid_write_loses_no_committed_transaction(
    cluster: LocalCluster, new_dir: Callable[[], Path]
) -> None:
    sql(cluster, "CREATE TABLE events (id bigint PRIMARY KEY, payload text)")
    committed: list[int] = []  # appended only once COMMIT has returned
    stop_reason: list[BaseException] = []

    def writer() -> None:
        try:
            with psycopg.connect(**cluster.conninfo("owner")) as conn:
                # The commit returns once its WAL is flushed (the cluster's default is off).
                conn.execute("SET synchronous_commit = on")
                conn.commit()
                for n in range(1, 1_000_000):
                    conn.execute("INSERT INTO events VALUES (%s, repeat('x', 200))", [n])
                    conn.commit()
                    committed.append(n)
        except psycopg.Error as err:
            stop_reason.append(err)

    thread = threading.Thread(target=writer)
    thread.start()
    while len(committed) < 300:
        time.sleep(0.01)
    sql(
        cluster, "SELECT pg_switch_wal()", role="superuser"
    )  # some commits archived, later ones in pg_wal only
    while len(committed) < 600:
        time.sleep(0.01)
    pid = cluster.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=60)
    assert not thread.is_alive() and stop_reason, "the writer did not see the crash"
    wait_until_gone(cluster.data_dir)
    assert not cluster.running()

    # The segment being written was never archived: without it, commits would be lost.
    archive = WalArchive(cluster)
    archived_max = archive.info()["archive"][-1]["max"]
    unarchived = segments_to_salvage(cluster.data_dir / "pg_wal", archived_max)
    assert unarchived, "the crashed cluster had no WAL left to salvage"

    # The procedure of docs/operations.md, "Point-in-time recovery", after a crash.
    folder, port = new_dir(), free_port()
    outputs = run_procedure(
        "operations.md", "pitr-after-crash", cluster, folder=folder, port=port, target=None
    )
    assert f"Replayed {len(unarchived)} segment(s) not archived before the crash" in outputs[0]

    restored = [row[0] for row in sql(cluster, "SELECT id FROM events ORDER BY id", port=port)]
    assert set(committed) <= set(restored), "a committed transaction was lost"
    # At most the one whose COMMIT was in flight when the server died is there besides.
    assert set(restored) - set(committed) <= {len(committed) + 1}
    assert restored == list(range(1, len(restored) + 1))
    dump = folder.parent / "dumps" / "choregarden_dev-latest.dump"
    listing = cluster.run([cluster.binary("pg_restore"), "--list", str(dump)]).stdout
    assert "TABLE DATA public events" in listing


# -- 3. refusals --------------------------------------------------------------------------------
def test_refusals_make_nothing(cluster: LocalCluster, new_dir: Callable[[], Path]) -> None:
    time.sleep(1.1)  # past the first backup's end, which pgBackRest records to the second
    now = server_time(cluster)
    folder, port = new_dir(), free_port()
    busy = folder.parent / "busy"
    busy.mkdir()
    (busy / "something").write_text("keep me")
    live_port = cluster.state().port
    ok = ["--cluster-dir", str(folder), "--port", str(port)]
    cases = [
        (["--to", "2026-12-06 10:15:00", *ok], 2, r"has no time zone: .*2026-12-06 10:15:00\+00"),
        (["--to", "last tuesday", *ok], 2, r"is not a time: give it as"),
        (
            ["--cluster-dir", str(folder), "--port", str(port)],
            2,
            r"one of the arguments --to --latest",
        ),
        (["--to", (now + timedelta(hours=1)).isoformat(), *ok], 1, r"is in the future"),
        (
            ["--to", (now - timedelta(days=1)).isoformat(), *ok],
            1,
            r"is before the first backup ended \(.*\): nothing before it can be recovered",
        ),
        (
            ["--to", now.isoformat(), "--cluster-dir", str(busy), "--port", str(port)],
            1,
            r"exists and is not an empty folder: nothing is overwritten",
        ),
        (
            ["--latest", "--cluster-dir", str(cluster.data_dir / "pitr"), "--port", str(port)],
            1,
            r"is the live cluster's data folder .* never writes over the running cluster",
        ),
        (
            ["--latest", "--cluster-dir", str(folder), "--port", str(live_port)],
            1,
            rf"Port {live_port} is in use .*: give a free --port",
        ),
        (
            ["--latest", "--salvage-wal-from", str(cluster.data_dir), *ok],
            1,
            r"A server is running on .*: its WAL is still being written",
        ),
    ]
    for args, code, message in cases:
        returncode, out, err = pitr(cluster, *args)
        assert returncode == code, (args, out, err)
        assert re.search(message, err), (args, err)
        assert "Traceback" not in err
        assert not folder.exists(), args
    assert (busy / "something").read_text() == "keep me"
    assert not (cluster.data_dir / "pitr").exists()


def test_the_target_needs_a_zone() -> None:
    assert parse_target("2026-12-06 10:15:00+00") == datetime(2026, 12, 6, 10, 15, tzinfo=UTC)
    assert parse_target("2026-12-06T11:15:00+01:00") == datetime(2026, 12, 6, 10, 15, tzinfo=UTC)
    with pytest.raises(ValueError, match="no time zone"):
        parse_target("2026-12-06 10:15:00")


# -- 4. set-up: idempotent, status, configuration --------------------------------------------
def test_a_second_start_changes_nothing_and_status_shows_the_archive(
    cluster: LocalCluster,
) -> None:
    env = manage_env(cluster)
    archive = WalArchive(cluster)
    config = archive.config_file.read_text()
    pid = cluster.pid()
    proc = run_manage("devdb", "start", "--with-wal-archive", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WAL archive (pgBackRest, stanza choregarden" in proc.stdout
    assert "already on, nothing to do" in proc.stdout
    assert cluster.pid() == pid  # not restarted
    assert archive.config_file.read_text() == config
    assert len(archive.info()["backup"]) == 1  # no second backup
    # Everything pgBackRest writes stays in the cluster's folder.
    for key in ("repo1-path", "lock-path", "log-path", "spool-path"):
        (value,) = re.findall(rf"^{key}=(.*)$", config, re.M)
        assert Path(value).is_relative_to(cluster.base_dir), key
    assert f"pg1-path={cluster.data_dir}" in config
    (command,) = sql(cluster, "SHOW archive_command", role="superuser")[0]
    assert f"--config={archive.config_file}" in command and command.endswith("archive-push %p")

    proc = run_manage("devdb", "status", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)["archive"]
    assert status["backups"] == 1 and status["archive_mode"] == "on"
    assert status["failed"] == 0 and status["last_archived_wal"]

    misplaced = run_manage("devdb", "stop", "--with-wal-archive", env=env)
    assert misplaced.returncode == 2
    assert "--with-wal-archive does not go with `devdb stop`" in misplaced.stderr


def test_the_s3_repository_configuration(tmp_path: Path) -> None:
    """Written for pgBackRest's repo1-type=s3; not run against S3 here (see docs)."""
    cluster = LocalCluster(tmp_path / "devdb")
    env = {
        "PITR_REPO_S3_BUCKET": "choregarden-wal",
        "PITR_REPO_S3_REGION": "eu-west-1",
    }
    text = WalArchive(cluster, env).config_text()
    assert "repo1-type=s3\n" in text
    assert "repo1-s3-bucket=choregarden-wal\n" in text
    assert "repo1-s3-region=eu-west-1\n" in text
    assert "repo1-s3-endpoint=s3.eu-west-1.amazonaws.com\n" in text
    assert "repo1-s3-key-type=auto\n" in text  # the instance's or task's role
    assert "repo1-path=/choregarden\n" in text
    assert f"lock-path={cluster.base_dir / 'pitr' / 'lock'}\n" in text
    assert f"[{STANZA}]\n" in text
    keyed = WalArchive(
        cluster, {**env, "PITR_REPO_S3_KEY": "AKIA", "PITR_REPO_S3_KEY_SECRET": "s3cr3t"}
    ).config_text()
    assert "repo1-s3-key=AKIA\n" in keyed and "key-type" not in keyed
    with pytest.raises(Exception, match="PITR_REPO_S3_REGION"):
        S3Repo.from_env({"PITR_REPO_S3_BUCKET": "b"})
    with pytest.raises(Exception, match="both PITR_REPO_S3_KEY and PITR_REPO_S3_KEY_SECRET"):
        S3Repo.from_env({**env, "PITR_REPO_S3_KEY": "AKIA"})
    assert S3Repo.from_env({}) is None


# -- 5. the documented procedure ----------------------------------------------------------------
def procedure(page: str, name: str) -> list[str]:
    """The commands of the fenced block after `<!-- procedure: NAME -->` in docs/PAGE."""
    text = (REPO / "docs" / page).read_text()
    match = re.search(rf"<!-- procedure: {name} -->\n```sh\n(.*?)\n```", text, re.S)
    assert match, f"docs/{page} has no procedure {name}"
    return [line for line in match[1].splitlines() if line.strip()]


def run_procedure(
    page: str,
    name: str,
    cluster: LocalCluster,
    *,
    folder: Path,
    port: int,
    target: datetime | None,
) -> list[str]:
    """Run each command of a documented procedure on `cluster`, as it is written.

    The example values (the time, the folder, the port, the cluster's folder) become this
    test's. `manage.py` runs as the operator's shell would; psql, pg_dump and pg_ctl come
    from the PostgreSQL binaries' folder, `sudo -u postgres` is the cluster's user, and
    the owner's password is in PGPASSWORD. Returns each command's output.
    """
    # The dumps go where the cluster's user may write (psql and pg_dump run as it).
    dumps = folder.parent / "dumps"
    dumps.mkdir(exist_ok=True)
    cluster.chown(dumps)
    replacements = {
        "-f choregarden_dev-": f"-f {dumps}/choregarden_dev-",
        EXAMPLE_DIR: str(folder),
        EXAMPLE_PORT: str(port),
        "var/devdb/certs/ca.crt": str(cluster.ca_file),
        "var/devdb/data": str(cluster.data_dir),
    }
    if target is not None:
        replacements[EXAMPLE_TIME] = target.isoformat()
    outputs = []
    for line in procedure(page, name):
        for example, value in replacements.items():
            line = line.replace(example, value)
        argv = shlex.split(line, comments=True)
        if argv[:2] == ["python", "manage.py"]:
            proc = run_manage(*argv[2:], env=manage_env(cluster), timeout=300)
            assert proc.returncode == 0, (line, proc.stdout, proc.stderr)
            outputs.append(proc.stdout)
            continue
        if argv[:3] == ["sudo", "-u", "postgres"]:
            argv = argv[3:]  # cluster.run runs them as the cluster's user
        assert argv[0] in ("psql", "pg_dump", "pg_ctl"), line
        argv[0] = cluster.binary(argv[0])
        proc = cluster.run(
            argv, env_extra={"PGPASSWORD": cluster.credentials("owner")[1]}, check=False
        )
        assert proc.returncode == 0, (line, proc.stdout, proc.stderr)
        outputs.append(proc.stdout)
    return outputs


def test_the_documented_recovery_to_a_time(
    cluster: LocalCluster, new_dir: Callable[[], Path]
) -> None:
    time.sleep(1.1)  # past the first backup's end, which pgBackRest records to the second
    sql(cluster, "CREATE TABLE notes (id int)")
    sql(cluster, "INSERT INTO notes SELECT generate_series(1, 10)")
    target = server_time(cluster)
    sql(cluster, "DROP TABLE notes")
    folder, port = new_dir(), free_port()
    outputs = run_procedure(
        "backups.md", "pitr-to-time", cluster, folder=folder, port=port, target=target
    )
    assert "already on, nothing to do" in outputs[0]
    assert f"It runs read-only on 127.0.0.1:{port}" in outputs[1]
    assert re.search(r"public \| notes +\| table", outputs[2]), outputs[2]  # psql's \dt
    assert not cluster.server_running(folder)  # the procedure stopped it
    dump = folder.parent / "dumps" / "choregarden_dev-20261206T101500Z.dump"
    listing = cluster.run([cluster.binary("pg_restore"), "--list", str(dump)]).stdout
    assert "TABLE public notes" in listing  # the dropped table, in the dump of the copy


def test_salvage_stops_where_the_written_wal_ends(tmp_path: Path) -> None:
    """Segments after the archive's last, in order; a recycled or empty one ends them."""
    size = 16 * 1024 * 1024
    pg_wal = tmp_path / "pg_wal"
    pg_wal.mkdir()

    def segment(name: str, *, address_of: str | None = None) -> None:
        # The first page header: magic, info, timeline, the page's own address.
        of = address_of or name
        segno = int(of[8:16], 16) * (0x100000000 // size) + int(of[16:24], 16)
        header = struct.pack("<HHIQ", 0xD110, 2, int(name[:8], 16), segno * size)
        with (pg_wal / name).open("wb") as out:
            out.write(header)
            out.truncate(size)

    segment("000000010000000000000004")  # archived already
    segment("000000010000000000000005")
    segment("000000010000000000000006")
    segment("000000010000000000000007", address_of="000000010000000000000002")  # recycled
    segment("000000010000000000000008")
    (pg_wal / "000000010000000000000009").write_bytes(b"\0" * 64)  # preallocated, empty
    (pg_wal / "archive_status").mkdir()
    found = segments_to_salvage(pg_wal, "000000010000000000000004")
    assert [p.name for p in found] == ["000000010000000000000005", "000000010000000000000006"]
    assert segments_to_salvage(pg_wal, "000000010000000000000008") == []
