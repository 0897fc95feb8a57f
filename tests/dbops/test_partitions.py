"""`manage.py partitions` on the real completions table (issue 7.3)."""

from __future__ import annotations

import csv
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.test import override_settings

from dbops import partitions
from tests.helpers import run_manage

OLD = ("2019-01", "2019-02")


@pytest.fixture
def owner(pg_server: Any, transactional_db: None) -> Iterator[psycopg.Connection[Any]]:
    name = settings.DATABASES["default"]["NAME"]
    with psycopg.connect(**pg_server.conninfo(name), autocommit=True) as conn:
        yield conn
        for month in ("2019_01", "2019_02", "2019_03"):
            conn.execute(f"DROP TABLE IF EXISTS completions_y{month.replace('_', 'm')}")


@pytest.fixture
def env(manage_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {**manage_env, "BACKUP_DIR": str(tmp_path / "store")}


def manage(env: dict[str, str], *args: str) -> Any:
    return run_manage("partitions", *args, env=env)


def add_completions(conn: psycopg.Connection[Any], month: str, count: int) -> None:
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
        "SELECT %s, %s::date + (n || ' minutes')::interval, n %% 10, "
        "CASE WHEN n %% 7 = 0 THEN E'multi\\nline, \"quoted\"' ELSE '' END "
        "FROM generate_series(1, %s) n",
        [household, f"{month}-01", count],
    )


def table_exists(conn: psycopg.Connection[Any], name: str) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [name]).fetchone()[0]


