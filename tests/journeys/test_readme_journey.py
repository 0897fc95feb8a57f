"""The README's and docs/operations.md's commands, in an operator's order, on `make run`'s database.

One copy of the project (what a clone has: the tracked and new files, no .venv, no var/)
in a temporary folder, one local cluster made by `manage.py devdb` exactly as `make run`
makes it (started, stopped, started again, migrated, demo data), and every command run as
a subprocess with a user's environment: no DATABASE_URL, so the settings find the cluster
through DEVDB_DIR. The steps run in file order and share the cluster; each asserts on what
the command did (rows, files, states, pages), not only on its exit code. AWS is moto.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbops.localdb.cluster import LocalCluster
from dbops.localdb.reaper import destroy_with_this_process
from sqlmigrations.lib import processes
from tests.helpers import REPO
from tests.migrationfiles import newest_version, versioned_count

pytestmark = pytest.mark.slow

# What a user's shell passes on; everything else (DATABASE_URL, DB_*, DJANGO_ENV, AWS_*,
# PG*, TEST_*) stays behind, as it would on a newcomer's machine.
KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TERM", "USER", "LOGNAME")
STAFF = ("ada", "journey-Pass-2026!")
RESTORED = "choregarden_restored"
APPS = {  # app: (name, SQL appended to V{n}, its undo)
    "chores": (
        "trim_task_titles",
        "UPDATE tasks SET title = btrim(title) WHERE title <> btrim(title);\n",
        "-- Nothing to undo: trimmed titles stay trimmed.\nSELECT 1;\n",
    ),
    "accounts": (
        "trim_display_names",
        "UPDATE users SET display_name = btrim(display_name)\n"
        "WHERE display_name <> btrim(display_name);\n",
        "-- Nothing to undo: trimmed names stay trimmed.\nSELECT 1;\n",
    ),
    "dbops": (
        "record_journey_probe",
        "INSERT INTO migration_test (name) VALUES ('journey');\n",
        "DELETE FROM migration_test WHERE name = 'journey';\n",
    ),
}
NEWEST = newest_version()  # the project's newest V file; the journey's own files follow it
PROBE = f"V{NEWEST + len(APPS)}__record_journey_probe"  # the last file the journey writes


@dataclass
class Operator:
    """Runs `python manage.py ...` in the project copy, as the person at the terminal would."""

    root: Path
    env: dict[str, str]
    made: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    urls: dict[str, tuple[str, Path]] = field(default_factory=dict)

    def run(
        self, *args: str, timeout: float = 180, stdin: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.root,
            env={**self.env, **env},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str, **env: str) -> str:
        """Run a command that must succeed; return its stdout."""
        done = self.run(*args, **env)
        assert done.returncode == 0, f"manage.py {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done.stdout

    def status(self) -> dict[str, Any]:
        return json.loads(self.run("devdb", "status", "--json").stdout)

    def connect(self, role: str = "owner", database: str | None = None) -> psycopg.Connection:
        """Connect as a role of the local cluster (its URL from `devdb url --reveal`)."""
        if role not in self.urls:
            url = self.ok("devdb", "url", "--reveal", "--role", role).strip()
            self.urls[role] = (url, Path(self.status()["folder"]) / "certs" / "ca.crt")
        url, ca = self.urls[role]
        if database:
            url = url.rsplit("/", 1)[0] + "/" + database
        return psycopg.connect(url, sslmode="verify-full", sslrootcert=str(ca), autocommit=True)

    def one(self, query: str, role: str = "owner", database: str | None = None) -> Any:
        with self.connect(role, database) as conn:
            return conn.execute(query).fetchone()[0]


def copy_project(target: Path) -> None:
    """Copy what a clone of the checkout would hold (tracked and new files) to `target`."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=False,
    )
    if listing.returncode == 0:
        for name in filter(None, listing.stdout.decode().split("\0")):
            source = REPO / name
            if source.is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / name)
    else:  # not a git checkout: the folder minus what is never committed
        shutil.copytree(
            REPO,
            target,
            dirs_exist_ok=True,
            ignore=shutil.ignore_patterns(
                ".git", ".venv", "var", "test-artifacts", "__pycache__", ".*_cache", ".env"
            ),
        )
    # A clone is a git checkout: lint compares migration files with their committed copies.
    git = ["git", "-c", "user.name=Journey", "-c", "user.email=journey@example.com"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "clone"]):
        subprocess.run([*git, *args], cwd=target, check=True, capture_output=True)


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    base = tmp_path_factory.mktemp("journey")
    root = base / "choregarden"
    root.mkdir()
    copy_project(root)
    env = {k: os.environ[k] for k in KEEP if k in os.environ}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(DEVDB_DIR=str(base / "devdb"), PYTHONDONTWRITEBYTECODE="1")
    # The cluster `devdb start` makes there goes with this process, also when the run is
    # killed before `devdb destroy` below.
    destroy_with_this_process(LocalCluster(base / "devdb"))
    op = Operator(root, env)
    try:
        yield op
    finally:
        op.run("devdb", "destroy")


