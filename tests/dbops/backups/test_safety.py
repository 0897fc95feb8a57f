"""The destructive backup commands: prune and restore --force refuse first, dry runs say
exactly what the real run does, manifests are read strictly, and kill -9 loses nothing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings as django_settings
from django.core.files.storage import FileSystemStorage
from django.core.management import CommandError
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from dbops.backups.fingerprint import fingerprint
from dbops.backups.names import dump_name, partial_name
from dbops.backups.signing import sign
from dbops.backups.store import complete_backups, scan
from tests.dbops.backupkit import ENV, run, storages_with
from tests.helpers import REPO, run_manage

NOW = datetime.now(UTC).replace(microsecond=0)


def fake_backup(root: Path, age_days: float, body: bytes = b"PGDMP fake dump") -> str:
    """A dump and its manifest as `backup create` writes them (prune reads no more)."""
    created = (NOW - timedelta(days=age_days)).replace(microsecond=0)
    name = dump_name(ENV, created)
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_bytes(body)
    manifest = {
        "name": name, "env": ENV, "created_at": created.isoformat(), "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }  # fmt: skip
    (root / f"{name}.json").write_text(
        json.dumps(sign(manifest, django_settings.BACKUP_SIGNING_KEY.encode()))
    )
    return name


def prune(root: Path, *args: str) -> dict[str, Any]:
    with override_settings(
        STORAGES=storages_with(FileSystemStorage(location=root)), BACKUP_ENV=ENV
    ):
        return json.loads(run("prune", "--json", *args))


# --- prune: the newest good backups stay, whatever their age ------------------------------


def test_prune_keeps_the_newest_good_backups_however_old(tmp_path: Path) -> None:
    names = [fake_backup(tmp_path, age) for age in (30, 20, 10, 9)]

    pruned = prune(tmp_path, "--keep-min", "2")

    assert pruned["good"] == [names[3], names[2]]
    assert pruned["deleted"] == [names[0] + ".json", names[0], names[1] + ".json", names[1]]
    assert sorted(os.listdir(tmp_path)) == sorted([*names[2:], *(n + ".json" for n in names[2:])])


def test_a_backup_whose_bytes_do_not_match_its_manifest_is_not_a_good_one(tmp_path: Path) -> None:
    oldest, good, corrupt = (fake_backup(tmp_path, age) for age in (30, 20, 10))
    (tmp_path / corrupt).write_bytes(b"PGDMP fake dumq")  # same size, other bytes

    pruned = prune(tmp_path, "--keep-min", "1")

    assert pruned["good"] == [good]
    assert pruned["bad"] == {corrupt: f"the sha256 of {corrupt} does not match its manifest"}
    assert [b.name for b in complete_backups(FileSystemStorage(location=tmp_path), ENV)] == [good]
    assert not (tmp_path / oldest).exists()


def test_prune_refuses_to_delete_backups_while_too_few_are_good(tmp_path: Path) -> None:
    names = [fake_backup(tmp_path, age) for age in (30, 20)]
    for name in names:
        (tmp_path / name).write_bytes(b"PGDMP fake dumq")
    partial = tmp_path / partial_name(dump_name(ENV, NOW), "gone-host", 1)
    partial.write_bytes(b"PGDMP half")
    before = sorted(os.listdir(tmp_path))

    for args in (["--dry-run"], []):
        with pytest.raises(
            CommandError,
            match=r"Refusing to prune: only 0 good test backup\(s\), fewer than the 1 to keep "
            r".*would delete 2 older backup\(s\).*Nothing was deleted\. Not good: .*sha256",
        ):
            prune(tmp_path, "--keep-min", "1", *args)
        assert sorted(os.listdir(tmp_path)) == before


# --- manifests: a bad one is refused with its name, never taken as a default ---------------


TAMPERED = {
    "size is a string": lambda m: {**m, "size": str(m["size"])},
    "another backup's": lambda m: {**m, "name": dump_name(ENV, NOW - timedelta(days=3))},
    "no sha256": lambda m: {k: v for k, v in m.items() if k != "sha256"},
    "a date moved": lambda m: {**m, "created_at": "2020-01-01T00:00:00+00:00"},
    "not JSON": None,
}


@pytest.mark.parametrize("how", TAMPERED)
def test_a_tampered_manifest_is_refused_naming_the_object(
    tmp_path: Path, how: str, capsys: Any
) -> None:
    older = fake_backup(tmp_path, 2)
    name = fake_backup(tmp_path, 1)
    path = tmp_path / f"{name}.json"
    change = TAMPERED[how]
    path.write_text(
        "{not json" if change is None else json.dumps(change(json.loads(path.read_text())))
    )
    storage = FileSystemStorage(location=tmp_path)

    assert name in scan(storage, ENV).damaged
    with override_settings(STORAGES=storages_with(storage), BACKUP_ENV=ENV):
        assert "1 complete test backup(s)" in run("list")
        assert f"damaged: {name}.json" in capsys.readouterr().err
        with pytest.raises(CommandError, match=rf"Backup {name} is not restored: {name}\.json"):
            run("restore", name, "--database", "anything", "--dry-run")
        newest_damaged = rf"newest backup {name} is damaged.*the older {older}"
        with pytest.raises(CommandError, match=newest_damaged):
            run("restore", "latest", "--database", "anything", "--dry-run")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["restore", "latest", "--database", "bad name"], "'bad name' is not a database name"),
        (["restore", "latest", "--database", "Prod"], "'Prod' is not a database name"),
        (["restore", "latest", "--database", "template1"], "PostgreSQL's own"),
        (["restore", "../etc/passwd", "--database", "x"], "'../etc/passwd' is not a backup name"),
        (
            ["restore", "choregarden-staging-20260101T000000Z.dump", "--database", "x"],
            "a backup of environment 'staging', and this is 'test'",
        ),
        (["restore", "latest", "--database", "x", "--replace-live"], "goes with --force"),
        (["prune", "--keep-min", "0"], "argument --keep-min: 0 is not at least 1"),
        (["prune", "--keep-days", "0"], "argument --keep-days: 0 is not at least 1"),
    ],
)
def test_bad_arguments_are_refused_with_one_line(
    settings_folder: Any, argv: list[str], message: str
) -> None:
    with pytest.raises(CommandError, match=message):
        run(*argv)


# --- prune's dry run lists exactly what the real run deletes ------------------------------

KINDS = ["good", "corrupt", "no manifest", "bad manifest", "orphan manifest", "dead partial"]


def lay_out(root: Path, entries: list[tuple[str, int]]) -> list[str]:
    """Write the entries; return the names of the good backups, newest first."""
    good = []
    for n, (kind, age) in enumerate(entries):
        age_days = age + n / 1000  # distinct names
        if kind == "dead partial":
            name = dump_name(ENV, NOW - timedelta(days=age_days))
            root.mkdir(parents=True, exist_ok=True)
            (root / partial_name(name, "gone-host", 1)).write_bytes(b"PGDMP half")
            continue
        name = fake_backup(root, age_days)
        if kind == "good":
            good.append(name)
        elif kind == "corrupt":
            (root / name).write_bytes(b"PGDMP fake dumq")
        elif kind == "no manifest":
            (root / f"{name}.json").unlink()
        elif kind == "bad manifest":
            (root / f"{name}.json").write_text("[]")
        elif kind == "orphan manifest":
            (root / name).unlink()
    return sorted(good, reverse=True)


@settings(
    max_examples=30,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    entries=st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 20)), max_size=8),
    keep_min=st.integers(1, 3),
)
def test_the_dry_run_lists_exactly_what_prune_deletes(
    entries: list[tuple[str, int]], keep_min: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "b"
        good = lay_out(root, entries)
        root.mkdir(exist_ok=True)
        before = set(os.listdir(root))
        try:
            dry = prune(root, "--dry-run", "--keep-min", str(keep_min))
        except CommandError as refused:
            with pytest.raises(CommandError) as real:
                prune(root, "--keep-min", str(keep_min))
            assert str(real.value) == str(refused)
            assert set(os.listdir(root)) == before
            return
        assert set(os.listdir(root)) == before
        real = prune(root, "--keep-min", str(keep_min))
        after = set(os.listdir(root))

        assert real["deleted"] == dry["deleted"]
        assert before - after == set(real["deleted"])
        assert set(good[:keep_min]) <= after  # the newest good backups stay
        for name in before:  # and no manifest outlives its dump
            if name.endswith(".dump") and name + ".json" in before:
                assert name in after or name + ".json" not in after


# --- kill -9 of a real `manage.py backup prune` midway -----------------------------------


def killed_at(step: str, count: int, match: str, env: dict[str, str], *args: str) -> int:
    """Run `manage.py ARGS` under tests/killpoint.py; return its exit status."""
    proc = subprocess.run(
        [sys.executable, "tests/killpoint.py", step, str(count), match, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return proc.returncode


@pytest.mark.parametrize("deletes_done", [0, 1, 2, 5])
def test_a_prune_killed_midway_leaves_a_consistent_listing(
    manage_env: dict[str, str], tmp_path: Path, deletes_done: int
) -> None:
    root = tmp_path / "b"
    names = [fake_backup(root, age) for age in (40, 30, 20, 10, 1)]
    env = dict(manage_env, BACKUP_DIR=str(root), BACKUP_ENV=ENV)
    reference = tmp_path / "reference"
    shutil.copytree(root, reference)
    expected_deleted = prune(reference, "--keep-min", "1")["deleted"]
    assert len(expected_deleted) == 8

    status = killed_at(
        "django.core.files.storage:FileSystemStorage.delete",
        deletes_done + 1,
        "choregarden-",
        env,
        "backup", "prune", "--keep-min", "1",
    )  # fmt: skip

    assert status == -signal.SIGKILL
    storage = FileSystemStorage(location=root)
    listing = scan(storage, ENV)
    assert listing.damaged == {}  # never a manifest without its dump
    assert len(os.listdir(root)) == 10 - deletes_done
    assert names[-1] in {b.name for b in listing.complete}
    for backup in listing.complete:
        assert (root / backup.name).read_bytes() == b"PGDMP fake dump"

    again = run_manage("backup", "prune", "--keep-min", "1", env=env)
    assert again.returncode == 0, again.stderr
    assert sorted(os.listdir(root)) == sorted(os.listdir(reference))


# --- restore: the target is replaced by a swap, after pre-checks that can refuse ---------


def databases(project_db: Any, like: str) -> list[str]:
    with psycopg.connect(**project_db) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1", [like]
        ).fetchall()
    return [row[0] for row in rows]


def database_acl_and_comment(project_db: Any, name: str) -> tuple[Any, ...]:
    with psycopg.connect(**project_db) as conn:
        row = conn.execute(
            "SELECT datacl::text[], shobj_description(oid, 'pg_database'), datconnlimit "
            "FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
    return tuple(row) if row else ()


def mark(project_db: Any, name: str, note: str) -> None:
    """Make `name` differ from the backup: one row in a table of its own."""
    with psycopg.connect(**project_db.on(name), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS restore_mark (note text)")
        conn.execute("INSERT INTO restore_mark VALUES (%s)", [note])


def test_restore_force_swaps_the_database_in_and_keeps_its_privileges(
    project_db: Any, settings_folder: Any, scratch: str, pg_server: Any
) -> None:
    run("create")
    run("restore", "latest", "--database", scratch)
    with psycopg.connect(**project_db, autocommit=True) as conn:
        ident = sql.Identifier(scratch)
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(ident))
        conn.execute(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                ident, sql.Identifier(pg_server.app_user)
            )
        )
        conn.execute(sql.SQL("COMMENT ON DATABASE {} IS 'the copy'").format(ident))
        conn.execute(sql.SQL("ALTER DATABASE {} CONNECTION LIMIT 7").format(ident))
        conn.execute(sql.SQL('ALTER DATABASE {} SET search_path = "$user", public').format(ident))
    mark(project_db, scratch, "written after the backup")
    properties = database_acl_and_comment(project_db, scratch)

    out = json.loads(run("restore", "latest", "--database", scratch, "--force", "--json"))

    assert out["target"] == "replaced"
    assert out["steps"] == ["check", "create", "restore", "verify", "copy", "swap", "drop"]
    assert fingerprint(project_db.on(scratch)) == fingerprint(project_db)  # no restore_mark
    assert database_acl_and_comment(project_db, scratch) == properties
    assert databases(project_db, f"{scratch}_%") == []
    with psycopg.connect(**project_db.on(scratch)) as conn:
        assert conn.execute("SHOW search_path").fetchone() == ('"$user", public',)


def test_restore_refuses_the_projects_own_database_and_connected_sessions(
    project_db: Any, settings_folder: Any, scratch: str, pg_server: Any
) -> None:
    run("create")
    with pytest.raises(CommandError, match=r"project's own database .*--replace-live"):
        run("restore", "latest", "--database", project_db.dbname, "--force")

    run("restore", "latest", "--database", scratch)
    mark(project_db, scratch, "still here")
    with psycopg.connect(**pg_server.conninfo(scratch, role="app")) as app:
        pid = app.info.backend_pid
        for args in (["--dry-run"], []):
            with pytest.raises(
                CommandError,
                match=rf"1 session\(s\) are connected to '{scratch}': pid {pid} "
                rf"\({pg_server.app_user}, .*disconnects nobody",
            ):
                run("restore", "latest", "--database", scratch, "--force", *args)
        assert app.execute("SELECT note FROM restore_mark").fetchall() == [("still here",)]
    assert databases(project_db, f"{scratch}_%") == []


def test_restore_refuses_a_damaged_object_before_touching_the_target(
    project_db: Any, settings_folder: Any, scratch: str
) -> None:
    manifest = json.loads(run("create", "--json"))
    run("restore", "latest", "--database", scratch)
    mark(project_db, scratch, "kept")
    before = fingerprint(project_db.on(scratch))
    path = Path(settings_folder.location) / manifest["name"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    with pytest.raises(CommandError, match=r"does not match its manifest"):
        run("restore", "latest", "--database", scratch, "--force", "--dry-run")
    with pytest.raises(CommandError, match=r"pg_restore|does not match its manifest"):
        run("restore", "latest", "--database", scratch, "--force")

    assert fingerprint(project_db.on(scratch)) == before
    assert databases(project_db, f"{scratch}_%") == []


@pytest.mark.parametrize("target", ["absent", "empty", "full"])
def test_the_dry_run_of_a_restore_says_what_the_real_run_does(
    project_db: Any, settings_folder: Any, scratch: str, target: str
) -> None:
    run("create")
    if target != "absent":
        with psycopg.connect(**project_db, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    if target == "full":
        mark(project_db, scratch, "old")
    args = ["restore", "latest", "--database", scratch, "--force", "--json"]
    all_before = databases(project_db, "%")

    dry = json.loads(run(*args, "--dry-run"))
    assert databases(project_db, "%") == all_before
    real = json.loads(run(*args))

    assert (dry["target"], dry["steps"]) == (real["target"], real["steps"])
    assert fingerprint(project_db.on(scratch)) == fingerprint(project_db)


# --- kill -9 of a real `manage.py backup restore --force` at several points --------------


def child_pg_restore(parent: int) -> int | None:
    """The pid of the pg_restore that loads the data (not `pg_restore --list`)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError):
            comm, rest = stat.read_text().split(") ", 1)
            cmdline = (stat.parent / "cmdline").read_bytes()
            if (
                comm.endswith("(pg_restore")
                and int(rest.split()[1]) == parent
                and (b"--single-transaction" in cmdline or b"--jobs=" in cmdline)
            ):
                return int(stat.parent.name)
    return None


