"""`manage.py partitions` on the real completions table: create, status, archive, restore."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from django.conf import settings
from django.core.files.storage import FileSystemStorage
from moto import mock_aws
from storages.backends.s3 import S3Storage

from dbops.partitions import ManifestError, PartitionError, archive, content, restore, tables
from dbops.partitions.manifest import read_month
from tests.helpers import REPO, run_manage

JANUARY = date(2019, 1, 1)
SCRATCH = ("restored_2019_01", "completions_2019_01_restored")


@pytest.fixture
def owner(pg_server: Any, transactional_db: None) -> Iterator[psycopg.Connection[Any]]:
    name = settings.DATABASES["default"]["NAME"]
    with psycopg.connect(**pg_server.conninfo(name), autocommit=True) as conn:
        yield conn
        # The months the test made (the migration made three back to six ahead of now).
        oldest = tables.month_add(tables.this_month(), -3)
        for part in tables.Partitions(conn).list():
            if part.month is not None and part.month < oldest:
                conn.execute(f"DROP TABLE {part.name}")
        conn.execute(f"DROP TABLE IF EXISTS {', '.join(SCRATCH)}")


def make_months(conn: psycopg.Connection[Any], first: str, last: str | None = None) -> None:
    """Create the partitions of months `first` to `last` (the schema's own function)."""
    conn.execute(
        "SELECT choregarden_create_completion_partitions(%s, %s)",
        [f"{first}-01", f"{last or first}-01"],
    )


@pytest.fixture
def connect(pg_server: Any) -> Callable[[], psycopg.Connection[Any]]:
    """Open another connection to the test database, as the owner (not autocommit)."""
    name = settings.DATABASES["default"]["NAME"]
    return lambda: psycopg.connect(**pg_server.conninfo(name))


@pytest.fixture
def env(manage_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**manage_env, "BACKUP_DIR": str(tmp_path / "store")}


def manage(env: dict[str, str], *args: str) -> Any:
    return run_manage("partitions", *args, env=env)


def ok(env: dict[str, str], *args: str) -> str:
    result = manage(env, *args)
    assert result.returncode == 0, result.stderr + result.stdout
    return str(result.stdout)


def refused(env: dict[str, str], *args: str, code: int = 1) -> str:
    """Run a command that must fail with `code` and one line of reason; return that line."""
    result = manage(env, *args)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    return lines[-1] if code == 2 else _one_line(lines)


def _one_line(lines: list[str]) -> str:
    assert len(lines) == 1, lines
    return lines[0]


def add_completions(conn: psycopg.Connection[Any], month: str, count: int) -> int:
    """Add `count` completions in `month` for a new household; return the household's id."""
    with conn.transaction():  # a household needs its owner in the same transaction
        user = conn.execute(
            "INSERT INTO users (cognito_sub, email) VALUES (gen_random_uuid()::text, "
            "gen_random_uuid()::text || '@example.com') RETURNING id"
        ).fetchone()[0]
        household = conn.execute(
            "INSERT INTO households (name) VALUES ('Archive test') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO household_members (household_id, user_id, role) VALUES (%s, %s, 'owner')",
            [household, user],
        )
    conn.execute(
        "INSERT INTO completions (household_id, completed_at, points, note) "
        "SELECT %s, %s::date + (n || ' seconds')::interval, n %% 10, "
        "CASE WHEN n %% 7 = 0 THEN E'multi\\nline, \"quoted\"' ELSE '' END "
        "FROM generate_series(1, %s) n",
        [household, f"{month}-01", count],
    )
    return int(household)


def table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()[0]


def attached(conn: psycopg.Connection[Any], name: str) -> bool:
    return conn.execute(
        "SELECT EXISTS (SELECT FROM pg_inherits WHERE inhrelid = to_regclass(%s))", [name]
    ).fetchone()[0]


def month_rows(conn: psycopg.Connection[Any], month: str, table: str = "completions") -> list[Any]:
    return conn.execute(
        f"SELECT * FROM {table} WHERE completed_at >= %s::date "  # the test's own names
        "AND completed_at < %s::date + interval '1 month' ORDER BY id",
        [f"{month}-01", f"{month}-01"],
    ).fetchall()


def month_content(conn: psycopg.Connection[Any], table: str) -> content.Content:
    with conn.transaction():
        return content.measure(conn, table, content.columns(conn, table))


def folder(env: dict[str, str], month: str = "2019-01") -> Path:
    return Path(env["BACKUP_DIR"]) / "archives" / "completions" / month


def newest_manifest(env: dict[str, str], month: str = "2019-01") -> dict[str, Any]:
    return json.loads(sorted(folder(env, month).glob("manifest-*.json"))[-1].read_text())


def part_files(env: dict[str, str], month: str = "2019-01") -> list[Path]:
    return sorted(folder(env, month).glob("part-*.csv.gz"))


def archived_ids(env: dict[str, str]) -> list[int]:
    """The ids of every row in every archive object of the storage, whatever its layout."""
    ids = []
    for path in Path(env["BACKUP_DIR"]).rglob("*.csv.gz"):
        with gzip.open(path, "rt", newline="") as text:
            ids += [int(row["id"]) for row in csv.DictReader(text)]
    return sorted(ids)


# --- create and status -----------------------------------------------------------------


def test_create_makes_missing_months_once_and_dry_run_makes_none(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    dry = ok(env, "create", "--from", "2019-01", "--months-ahead", "1", "--dry-run")
    assert "completions_y2019m01: would create" in dry
    assert not table_exists(owner, "completions_y2019m01")

    made = ok(env, "--json", "create", "--from", "2019-01", "--months-ahead", "1")
    created = [s["partition"] for s in json.loads(made)["steps"] if s["action"] == "create"]
    assert created[:3] == ["completions_y2019m01", "completions_y2019m02", "completions_y2019m03"]
    assert table_exists(owner, "completions_y2019m03")

    again = ok(env, "--json", "create", "--from", "2019-01", "--months-ahead", "1")
    assert [s for s in json.loads(again)["steps"] if s["action"] == "create"] == []


def test_status_lists_partitions_and_warns_about_rows_in_default(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    add_completions(owner, "1990-01", 3)  # no partition for 1990: lands in DEFAULT
    result = ok(env, "status")
    assert "completions_default" in result
    assert "DEFAULT partition holds 3 rows" in result
    data = json.loads(ok(env, "--json", "status"))
    assert data["default_rows"] == 3 and data["months_ahead"] >= 6


def test_status_counts_rows_written_since_the_last_analyze_and_sizes_for_people(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    make_months(owner, "2019-01")
    add_completions(owner, "2019-01", 250)  # never analysed: reltuples is -1
    data = json.loads(ok(env, "--json", "status"))
    row = next(p for p in data["partitions"] if p["name"] == "completions_y2019m01")
    assert row["rows"] == 250 and row["rows_exact"] is True, row
    assert row["bytes"] > 0 and re.fullmatch(r"\d+ (bytes|kB|MB)", row["size"]), row
    text = ok(env, "status")
    line = next(x for x in text.splitlines() if x.startswith("completions_y2019m01"))
    assert re.search(r"\s250\s+\d+ (bytes|kB|MB)$", line), line
    assert "~rows" not in text and "," not in line.split()[-2]  # no raw byte counts


def test_a_large_partitions_estimate_follows_growth_since_its_analyze(
    owner: psycopg.Connection[Any],
) -> None:
    parts = tables.Partitions(owner, exact_below_bytes=0)  # as if every one were large
    parts.create(JANUARY, JANUARY, execute=True)
    add_completions(owner, "2019-01", 2000)
    owner.execute("ANALYZE completions_y2019m01")
    add_completions(owner, "2019-01", 2000)  # the statistics still say 2,000
    found = next(p for p in parts.list() if p.name == "completions_y2019m01")
    assert found.rows_exact is False
    assert 3600 <= found.rows <= 4400, found  # scaled by the pages the table has now


# --- archive -------------------------------------------------------------------------


def test_archive_is_a_dry_run_unless_executed(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    make_months(owner, "2019-01")
    add_completions(owner, "2019-01", 10)
    result = ok(env, "archive", "--keep-months", "24")
    assert "DRY RUN" in result and "completions_y2019m01" in result
    assert owner.execute("SELECT count(*) FROM completions").fetchone()[0] == 10
    assert attached(owner, "completions_y2019m01")
    assert not Path(env["BACKUP_DIR"]).exists()  # nothing written either


def test_archive_exports_verifies_then_drops(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    make_months(owner, "2019-01", "2019-03")
    add_completions(owner, "2019-01", 500)
    add_completions(owner, "2019-02", 300)
    recent = owner.execute("SELECT count(*) FROM completions").fetchone()[0]
    before = month_rows(owner, "2019-01")

    result = ok(env, "archive", "--keep-months", "24", "--execute")
    assert "Done! Archived 3 partition(s) (800 rows)" in result
    for month in ("01", "02", "03"):  # 03 is empty, but past retention too
        assert not table_exists(owner, f"completions_y2019m{month}")
    this_month = tables.this_month()
    assert table_exists(owner, f"completions_y{this_month:%Y}m{this_month:%m}")  # kept
    assert owner.execute("SELECT count(*) FROM completions").fetchone()[0] == recent - 800

    manifest = newest_manifest(env)
    assert (manifest["version"], manifest["month"], manifest["table"]) == (
        1,
        "2019-01",
        "completions",
    )
    (part,) = manifest["parts"]
    assert part["rows"] == 500 and part["source"] == "completions_y2019m01"
    (stored,) = part_files(env)
    assert part["object"] == f"archives/completions/2019-01/{stored.name}"
    assert part["bytes"] == stored.stat().st_size
    assert newest_manifest(env, "2019-03")["parts"][0]["rows"] == 0
    with gzip.open(stored, "rt", newline="") as text:
        rows = list(csv.DictReader(text))
    assert len(rows) == 500 == len(before)
    assert any(r["note"] == 'multi\nline, "quoted"' for r in rows)  # CSV keeps the content
    assert [int(r["id"]) for r in rows] == sorted(r[0] for r in before)


def test_archives_and_backups_are_readable_by_their_owner_only(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    make_months(owner, "2019-01")
    add_completions(owner, "2019-01", 20)
    ok(env, "archive", "--keep-months", "24", "--execute")
    backed = run_manage("backup", "create", env={**env, "BACKUP_ENV": "test"})
    assert backed.returncode == 0, backed.stderr

    store = Path(env["BACKUP_DIR"])
    files = [p for p in store.rglob("*") if p.is_file()]
    folders = [store, *(p for p in store.rglob("*") if p.is_dir())]
    assert {p.suffix for p in files} >= {".gz", ".json", ".dump"}, files
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o600"}, files
    assert {oct(p.stat().st_mode & 0o777) for p in folders} == {"0o700"}, folders


def test_a_month_archived_twice_keeps_both_parts_and_restore_brings_every_row_back(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    """The issue's case: a backdated row of an archived month is archived in a second run."""
    make_months(owner, "2019-01")
    household = add_completions(owner, "2019-01", 500)
    archived = [row[0] for row in month_rows(owner, "2019-01")]
    ok(env, "archive", "--keep-months", "24", "--execute")
    assert archived_ids(env) == archived

    # A backdated completion lands in DEFAULT; status says so; it is moved as advised.
    owner.execute(
        "INSERT INTO completions (household_id, completed_at, points, note) "
        "VALUES (%s, '2019-01-15 12:00+00', 7, 'late')",
        [household],
    )
    assert "DEFAULT partition holds 1 rows" in ok(env, "status")
    with owner.transaction():
        january = "completed_at >= '2019-01-01+00' AND completed_at < '2019-02-01+00'"
        owner.execute(
            f"CREATE TEMP TABLE moved ON COMMIT DROP AS SELECT * FROM completions_default "
            f"WHERE {january}; DELETE FROM completions_default WHERE {january}"
        )
        make_months(owner, "2019-01")
        owner.execute("INSERT INTO completions SELECT * FROM moved")
    late = month_rows(owner, "2019-01")
    assert len(late) == 1
    objects = {p: p.read_bytes() for p in Path(env["BACKUP_DIR"]).rglob("*") if p.is_file()}

    second = ok(env, "archive", "--keep-months", "24", "--execute")
    assert archived_ids(env) == sorted([*archived, late[0][0]])  # every row, in some object
    assert {p: p.read_bytes() for p in objects} == objects  # nothing replaced
    assert "manifest-000002.json: 2 part(s), 501 rows archived" in second
    parts = newest_manifest(env)["parts"]
    assert [p["rows"] for p in parts] == [500, 1] and len(part_files(env)) == 2
    assert parts[0] == json.loads((folder(env) / "manifest-000001.json").read_text())["parts"][0]

    restored = ok(env, "restore", "2019-01")
    assert "Done! Restored 501 rows of 2019-01 from 2 part(s) into completions_y2019m01" in restored
    rows = month_rows(owner, "2019-01")
    assert len(rows) == 501 and late[0] in rows
    assert attached(owner, "completions_y2019m01")
    assert [p["restored_at"] is not None for p in newest_manifest(env)["parts"]] == [True, True]


def test_nothing_is_dropped_when_verification_fails_and_a_rerun_finishes(
    owner: psycopg.Connection[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = FileSystemStorage(location=tmp_path / "store")
    parts = tables.Partitions(owner)
    parts.create(JANUARY, JANUARY)
    add_completions(owner, "2019-01", 50)
    before = month_content(owner, "completions_y2019m01")

    def damaged(*args: Any) -> None:
        raise ManifestError("simulated: the stored object is damaged")

    monkeypatch.setattr(archive, "verify_part", damaged)
    (planned,) = archive.plan(parts, storage, [parts.find(JANUARY)])
    with pytest.raises(ManifestError):
        archive.run_month(parts, storage, planned)
    # Detached but kept, with every row; no manifest claims the written part.
    assert not attached(owner, "completions_y2019m01")
    assert month_content(owner, "completions_y2019m01") == before
    first = read_month(storage, "completions", JANUARY)
    assert first.parts == [] and len(first.unlisted) == 1

    monkeypatch.undo()
    (planned,) = archive.plan(parts, storage, [parts.find(JANUARY)])
    assert [s.action for s in planned.steps] == ["detach", "export", "verify", "manifest", "drop"]
    archive.run_month(parts, storage, planned)
    assert not table_exists(owner, "completions_y2019m01")
    done = read_month(storage, "completions", JANUARY)
    assert [p.rows for p in done.parts] == [50] and done.parts[0].content == before
    assert done.unlisted == first.unlisted  # the killed run's object: left alone, never listed


def test_the_dry_run_of_archive_says_what_the_real_run_does(
    owner: psycopg.Connection[Any],
    env: dict[str, str],
    connect: Callable[[], psycopg.Connection[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_months(owner, "2019-01", "2019-03")
    add_completions(owner, "2019-01", 300)
    add_completions(owner, "2019-02", 200)
    # February: detached by a run that was killed, then archived by one whose drop could
    # not get its lock: detached, rows intact, and listed in the manifest.
    owner.execute("ALTER TABLE completions DETACH PARTITION completions_y2019m02")
    storage = FileSystemStorage(location=env["BACKUP_DIR"])
    parts = tables.Partitions(owner)
    monkeypatch.setattr(archive, "LOCK_TIMEOUT", "200ms")
    (planned,) = archive.plan(parts, storage, [parts.find(date(2019, 2, 1))])
    with connect() as reader:
        reader.execute("SELECT count(*) FROM completions_y2019m02")  # holds ACCESS SHARE
        with pytest.raises(PartitionError, match="stays detached with all its rows"):
            archive.run_month(parts, storage, planned)
    assert not attached(owner, "completions_y2019m02")
    assert newest_manifest(env, "2019-02")["parts"][0]["rows"] == 200

    dry = json.loads(ok(env, "--json", "archive", "--keep-months", "24"))
    real = json.loads(ok(env, "--json", "archive", "--keep-months", "24", "--execute"))

    def what(steps: list[dict[str, Any]]) -> list[tuple[str, str, int | None]]:
        return [(s["partition"], s["action"], s["rows"]) for s in steps]

    assert what(dry["steps"]) == what(real["steps"])
    assert what(real["steps"]) == [
        ("completions_y2019m01", "detach", 300),
        ("completions_y2019m01", "export", 300),
        ("completions_y2019m01", "verify", 300),
        ("completions_y2019m01", "manifest", 300),
        ("completions_y2019m01", "drop", 300),
        ("completions_y2019m02", "detach", 200),
        ("completions_y2019m02", "verify", 200),  # already archived: read back, no new part
        ("completions_y2019m02", "drop", 200),
        ("completions_y2019m03", "detach", 0),
        ("completions_y2019m03", "export", 0),
        ("completions_y2019m03", "verify", 0),
        ("completions_y2019m03", "manifest", 0),
        ("completions_y2019m03", "drop", 0),
    ]
    leftover = [
        (s["partition"], s["action"]) == ("completions_y2019m02", "detach") for s in dry["steps"]
    ]
    assert [s["done"] for s in dry["steps"]] == leftover  # the dry run did nothing else
    assert len(part_files(env, "2019-02")) == 1 and newest_manifest(env, "2019-02")["version"] == 1


def test_the_dry_run_of_restore_says_what_the_real_run_does(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    make_months(owner, "2019-01")
    add_completions(owner, "2019-01", 120)
    before = month_rows(owner, "2019-01")
    ok(env, "archive", "--month", "2019-01", "--execute")
    for into in ([], ["--into", "restored_2019_01"]):
        dry = json.loads(ok(env, "--json", "restore", "2019-01", *into, "--dry-run"))
        assert not table_exists(owner, "completions_y2019m01")
        assert not table_exists(owner, "restored_2019_01")
        real = json.loads(ok(env, "--json", "restore", "2019-01", *into))

        def what(steps: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
            return [(s["partition"], s["action"], s["rows"], s["object"]) for s in steps]

        assert what(dry["steps"]) == what(real["steps"])
        assert (dry["target"], dry["mode"], dry["rows"]) == (real["target"], real["mode"], 120)
        assert month_rows(owner, "2019-01", real["target"]) == before
        if not into:
            assert [s["action"] for s in real["steps"]] == ["create", "load", "attach", "manifest"]
            assert attached(owner, "completions_y2019m01")
            ok(env, "archive", "--month", "2019-01", "--execute")  # and archive it again


# --- kill -9 ---------------------------------------------------------------------------


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "partitions", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGSTOP)  # stop it where it is, whatever the machine's speed
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def sessions_gone(conn: psycopg.Connection[Any]) -> None:
    """Wait until the server has ended the killed command's session (and its locks)."""
    for _ in range(500):
        left = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
            "'choregarden-partitions'"
        ).fetchone()[0]
        if not left:
            return
        time.sleep(0.02)
    pytest.fail("the killed command's session outlived it")


def wait_for_lock(conn: psycopg.Connection[Any], proc: subprocess.Popen[str], query: str) -> None:
    """Wait until the command's session waits for a lock in a statement like `query`.

    Up to a minute: the command exports and uploads first, which on a loaded machine (a
    test worker a core) can take longer than on a quiet one; it returns as soon as it waits.
    """
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        waiting = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
            "'choregarden-partitions' AND wait_event_type = 'Lock' AND query ILIKE %s",
            [query],
        ).fetchone()[0]
        if waiting:
            return
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.02)
    pytest.fail(f"the command never waited at {query}")


def test_kill_9_of_archive_at_each_step_loses_nothing(
    owner: psycopg.Connection[Any],
    env: dict[str, str],
    connect: Callable[[], psycopg.Connection[Any]],
) -> None:
    make_months(owner, "2019-01")
    add_completions(owner, "2019-01", 150_000)
    before = month_content(owner, "completions_y2019m01")
    args = ("archive", "--month", "2019-01", "--execute")

    # 1. Killed while it exports: the partition is detached and holds every row.
    proc = start(env, *args)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # "completions_y2019m01: 100000 lines exported"
        assert "lines exported" in line, line + proc.stderr.read()
    finally:
        kill_9(proc)
    sessions_gone(owner)
    assert not attached(owner, "completions_y2019m01")
    assert month_content(owner, "completions_y2019m01") == before
    assert not folder(env).exists() or not list(folder(env).glob("manifest-*"))
    assert "left by an interrupted archive" in ok(env, "status")

    # 2. Killed after its manifest, waiting to drop the table: still every row there.
    with connect() as reader:
        reader.execute("SELECT 1 FROM completions_y2019m01 LIMIT 1")  # ACCESS SHARE: DROP waits
        proc = start(env, *args)
        try:
            wait_for_lock(owner, proc, "DROP TABLE%")
        finally:
            kill_9(proc)
    sessions_gone(owner)
    assert month_content(owner, "completions_y2019m01") == before
    manifest = newest_manifest(env)
    assert manifest["version"] == 1 and [p["rows"] for p in manifest["parts"]] == [150_000]

    # 3. The next run finds the rows archived already: it drops the table, writes nothing.
    finished = ok(env, *args)
    assert "already archived in part-" in finished
    assert not table_exists(owner, "completions_y2019m01")
    assert newest_manifest(env) == manifest and len(part_files(env)) == 1

    # 4. Every row comes back.
    assert "Restored 150000 rows" in ok(env, "restore", "2019-01")
    assert month_content(owner, "completions_y2019m01") == before


def test_kill_9_of_restore_leaves_nothing_half_restored(
    owner: psycopg.Connection[Any],
    env: dict[str, str],
    connect: Callable[[], psycopg.Connection[Any]],
) -> None:
    make_months(owner, "2019-01")
    add_completions(owner, "2019-01", 2000)
    before = month_rows(owner, "2019-01")
    ok(env, "archive", "--month", "2019-01", "--execute")

    with connect() as blocker:
        blocker.execute("LOCK TABLE completions IN SHARE UPDATE EXCLUSIVE MODE")  # ATTACH waits
        proc = start(env, "restore", "2019-01")
        try:
            wait_for_lock(owner, proc, "%ATTACH PARTITION%")
        finally:
            kill_9(proc)
    sessions_gone(owner)
    assert not table_exists(owner, "completions_y2019m01")
    assert month_rows(owner, "2019-01") == []
    assert newest_manifest(env)["version"] == 1  # not marked restored

    assert "Restored 2000 rows" in ok(env, "restore", "2019-01")
    assert month_rows(owner, "2019-01") == before


# --- refusals: a pre-check says no, nothing changes, exit 1 with one line ---------------


def _bad_json(env: dict[str, str]) -> str:
    (folder(env) / "manifest-000002.json").write_text('{"format": 1, "parts": [')
    return "manifest-000002.json is not valid JSON"


def _missing_part(env: dict[str, str]) -> str:
    part = part_files(env)[0]
    part.rename(part.with_name("elsewhere.csv.gz"))
    return f"{part.name} is listed in the manifest of 2019-01 but missing"


def _shorter_part(env: dict[str, str]) -> str:
    part = part_files(env)[0]
    part.write_bytes(part.read_bytes()[:-10])
    return f"{part.name} is {part.stat().st_size} bytes where the manifest"


def _part_left_out(env: dict[str, str]) -> str:
    doc = newest_manifest(env)
    doc.update(version=2, parts=[])
    (folder(env) / "manifest-000002.json").write_text(json.dumps(doc))
    return "manifest-000002.json leaves out part-"


def _version_gap(env: dict[str, str]) -> str:
    doc = newest_manifest(env)
    doc.update(version=3)
    (folder(env) / "manifest-000003.json").write_text(json.dumps(doc))
    return "holds manifest versions [1, 3]: one is missing"


def _elsewhere(env: dict[str, str]) -> str:
    doc = newest_manifest(env)
    doc["parts"][0]["object"] = "archives/completions/2019-02/" + part_files(env)[0].name
    doc["version"] = 2
    (folder(env) / "manifest-000002.json").write_text(json.dumps(doc))
    return "parts[0].object = 'archives/completions/2019-02/part-"


@pytest.mark.parametrize(
    "damage", [_bad_json, _missing_part, _shorter_part, _part_left_out, _version_gap, _elsewhere]
)
def test_archive_and_restore_refuse_a_damaged_archive_before_changing_anything(
    owner: psycopg.Connection[Any], env: dict[str, str], damage: Any
) -> None:
    make_months(owner, "2019-01")
    add_completions(owner, "2019-01", 40)
    ok(env, "archive", "--month", "2019-01", "--execute")
    make_months(owner, "2019-01")
    add_completions(owner, "2019-01", 5)  # the month again: a second archive would be due
    before = month_rows(owner, "2019-01")
    expected = damage(env)
    listing = sorted(p.name for p in folder(env).iterdir())

    for args in (("archive", "--month", "2019-01"), ("archive", "--month", "2019-01", "--execute")):
        line = refused(env, *args)
        assert expected in line and "nothing was changed" in line, line
    line = refused(env, "restore", "2019-01", "--into", "restored_2019_01")
    assert expected in line, line
    assert attached(owner, "completions_y2019m01") and month_rows(owner, "2019-01") == before
    assert not table_exists(owner, "restored_2019_01")
    assert sorted(p.name for p in folder(env).iterdir()) == listing


def test_restore_refuses_rows_already_there_and_says_the_way_out(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    make_months(owner, "2019-01")
    household = add_completions(owner, "2019-01", 30)
    assert "no archive of completions 2019-01" in refused(env, "restore", "2019-01")
    ok(env, "archive", "--month", "2019-01", "--execute")
    owner.execute(
        "INSERT INTO completions (household_id, completed_at, points) "
        "VALUES (%s, '2019-01-20+00', 1)",
        [household],
    )
    line = refused(env, "restore", "2019-01")
    assert "completions already holds 1 rows of 2019-01 (in the DEFAULT partition)" in line
    assert "--into completions_2019_01_restored" in line
    assert "Restored 30 rows" in ok(env, "restore", "2019-01", "--into", SCRATCH[1])
    line = refused(env, "restore", "2019-01", "--into", SCRATCH[1])
    assert "already holds 30 rows of 2019-01" in line
    assert "one of its partitions" in refused(
        env, "restore", "2019-01", "--into", "completions_y2019m01"
    )


def test_a_damaged_part_is_refused_and_nothing_is_restored(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    make_months(owner, "2019-01")
    add_completions(owner, "2019-01", 300)
    ok(env, "archive", "--month", "2019-01", "--execute")
    (part,) = part_files(env)
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the content says it
    part.write_bytes(bytes(data))

    for args in (("restore", "2019-01", "--dry-run"), ("restore", "2019-01")):
        line = refused(env, *args)
        assert part.name in line and "nothing was changed" in line, line
        assert not table_exists(owner, "completions_y2019m01")
        assert month_rows(owner, "2019-01") == []


def test_rows_whose_household_is_gone_restore_into_a_table_of_their_own(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    make_months(owner, "2019-01")
    household = add_completions(owner, "2019-01", 25)
    before = month_rows(owner, "2019-01")
    ok(env, "archive", "--month", "2019-01", "--execute")
    owner.execute("DELETE FROM households WHERE id = %s", [household])

    line = refused(env, "restore", "2019-01")
    assert "refer to rows that are gone since" in line and "--into" in line, line
    assert not table_exists(owner, "completions_y2019m01")
    assert newest_manifest(env)["version"] == 1

    ok(env, "restore", "2019-01", "--into", SCRATCH[0])
    assert month_rows(owner, "2019-01", SCRATCH[0]) == before
    assert newest_manifest(env)["version"] == 1  # the parts are still only in the archive


def test_archive_refuses_months_it_must_not_touch(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    month = tables.month_add(tables.this_month(), -3)
    line = refused(env, "archive", "--month", f"{month:%Y-%m}")
    assert f"{month:%Y-%m} is within the 24-month retention" in line
    assert "no partition of 2019-05 to archive" in refused(env, "archive", "--month", "2019-05")


def test_one_archive_or_restore_at_a_time(
    owner: psycopg.Connection[Any],
    env: dict[str, str],
    connect: Callable[[], psycopg.Connection[Any]],
) -> None:
    make_months(owner, "2019-01")
    add_completions(owner, "2019-01", 10)
    with connect() as other:  # as a running archive holds it
        other.execute("SELECT pg_advisory_lock(hashtext('choregarden-partitions:completions'))")
        for args in (("archive", "--execute"), ("restore", "2019-01")):
            assert "another `partitions archive` or `restore`" in refused(env, *args)
        assert "DRY RUN" in ok(env, "archive")  # reading is fine
    assert attached(owner, "completions_y2019m01") and not Path(env["BACKUP_DIR"]).exists()


@pytest.mark.parametrize(
    "args",
    [
        ("archive", "--month", "2019-1"),
        ("archive", "--month", "2019-13"),
        ("archive", "--month", "19-01"),
        ("archive", "--month", "2019-01-05"),
        ("archive", "--month", " 2019-01"),
        ("archive", "--month", "2999-01"),
        ("archive", "--keep-months", "0"),
        ("archive", "--keep-months", "twelve"),
        ("create", "--months-ahead", "-1"),
        ("create", "--from", "2019/01"),
        ("restore", "2019-00"),
        ("restore", "next-month"),
        ("restore", "2019-01", "--into", "Robert'); DROP TABLE completions;--"),
        ("restore",),
        ("--table", "users", "status"),
    ],
)
def test_bad_arguments_are_usage_errors(env: dict[str, str], args: tuple[str, ...]) -> None:
    line = refused(env, *args, code=2)
    assert line.startswith("manage.py partitions") and "error:" in line, line


def test_the_partitioned_tables_come_from_settings(
    owner: psycopg.Connection[Any], settings: Any
) -> None:
    # dbops names no table of the chores app: settings do, read when the tools run.
    assert tables.Partitions(owner).key == "completed_at"
    settings.PARTITIONED_TABLES = {"reminders": "sent_at", "completions": "completed_at"}
    assert tables.Partitions(owner).table == "reminders"
    assert tables.Partitions(owner, "completions").key == "completed_at"
    del settings.PARTITIONED_TABLES
    with pytest.raises(
        PartitionError, match=r"no table is not a partitioned table.*PARTITIONED_TABLES"
    ):
        tables.open_partitions()


def test_a_future_month_is_refused_for_archive_and_restore(env: dict[str, str]) -> None:
    month = f"{tables.this_month():%Y-%m}"
    for args in (("archive", "--month", month), ("restore", month)):
        assert "is not over yet" in refused(env, *args, code=2)


def test_an_unreachable_database_is_one_line_without_the_password(
    env: dict[str, str], pg_server: Any
) -> None:
    down = {**env, "MIGRATION_DATABASE_URL": pg_server.url("nope").replace(
        f":{pg_server.port}/", ":1/"
    )}  # fmt: skip
    line = refused(down, "status")
    assert "cannot connect to the database" in line and "(MIGRATION_DATABASE_URL)" in line
    assert pg_server.password not in line


# --- S3, and archives of an earlier release -------------------------------------------


def test_on_s3_each_archive_of_a_month_is_an_object_of_its_own_and_restore_reads_all(
    owner: psycopg.Connection[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    parts = tables.Partitions(owner)
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="cg-backups")
        storage = S3Storage(
            bucket_name="cg-backups", region_name="us-east-1", location="prod",
            default_acl=None, file_overwrite=True,
            object_parameters={"ServerSideEncryption": "AES256"},
        )  # fmt: skip
        before: list[Any] = []
        for count in (400, 3):  # the month, then rows of it that arrived after its archive
            make_months(owner, "2019-01")
            add_completions(owner, "2019-01", count)
            before = [*before, *month_rows(owner, "2019-01")]
            for planned in archive.plan(parts, storage, [parts.find(JANUARY)]):
                archive.run_month(parts, storage, planned)
            assert not table_exists(owner, "completions_y2019m01")

        listed = s3.list_objects_v2(Bucket="cg-backups", Prefix="prod/archives/")["Contents"]
        keys = sorted(o["Key"].removeprefix("prod/archives/completions/2019-01/") for o in listed)
        assert [k.split("-")[0] for k in keys] == ["manifest", "manifest", "part", "part"]
        month = read_month(storage, "completions", JANUARY)
        assert [p.rows for p in month.parts] == [400, 3] and month.version == 2
        head = s3.head_object(Bucket="cg-backups", Key=f"prod/{month.parts[0].key}")
        assert head["ServerSideEncryption"] == "AES256"

        plan = restore.plan(parts, storage, JANUARY, None, read_back=True)
        restore.run(parts, storage, plan)
        assert month_rows(owner, "2019-01") == sorted(before)
        assert all(not p.live for p in read_month(storage, "completions", JANUARY).parts)


def test_a_month_archived_by_an_earlier_release_restores_and_is_archived_again(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    make_months(owner, "2019-01")
    add_completions(owner, "2019-01", 60)
    before = month_rows(owner, "2019-01")
    # The earlier release's layout: one object per month and its manifest, side by side.
    old = Path(env["BACKUP_DIR"]) / "archives" / "completions" / "completions_y2019m01.csv.gz"
    old.parent.mkdir(parents=True)
    with owner.cursor().copy(
        "COPY completions_y2019m01 TO STDOUT WITH (FORMAT csv, HEADER)"
    ) as copy, gzip.open(old, "wb") as gz:  # fmt: skip
        for chunk in copy:
            gz.write(chunk)
    data = old.read_bytes()
    manifest = {
        "table": "completions", "partition": "completions_y2019m01", "month": "2019-01",
        "rows": 60, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
        "object": "archives/completions/completions_y2019m01.csv.gz",
        "exported_at": "2024-03-01T03:00:00+00:00",
    }  # fmt: skip
    old.with_name("completions_y2019m01.manifest.json").write_text(json.dumps(manifest))
    owner.execute("DROP TABLE completions_y2019m01")

    dry = ok(env, "restore", "2019-01", "--dry-run")
    assert "completions_y2019m01.csv.gz: 60 rows, sha256 and rows match" in dry
    ok(env, "restore", "2019-01")
    assert month_rows(owner, "2019-01") == before

    ok(env, "archive", "--month", "2019-01", "--execute")
    parts = newest_manifest(env)["parts"]
    assert [(p["object"].rsplit("/", 1)[-1][:5], p["rows"]) for p in parts] == [
        ("compl", 60),
        ("part-", 60),
    ]
    assert parts[0]["restored_at"] and not parts[1]["restored_at"]
    assert old.read_bytes() == data  # the earlier release's object stays as it was
    ok(env, "restore", "2019-01")
    assert month_rows(owner, "2019-01") == before
