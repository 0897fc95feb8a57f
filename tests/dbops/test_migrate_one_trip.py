"""A plain `migrate` applies each wrapper as one transaction in one round trip.

The file, its flyway_schema_history row and its django_migrations row go to the server as
one query string; signal receivers still get the historical apps before and after.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.sqlproject import SqlProject

# Runs `migrate` in a process of its own, watching every query through Django's
# instrumentation API and what pre_migrate/post_migrate receivers are given.
PROBE = """
import json, sys
import django
django.setup()
from django.core.management import call_command
from django.db import connections
from django.db.models.signals import post_migrate, pre_migrate
from sqlmigrations.engine import migration_alias

connection = connections[migration_alias()]  # the alias migrate runs on

queries, seen = [], {}

def watch(execute, sql, params, many, context):
    queries.append(sql)
    return execute(sql, params, many, context)

def receiver(name):
    def receive(sender, apps, **kwargs):
        if sender.label != "contenttypes":
            return
        try:
            apps.get_model("contenttypes", "ContentType")
            seen[name] = "ContentType"
        except LookupError:
            seen[name] = "none"
    return receive

pre_migrate.connect(receiver("pre"), weak=False)
post_migrate.connect(receiver("post"), weak=False)
with connection.execute_wrapper(watch):
    call_command("migrate", "--no-input", verbosity=0)
json.dump({"queries": queries, "seen": seen}, sys.stdout)
"""


def probe(project: SqlProject) -> dict[str, object]:
    project.sync_wrappers()
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=project.root,
        env=project.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_each_file_and_both_of_its_rows_go_in_one_query(sqlproject: SqlProject) -> None:
    files = {
        "V1__create_a.sql": "CREATE TABLE a (id int PRIMARY KEY);\n",
        "V2__seed_a.sql": "INSERT INTO a VALUES (1);\nINSERT INTO a VALUES (2);\n",
        "V3__create_b.sql": "CREATE TABLE b (a_id int REFERENCES a);\n",
    }
    for name, text in files.items():
        sqlproject.write(name, text)

    queries: list[str] = probe(sqlproject)["queries"]  # type: ignore[assignment]

    for name, text in files.items():
        carrying = [q for q in queries if text.strip() in q]
        assert len(carrying) == 1, (name, carrying)
        (query,) = carrying
        assert "INSERT INTO" in query and name in query  # its flyway_schema_history row
        assert '"django_migrations"' in query and name.removesuffix(".sql") in query
        # Nothing else records the wrapper: Django's recorder is not called for it.
        others = [q for q in queries if q is not query and name.removesuffix(".sql") in q]
        assert others == []
    assert sqlproject.query("SELECT count(*) FROM b") == [(0,)]
    assert sqlproject.query(
        "SELECT name FROM django_migrations WHERE app = 'dbops' ORDER BY id"
    ) == [("V1__create_a",), ("V2__seed_a",), ("V3__create_b",)]
    assert [row[1] for row in sqlproject.history()] == ["1", "2", "3"]


def test_receivers_get_the_models_before_and_after_the_run(sqlproject: SqlProject) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n")

    seen = probe(sqlproject)["seen"]

    # On an empty database contenttypes is not migrated yet before the run, and is after.
    assert seen == {"pre": "none", "post": "ContentType"}
    assert sqlproject.query(
        "SELECT count(*) > 0 FROM django_content_type WHERE app_label = 'contenttypes'"
    ) == [(True,)]


def test_a_failing_file_leaves_neither_row_and_a_rerun_applies_the_fix(
    sqlproject: SqlProject,
) -> None:
    sqlproject.write("V1__create_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\n")
    sqlproject.write("V2__seed_a.sql", "INSERT INTO a VALUES (1);\nINSERT INTO a VALUES (1);\n")

    result = sqlproject.manage("migrate", "--no-input")

    assert result.returncode != 0
    assert "V2__seed_a.sql" in result.stderr and "line 2" in result.stderr
    assert "duplicate key" in result.stderr
    assert [row[1] for row in sqlproject.history()] == ["1"]
    dbops = "SELECT name FROM django_migrations WHERE app = 'dbops' ORDER BY id"
    assert sqlproject.query(dbops) == [("V1__create_a",)]
    assert sqlproject.query("SELECT count(*) FROM a") == [(0,)]

    sqlproject.write("V2__seed_a.sql", "INSERT INTO a VALUES (1);\nINSERT INTO a VALUES (2);\n")
    result = sqlproject.manage("migrate", "--no-input")

    assert result.returncode == 0, result.stderr
    assert sqlproject.query(dbops) == [("V1__create_a",), ("V2__seed_a",)]
    assert sqlproject.query("SELECT id FROM a ORDER BY id") == [(1,), (2,)]