@pytest.fixture
def replaced(
    project_db: Any, settings_folder: Any, scratch: str, manage_env: dict[str, str]
) -> Any:
    """A backup, and a non-empty target that differs from it: (target, env, before)."""
    with psycopg.connect(**project_db, autocommit=True) as conn:
        # ~2 MB that does not compress: pg_restore is still loading it when it is caught.
        conn.execute(
            "CREATE TABLE backup_filler AS SELECT i, decode(md5(random()::text) || "
            "md5(random()::text), 'hex') AS noise FROM generate_series(1, 60000) i"
        )
    run("create")
    run("restore", "latest", "--database", scratch)
    mark(project_db, scratch, "the old database")
    env = dict(manage_env, BACKUP_DIR=settings_folder.location, BACKUP_ENV=ENV)
    return scratch, env, fingerprint(project_db.on(scratch))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_restore_killed_during_pg_restore_leaves_the_old_database(
    project_db: Any, replaced: Any
) -> None:
    target, env, before = replaced
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "manage.py"), "backup", "restore", "latest",
         "--database", target, "--force"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        pg_restore = None
        for _ in range(1200):
            pg_restore = child_pg_restore(proc.pid)
            if pg_restore and databases(project_db, f"{target}_restore_%"):
                break
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.02)
        else:
            pytest.fail("pg_restore never started")
        os.kill(pg_restore, signal.SIGSTOP)  # midway, whatever the machine's speed
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pg_restore}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pg_restore}").exists(), "pg_restore outlived the restore"
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()

    assert fingerprint(project_db.on(target)) == before
    left = databases(project_db, f"{target}_%")
    assert len(left) == 1 and "_restore_" in left[0]

    again = run_manage("backup", "restore", "latest", "--database", target, "--force", env=env)
    assert again.returncode == 0, again.stderr
    assert f"Left by an interrupted restore: database {left[0]} (an unfinished" in again.stderr
    assert fingerprint(project_db.on(target)) == fingerprint(project_db)
    drop_all(project_db, left)


