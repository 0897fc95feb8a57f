"""`manage.py schemadoc`: the schema reference from the catalog, kept current by this test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from dbops.schemadoc import render as schemadoc
from dbops.schemadoc.document import framework_tables
from tests.helpers import REPO

SMALL_SCHEMA = """
CREATE SCHEMA docs_t;
CREATE TABLE docs_t.owners (
    id bigint PRIMARY KEY,
    email text NOT NULL UNIQUE CONSTRAINT owners_email_shape CHECK (email ~ '^(a|b)'),
    kind text NOT NULL DEFAULT 'cat|dog'
);
COMMENT ON TABLE docs_t.owners IS 'People | who own pets.';
COMMENT ON COLUMN docs_t.owners.email IS 'Where to write | or not.';
CREATE TABLE docs_t.pets (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id bigint REFERENCES docs_t.owners ON DELETE CASCADE,
    name text NOT NULL DEFAULT 'rex' CONSTRAINT pets_name_not_blank CHECK (name <> ''),
    CONSTRAINT pets_owner_name_key UNIQUE (owner_id, name)
);
CREATE TABLE docs_t.passports (
    pet_id bigint PRIMARY KEY REFERENCES docs_t.pets, number text NOT NULL
);
CREATE INDEX pets_lower_name ON docs_t.pets (lower(name));
CREATE FUNCTION docs_t.touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
COMMENT ON FUNCTION docs_t.touch() IS 'Does nothing.';
CREATE TRIGGER pets_touch BEFORE UPDATE ON docs_t.pets
    FOR EACH ROW EXECUTE FUNCTION docs_t.touch();
CREATE TABLE docs_t.visits (pet_id bigint NOT NULL, day date NOT NULL) PARTITION BY RANGE (day);
CREATE TABLE docs_t.visits_y2024 PARTITION OF docs_t.visits
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE docs_t.visits_y2025 PARTITION OF docs_t.visits
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE docs_t.visits_default PARTITION OF docs_t.visits DEFAULT;
"""


@pytest.fixture
def small_schema(pg_server: Any, django_db_setup: None) -> Iterator[schemadoc.Catalog]:
    """A small schema in the test database, made by the owner role (tests run without DDL)."""
    from django.conf import settings

    dbname = settings.DATABASES["default"]["NAME"]
    with psycopg.connect(**pg_server.conninfo(dbname), autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS docs_t CASCADE")
        conn.execute(SMALL_SCHEMA)
        try:
            with conn.cursor() as cursor:
                yield schemadoc.collect(cursor, "docs_t")
        finally:
            conn.execute("DROP SCHEMA docs_t CASCADE")


def test_committed_schema_reference_matches_the_migrated_database(db: None) -> None:
    with connection.cursor() as cursor:
        expected = schemadoc.render(schemadoc.collect(cursor, "public"), framework_tables())

    committed = (REPO / "docs" / "schema.md").read_text()

    assert committed == expected, (
        "docs/schema.md is out of date: run `python manage.py schemadoc` and commit it"
    )


def test_it_draws_foreign_keys_with_their_cardinality(small_schema: schemadoc.Catalog) -> None:
    text = schemadoc.render(small_schema)

    assert 'owners |o--o{ pets : "owner_id"' in text  # nullable: zero or one owner
    assert 'pets ||--o| passports : "pet_id"' in text  # the key is the primary key: 1:1
    assert "        bigint pet_id PK, FK\n" in text
    assert "        text email UK\n" in text
    assert "        text name\n" in text  # unique only together with owner_id


def test_it_lists_columns_comments_constraints_indexes_triggers(
    small_schema: schemadoc.Catalog,
) -> None:
    text = schemadoc.render(small_schema)

    assert "\nPeople | who own pets.\n" in text
    assert "| `email` | `text` |  |  | UK |" not in text  # keys column shows PK and FK only
    assert "| `email` | `text` |  |  |  | Where to write \\| or not. |" in text
    assert "| `owner_id` | `bigint` | yes |  | FK |  |" in text
    assert "| `id` | `bigint` |  | `generated always as identity` | PK |  |" in text
    assert "- `owners_email_key`: `UNIQUE (email)`" in text
    assert "- `pets_name_not_blank`: `CHECK ((name <> ''::text))`" in text
    assert "- `owners_email_shape`: `CHECK ((email ~ '^(a|b)'::text))`" in text  # no \\|
    assert "| `kind` | `text` |  | `'cat\\|dog'::text` |  |  |" in text  # \\| in a table
    assert (
        "- `pets_owner_id_fkey`: `FOREIGN KEY (owner_id) REFERENCES docs_t.owners(id) "
        "ON DELETE CASCADE`" in text
    )
    assert "- `pets_lower_name`: `CREATE INDEX pets_lower_name ON pets USING btree" in text
    assert "- `pets_touch`: `CREATE TRIGGER pets_touch BEFORE UPDATE ON pets" in text
    assert "| `touch()` | `trigger` | Does nothing. |" in text


def test_it_summarises_dated_partitions(small_schema: schemadoc.Catalog) -> None:
    text = schemadoc.render(small_schema)

    assert "**Partitions** (by `RANGE (day)`)" in text
    assert "- `visits_default`: `DEFAULT`" in text
    assert "- `visits_yNNNN`: dated partitions;" in text
    assert "## `visits_y2024`" not in text


def test_framework_tables_are_grouped_apart(small_schema: schemadoc.Catalog) -> None:
    text = schemadoc.render(small_schema, framework={"passports"})

    diagram, framework = text.split("## Framework tables")
    assert "passports" not in diagram
    assert "| `passports` | `pet_id`, `number` |  |" in framework


@pytest.mark.django_db
def test_output_is_the_same_every_time(small_schema: schemadoc.Catalog) -> None:
    with connection.cursor() as cursor:  # another connection, as the application role
        again = schemadoc.collect(cursor, "docs_t")

    assert schemadoc.render(again) == schemadoc.render(small_schema)


def test_check_fails_with_the_fix_when_the_file_differs(db: None, tmp_path: Path) -> None:
    output = tmp_path / "schema.md"
    call_command("schemadoc", "--output", str(output))
    call_command("schemadoc", "--check", "--output", str(output))
    output.write_text(output.read_text() + "edited\n")

    with pytest.raises(CommandError, match=r"out of date .*run `python manage.py schemadoc`"):
        call_command("schemadoc", "--check", "--output", str(output))