def test_create_makes_missing_months_once_and_dry_run_makes_none(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    dry = manage(env, "create", "--from", "2019-01", "--months-ahead", "1", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "completions_y2019m01: would create" in dry.stdout
    assert not table_exists(owner, "completions_y2019m01")

    made = manage(env, "--json", "create", "--from", "2019-01", "--months-ahead", "1")
    assert made.returncode == 0, made.stderr
    created = [s["partition"] for s in json.loads(made.stdout)["steps"] if s["action"] == "create"]
    assert created[:3] == ["completions_y2019m01", "completions_y2019m02", "completions_y2019m03"]
    assert table_exists(owner, "completions_y2019m03")

    again = manage(env, "--json", "create", "--from", "2019-01", "--months-ahead", "1")
    assert [s for s in json.loads(again.stdout)["steps"] if s["action"] == "create"] == []


def test_status_lists_partitions_and_warns_about_rows_in_default(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    add_completions(owner, "1990-01", 3)  # no partition for 1990: lands in DEFAULT
    result = manage(env, "status")
    assert result.returncode == 0, result.stderr
    assert "completions_default" in result.stdout
    assert "DEFAULT partition holds 3 rows" in result.stdout
    data = json.loads(manage(env, "--json", "status").stdout)
    assert data["default_rows"] == 3 and data["months_ahead"] >= 6


def test_status_counts_rows_written_since_the_last_analyze_and_sizes_for_people(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    manage(env, "create", "--from", "2019-01", "--months-ahead", "0")
    add_completions(owner, "2019-01", 250)  # never analysed: reltuples is -1
    data = json.loads(manage(env, "--json", "status").stdout)
    row = next(p for p in data["partitions"] if p["name"] == "completions_y2019m01")
    assert row["rows"] == 250 and row["rows_exact"] is True, row
    assert row["bytes"] > 0 and re.fullmatch(r"\d+ (bytes|kB|MB)", row["size"]), row
    text = manage(env, "status").stdout
    line = next(x for x in text.splitlines() if x.startswith("completions_y2019m01"))
    assert re.search(r"\s250\s+\d+ (bytes|kB|MB)$", line), line
    assert "~rows" not in text and "," not in line.split()[-2]  # no raw byte counts


def test_a_large_partitions_estimate_follows_growth_since_its_analyze(
    owner: psycopg.Connection[Any],
) -> None:
    parts = partitions.Partitions(owner, exact_below_bytes=0)  # as if every one were large
    parts.create(partitions.date(2019, 1, 1), partitions.date(2019, 1, 1), execute=True)
    add_completions(owner, "2019-01", 2000)
    owner.execute("ANALYZE completions_y2019m01")
    add_completions(owner, "2019-01", 2000)  # the statistics still say 2,000
    found = next(p for p in parts.list() if p.name == "completions_y2019m01")
    assert found.rows_exact is False
    assert 3600 <= found.rows <= 4400, found  # scaled by the pages the table has now


def test_archive_is_a_dry_run_unless_executed(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    manage(env, "create", "--from", "2019-01", "--months-ahead", "0")
    add_completions(owner, "2019-01", 10)
    result = manage(env, "archive", "--keep-months", "24")
    assert result.returncode == 0, result.stderr
    assert "DRY RUN" in result.stdout and "completions_y2019m01" in result.stdout
    assert owner.execute("SELECT count(*) FROM completions").fetchone()[0] == 10


def test_archive_exports_verifies_then_drops(
    owner: psycopg.Connection[Any], env: dict[str, str]
) -> None:
    manage(env, "create", "--from", "2019-01", "--months-ahead", "0")
    add_completions(owner, "2019-01", 500)
    add_completions(owner, "2019-02", 300)
    recent = owner.execute("SELECT count(*) FROM completions").fetchone()[0]

    result = manage(env, "archive", "--keep-months", "24", "--execute")
    assert result.returncode == 0, result.stderr
    assert not table_exists(owner, "completions_y2019m01")
    assert not table_exists(owner, "completions_y2019m02")
    assert not table_exists(owner, "completions_y2019m03")  # empty, but past retention too
    this_month = partitions.this_month()
    assert table_exists(owner, f"completions_y{this_month:%Y}m{this_month:%m}")  # kept
    assert owner.execute("SELECT count(*) FROM completions").fetchone()[0] == recent - 800

    store = Path(env["BACKUP_DIR"]) / "archives" / "completions"
    manifest = json.loads((store / "completions_y2019m01.manifest.json").read_text())
    assert manifest["rows"] == 500 and manifest["month"] == "2019-01"
    empty = json.loads((store / "completions_y2019m03.manifest.json").read_text())
    assert empty["rows"] == 0
    with gzip.open(store / "completions_y2019m01.csv.gz", "rt", newline="") as text:
        rows = list(csv.DictReader(text))
    assert len(rows) == 500
    assert any(r["note"] == 'multi\nline, "quoted"' for r in rows)  # CSV keeps the content


def test_nothing_is_dropped_when_verification_fails_and_a_rerun_finishes(
    owner: psycopg.Connection[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "store"
    storages = {
        **settings.STORAGES,
        "backups": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(store)},
        },
    }
    with override_settings(STORAGES=storages):
        parts = partitions.open_partitions()
        with parts.conn:
            parts.create(partitions.date(2019, 1, 1), partitions.date(2019, 1, 1), execute=True)
            add_completions(owner, "2019-01", 50)
            target = next(p for p in parts.list() if p.name == "completions_y2019m01")

            def corrupt(*args: Any, **kwargs: Any) -> None:
                raise partitions.PartitionError("simulated: the stored object is damaged")

            monkeypatch.setattr(partitions.Partitions, "_verify", corrupt)
            with pytest.raises(partitions.PartitionError):
                parts.archive(target, execute=True)
            # Detached but kept, with every row; no manifest claims it was archived.
            assert owner.execute("SELECT count(*) FROM completions_y2019m01").fetchone() == (50,)
            assert not (store / "archives/completions/completions_y2019m01.manifest.json").exists()

            monkeypatch.undo()
            leftover = next(p for p in parts.list() if p.name == "completions_y2019m01")
            assert leftover.attached is False
            parts.archive(leftover, execute=True)
            assert not table_exists(owner, "completions_y2019m01")
            manifest = store / "archives/completions/completions_y2019m01.manifest.json"
            assert json.loads(manifest.read_text())["rows"] == 50