def drop_all(project_db: Any, names: list[str]) -> None:
    from dbops.connections.databases import drop_database

    for name in names:
        drop_database(project_db, name)


@pytest.mark.parametrize(
    ("step", "match", "holds"),
    [
        ("dbops.backups.targets:copy_properties", "", "old"),
        ("dbops.backups.targets:swap", "", "old"),
        ("dbops.connections.databases:drop_database", "_old_", "new"),
    ],
)
def test_a_restore_killed_at_each_step_keeps_a_whole_database_under_the_name(
    project_db: Any, replaced: Any, step: str, match: str, holds: str
) -> None:
    target, env, before = replaced
    status = killed_at(
        step, 1, match, env, "backup", "restore", "latest", "--database", target, "--force"
    )

    assert status == -signal.SIGKILL
    now = fingerprint(project_db.on(target))
    assert now == (before if holds == "old" else fingerprint(project_db))
    left = databases(project_db, f"{target}_%")
    assert len(left) == 1
    if holds == "new":  # killed right after the swap: the old database is beside it
        assert "_old_" in left[0] and fingerprint(project_db.on(left[0])) == before
    else:
        assert "_restore_" in left[0]
    drop_all(project_db, left)


# --- Exit codes: each failure is status 1 and one line -----------------------------------


def test_each_failure_of_prune_and_restore_exits_1_with_one_line(
    project_db: Any, manage_env: dict[str, str], tmp_path: Path
) -> None:
    root = tmp_path / "b"
    damaged = fake_backup(root, 1)
    (root / f"{damaged}.json").write_text('{"name": 1}')
    corrupt = [fake_backup(root, age) for age in (30, 20)]
    for name in corrupt:
        (root / name).write_bytes(b"PGDMP fake dumq")
    # Not an archive, but the very bytes its (signed) manifest describes: pg_restore says so.
    unreadable = fake_backup(tmp_path / "other", 1, b"PGDMP fake dumq")
    env = dict(manage_env, BACKUP_DIR=str(root), BACKUP_ENV=ENV)
    failures = {
        "Refusing to prune: only 0 good": ["prune"],
        f"Backup {damaged} is not restored: {damaged}.json does not describe": [
            "restore", damaged, "--database", "copy"
        ],
        f"The newest backup {damaged} is damaged": ["restore", "latest", "--database", "copy"],
        "'x;drop' is not a database name": ["restore", "latest", "--database", "x;drop"],
        f"{corrupt[1]} does not match its manifest (sha256 differs)": [
            "restore", corrupt[1], "--database", "e12_not_made"
        ],
        f"Database '{project_db.dbname}' is not empty": [
            "restore", corrupt[1], "--database", project_db.dbname
        ],
    }  # fmt: skip
    for message, argv in failures.items():
        done = run_manage("backup", *argv, env=env)
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("CommandError: ") and message in last, (argv, done.stderr)
    done = run_manage(
        "backup", "restore", unreadable, "--database", "e12_not_made",
        env=dict(env, BACKUP_DIR=str(tmp_path / "other")),
    )  # fmt: skip
    assert done.returncode == 1
    assert "not a readable pg_dump archive" in done.stderr.strip().splitlines()[-1]
    for bad in ("two", "0"):  # usage errors, before anything is read
        assert run_manage("backup", "prune", "--keep-min", bad, env=env).returncode == 2
    assert databases(project_db, "e12_not_made%") == []