@pytest.fixture(scope="module")
def made(operator: Operator) -> Operator:
    """The database as `make run` makes it, with a restart in between (recorded, not judged)."""
    steps = [
        ("start", ("devdb", "start", "--if-no-database-url")),
        ("stop", ("devdb", "stop")),
        ("stopped", ("devdb", "status")),
        ("restart", ("devdb", "start", "--if-no-database-url")),
        ("migrate", ("migrate", "--no-input")),
        ("demodata", ("demodata",)),
        ("analytics", ("analytics", "refresh")),
    ]
    for name, args in steps:
        operator.made[name] = operator.run(*args)
    return operator


def counts(op: Operator, database: str | None = None, role: str = "owner") -> dict[str, int]:
    tables = ("users", "households", "household_members", "tasks", "assignments", "completions")
    with op.connect(role, database) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


# --- make run ----------------------------------------------------------------------------


def test_make_run_starts_restarts_migrates_and_loads_demo_data(made: Operator) -> None:
    results = made.made
    for name in ("start", "stop", "restart", "migrate", "demodata", "analytics"):
        done = results[name]
        assert done.returncode == 0, f"{name}: {done.stdout}\n{done.stderr}"
    assert "Local database created and started" in results["start"].stdout
    assert results["stopped"].returncode == 3  # `devdb status` of a stopped cluster
    assert "Local database started" in results["restart"].stdout
    applied = re.findall(r"Applying \w+\.(V\d+)__", results["migrate"].stdout)
    assert applied == [f"V{n}" for n in range(1, NEWEST + 1)], results["migrate"].stdout
    assert results["demodata"].stdout.startswith("Done! Demo data:")
    assert results["analytics"].stdout.startswith("Done! Refreshed ")
    status = made.status()
    assert status["running"] is True and status["database"] == "choregarden_dev"
    rows = counts(made)
    assert rows["households"] == 2 and rows["users"] >= 6 and rows["completions"] > 0


def test_the_restarted_cluster_keeps_its_settings_and_extensions(made: Operator) -> None:
    with made.connect("superuser", "choregarden_dev") as conn:
        preload = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
        extensions = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
        ssl = conn.execute("SHOW ssl").fetchone()[0]
        # The view answers only when the library is loaded (after the restart too).
        calls = conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()[0]
    assert "pg_stat_statements" in preload and "pg_stat_statements" in extensions
    assert ssl == "on" and calls >= 0


def test_demodata_again_changes_nothing(made: Operator) -> None:
    before = counts(made)
    out = made.ok("demodata")
    assert out.startswith("Done! Demo data:")
    assert counts(made) == before


def test_devdb_url_masks_the_password_and_psql_connects(made: Operator) -> None:
    masked = made.ok("devdb", "url").strip()
    assert re.fullmatch(r"postgres://choregarden:\*+@127\.0\.0\.1:\d+/choregarden_dev", masked)
    assert made.one("SELECT current_user", role="app") == "choregarden"
    psql = made.run("devdb", "psql", stdin="SELECT current_user, count(*) FROM households;\n")
    assert psql.returncode == 0 and re.search(r"choregarden\s+\|\s+2\b", psql.stdout), psql


def test_check_migrate_plan_and_history_are_clean(made: Operator) -> None:
    assert "System check identified no issues" in made.ok("check")
    assert "No planned migration operations." in made.ok("migrate", "--plan")
    shown = made.ok("showmigrations", "chores", "accounts", "dbops")
    assert "[ ]" not in shown and shown.count("[X]") >= 11
    assert "no problems" in made.ok("sqlmigrations", "validate")
    info = json.loads(made.ok("sqlmigrations", "info", "--json"))
    assert info["schemaVersion"] == str(NEWEST), info
    assert {m["state"] for m in info["migrations"]} == {"Success"}
    assert "Nothing to repair" in made.ok("sqlmigrations", "repair", "--dry-run")


# --- the admin ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """An admin session over HTTP, with cookies and the CSRF token as a browser sends them."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str, data: bytes | None = None) -> tuple[int, str]:
        try:
            with self.opener.open(self.base + path, data, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")

    def sign_in(self, username: str, password: str) -> tuple[int, str]:
        self.get("/admin/login/")
        token = next(c.value for c in self.jar if c.name == "csrftoken")
        form = {"username": username, "password": password, "csrfmiddlewaretoken": token}
        return self.get("/admin/login/?next=/admin/", urllib.parse.urlencode(form).encode())


# A cleaner (sqlmigrations.lib.processes.start_cleaner): at end of input, which comes when
# the test process ends however it ends, SIGTERM to the process group in argv[1].
KILL_GROUP = """
import contextlib, os, signal, sys
sys.stdin.buffer.read()
with contextlib.suppress(ProcessLookupError):
    os.killpg(int(sys.argv[1]), signal.SIGTERM)
"""


@pytest.fixture(scope="module")
def site(made: Operator) -> Iterator[str]:
    """`runserver` as `make run` starts it (with its autoreloader), on a free port."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}"],
        cwd=made.root,
        env=made.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the autoreloader's child goes with its process group
    )
    # Its process group is ended when this process ends, also when the run is killed.
    processes.start_cleaner([sys.executable, "-c", KILL_GROUP, str(server.pid)])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(base):
            assert server.poll() is None, "runserver exited"
            assert time.monotonic() < deadline, "runserver did not answer within 60 s"
            time.sleep(0.3)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/admin/login/", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def test_admin_pages_answer_for_a_signed_in_superuser(made: Operator, site: str) -> None:
    made.ok(
        "createsuperuser", "--no-input", "--username", STAFF[0], "--email", "ada@example.com",
        DJANGO_SUPERUSER_PASSWORD=STAFF[1],
    )  # fmt: skip
    browser = Browser(site)
    status, index = browser.sign_in(*STAFF)
    assert status == 200 and "<title>Dashboard | Chore Garden admin</title>" in index
    pages = sorted(set(re.findall(r'href="(/admin/\w+/\w+/(?:add/)?)"', index)))
    assert len(pages) >= 12, pages
    failures = []
    for page in pages:
        status, html = browser.get(page)
        if status != 200:
            failures.append((page, status))
            continue
        first = re.search(r'<th class="field-[^"]*"><a href="(/admin/[^"]+/change/)"', html)
        if first:  # the first row's change page too
            status, _ = browser.get(first[1])
            if status != 200:
                failures.append((first[1], status))
    for extra in (
        "/admin/sqlmigrations/flywayschemahistory/states/",
        "/admin/sqlmigrations/flywayschemahistory/validate/",
        "/admin/sqlmigrations/flywayschemahistory/file/V1__create_migration_test_table.sql/",
    ):
        status, _ = browser.get(extra)
        if status != 200:
            failures.append((extra, status))
    assert failures == []
    _, history = browser.get("/admin/sqlmigrations/flywayschemahistory/")
    assert history.count("sqlmigrations-badge sqlmigrations-ok") == versioned_count()


def test_a_locked_out_staff_user_is_unlocked_by_axes_reset_username(
    made: Operator, site: str
) -> None:
    made.ok(
        "createsuperuser", "--no-input", "--username", "bea", "--email", "bea@example.com",
        DJANGO_SUPERUSER_PASSWORD=STAFF[1],
    )  # fmt: skip
    tries = [Browser(site).sign_in("bea", "not-her-password")[0] for _ in range(5)]
    assert tries == [200, 200, 200, 200, 429]  # the fifth failure locks (AXES_FAILURE_LIMIT)
    assert Browser(site).sign_in("bea", STAFF[1])[0] == 429  # locked, even with her password
    made.ok("axes_reset_username", "bea")
    status, page = Browser(site).sign_in("bea", STAFF[1])
    assert status == 200 and "<title>Dashboard | Chore Garden admin</title>" in page


# --- operations --------------------------------------------------------------------------


def test_dbroles_check_proves_the_application_roles_privileges(made: Operator) -> None:
    assert "Done! Roles and privileges are in place" in made.ok("dbroles", "provision")
    out = made.ok("dbroles", "check")
    assert re.search(r"All \d+ checks passed for role choregarden on choregarden_dev", out)
    assert "FAIL" not in out


def test_dbhealth_reports_every_check_and_finds_pg_stat_statements(made: Operator) -> None:
    report = json.loads(made.ok("dbhealth", "--json"))
    checks = {c["name"]: c for c in report["checks"]}
    assert {"connections", "cache_hit_ratio", "sequences", "slow_queries"} <= set(checks)
    assert checks["connections"]["status"] == "ok"
    assert "cannot be listed" not in checks["slow_queries"]["summary"], checks["slow_queries"]
    assert checks["slow_queries"]["status"] in {"ok", "warning"}
    assert re.search(r"connections\s+OK", made.ok("dbhealth", "--check", "connections"))
    assert made.run("dbhealth", "--fail-on", "critical").returncode == 0


def test_scheduleassignments_on_the_demo_data_is_idempotent(made: Operator) -> None:
    first = json.loads(made.ok("scheduleassignments", "--days", "14", "--json"))
    assert first["tasks"] == 7 and first["created"] + first["existing"] > 0
    after_first = made.one("SELECT count(*) FROM assignments")
    second = json.loads(made.ok("scheduleassignments", "--days", "14", "--json"))
    assert second["created"] == 0
    assert second["existing"] == first["created"] + first["existing"]
    assert made.one("SELECT count(*) FROM assignments") == after_first


def test_partitions_status_counts_the_demo_completions_and_create_adds_months(
    made: Operator,
) -> None:
    month = datetime.now(UTC).strftime("%Y-%m")
    real = made.one(
        "SELECT count(*) FROM completions WHERE completed_at >= date_trunc('month', now() "
        "AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    )
    status = json.loads(made.ok("partitions", "--json", "status"))
    current = next(p for p in status["partitions"] if (p["month"] or "").startswith(month))
    assert current["rows"] == real and current["size"].endswith(("bytes", "kB", "MB"))
    assert status["default_rows"] == 0
    made.ok("partitions", "create", "--months-ahead", "8")
    status = json.loads(made.ok("partitions", "--json", "status"))
    assert status["months_ahead"] == 9  # this month and eight ahead
    dry = made.ok("partitions", "archive")
    assert "nothing to archive" in dry or "DRY RUN" in dry
    assert made.one("SELECT count(*) FROM completions") >= real


def test_backup_create_list_verify_restore_and_the_app_role_reads_the_copy(
    made: Operator,
) -> None:
    created = made.ok("backup", "create", "--fingerprint")
    assert re.match(r"Done! Backed up choregarden_dev to .*choregarden-development-\d{8}T", created)
    listing = made.ok("backup", "list", "--json")
    backups = json.loads(listing)
    assert len(backups) == 1 and backups[0]["size"] > 0
    verified = made.run("backup", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "matches 'choregarden_dev'" in verified.stdout

    restored = made.run("backup", "restore", "latest", "--database", RESTORED)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"into database '{RESTORED}' (created, pg_restore --jobs=" in restored.stdout
    # Only a superuser may create pg_stat_statements (as on RDS): the owner's restore says
    # it left that out, and nothing else.
    left_out = [line for line in restored.stderr.splitlines() if "Left out" in line]
    assert all("pg_stat_statements" in line for line in left_out), restored.stderr
    # The application role reads (and may write) the restored copy as it does the original.
    assert counts(made, RESTORED, role="app") == counts(made)
    with made.connect("app", RESTORED) as conn:
        conn.execute("UPDATE households SET name = name")
        rows = conn.execute("SELECT count(*) FROM flyway_schema_history").fetchone()[0]
        assert rows == versioned_count()

    again = made.run("backup", "restore", "latest", "--database", RESTORED)
    assert again.returncode == 1 and "--force" in again.stderr  # a non-empty target is kept
    pruned = made.ok("backup", "prune")
    assert "1 complete backup(s) kept" in pruned


def test_cognitosync_creates_profiles_and_deactivates_those_not_in_the_pool(
    made: Operator,
) -> None:
    demo_live = made.one("SELECT count(*) FROM users WHERE is_active")
    spec = {
        "users": [["nia", "nia@example.com", "Nia"], ["omar", "omar@example.com", "Omar"]],
        "runs": [
            ["cognitosync", "--dry-run", "--json"],
            ["cognitosync", "--json"],
            ["cognitosync", "--json"],
        ],
    }
    done = subprocess.run(
        [sys.executable, "tests/journeys/cognito_pool.py", json.dumps(spec)],
        cwd=made.root,
        env=made.env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    dry, real, again = json.loads(done.stdout.strip().splitlines()[-1])
    assert [r["code"] for r in (dry, real, again)] == [0, 0, 0], (dry, real, again)
    dry_run, synced, repeat = (json.loads(r["stdout"]) for r in (dry, real, again))
    assert dry_run["created"] == 2 and dry_run["dry_run"] is True
    assert (synced["created"], synced["deactivated"]) == (2, demo_live)
    assert (repeat["created"], repeat["updated"], repeat["deactivated"]) == (0, 0, 0)
    assert made.one("SELECT count(*) FROM users WHERE is_active") == 2


# --- the development workflow ------------------------------------------------------------


@pytest.fixture(scope="module")
def hand_written(made: Operator) -> list[tuple[str, str, str, str]]:
    """A hand-written migration in each app, each generated, filled in and migrated:
    (app, version and name, makesqlmigration's output, migrate's output). A fixture, so
    the tests that need these files have them whichever worker runs them."""
    done = []
    for version, (app, (name, sql, undo)) in enumerate(APPS.items(), start=NEWEST + 1):
        out = made.ok("makesqlmigration", app, name, "--empty")
        v_file = made.root / "migrations_sql" / f"V{version}__{name}.sql"
        u_file = made.root / "migrations_undo" / f"U{version}__{name}.sql"
        wrapper = made.root / app / "migrations" / f"V{version}__{name}.py"
        assert v_file.is_file() and u_file.is_file() and wrapper.is_file(), out
        v_file.write_text(v_file.read_text() + sql)
        u_file.write_text(u_file.read_text() + undo)
        done.append((app, f"V{version}__{name}", out, made.ok("migrate", "--no-input")))
    return done


def test_a_hand_written_migration_in_each_app_applies_and_leaves_no_model_changes(
    made: Operator, hand_written: list[tuple[str, str, str, str]]
) -> None:
    for app, migration, out, migrated in hand_written:
        assert f"Done! Wrote {migration}" in out
        assert f"Applying {app}.{migration}... OK" in migrated, migrated

    clean = made.run("makemigrations", "--check", "--dry-run")
    assert clean.returncode == 0 and "No changes detected" in clean.stdout, (
        clean.stdout + clean.stderr
    )
    assert made.run("sqlmigrations", "validate").returncode == 0
    info = json.loads(made.ok("sqlmigrations", "info", "--json"))
    states = {m["version"]: m["state"] for m in info["migrations"] if m["category"] == "Versioned"}
    assert states == {str(v): "Success" for v in range(1, NEWEST + len(APPS) + 1)}, states
    assert made.one("SELECT count(*) FROM migration_test WHERE name = 'journey'") == 1
    assert "System check identified no issues" in made.ok("check")
    assert "No planned migration operations." in made.ok("migrate", "--plan")


def test_the_last_migration_rolls_back_with_its_undo_file_and_applies_again(
    made: Operator, hand_written: list[tuple[str, str, str, str]]
) -> None:
    assert hand_written[-1][1] == PROBE
    v_file = made.root / "migrations_sql" / f"{PROBE}.sql"
    # The V file's header names the command that runs its undo file.
    header = v_file.read_text()
    rollback = re.search(r"`manage\.py (migrate dbops \w+)` runs it", header)
    assert rollback, header
    plan = made.ok(*rollback[1].split(), "--plan")
    undo = f"U{PROBE[1:]}.sql"
    assert PROBE in plan and undo in plan, plan
    made.ok(*rollback[1].split(), "--no-input")
    assert made.one("SELECT count(*) FROM migration_test WHERE name = 'journey'") == 0
    info = json.loads(made.ok("sqlmigrations", "info", "--json"))
    assert info["schemaVersion"] == str(NEWEST + len(APPS) - 1)
    made.ok("migrate", "--no-input")
    assert made.one("SELECT count(*) FROM migration_test WHERE name = 'journey'") == 1


def test_schemadrift_schemadoc_and_lint_agree_with_the_migrated_database(
    made: Operator,
) -> None:
    drift = made.run("schemadrift")
    assert drift.returncode == 0, drift.stdout + drift.stderr
    doc = made.run("schemadoc", "--check")
    assert doc.returncode == 0 and "is up to date" in doc.stdout, doc.stdout + doc.stderr
    lint = made.run("sqlmigrations", "lint")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert re.search(r"Linted \d+ files: no findings\.", lint.stdout)


def test_devdb_destroy_removes_the_cluster(made: Operator) -> None:
    folder = Path(made.status()["folder"])
    out = made.ok("devdb", "destroy")
    assert "destroyed" in out and not folder.exists()
    assert made.run("devdb", "status").returncode == 3
