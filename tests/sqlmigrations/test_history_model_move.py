"""The history model moved from dbops to sqlmigrations: its grants moved with it."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection

pytestmark = pytest.mark.django_db
move = importlib.import_module("dbops.migrations.move_history_model_to_sqlmigrations")
CODENAME = "view_flywayschemahistory"


def history_type(app_label: str) -> ContentType | None:
    ContentType.objects.clear_cache()
    return ContentType.objects.filter(app_label=app_label, model="flywayschemahistory").first()


def test_a_group_granted_the_history_under_dbops_keeps_it_under_sqlmigrations() -> None:
    # As a database migrated before the move has it: the type and its permission under dbops.
    ContentType.objects.filter(app_label="sqlmigrations").update(app_label="dbops")
    old = Permission.objects.get(content_type__app_label="dbops", codename=CODENAME)
    group = Group.objects.create(name="Release managers")
    group.permissions.add(old)

    with connection.schema_editor() as editor:
        move.forwards(apps, editor)

    moved = Permission.objects.get(codename=CODENAME)
    assert (moved.pk, moved.content_type.app_label) == (old.pk, "sqlmigrations")
    assert list(group.permissions.all()) == [moved]
    assert history_type("dbops") is None

    with connection.schema_editor() as editor:
        move.backwards(apps, editor)
    assert Permission.objects.get(codename=CODENAME).content_type.app_label == "dbops"


def test_a_type_already_under_sqlmigrations_is_left_alone() -> None:
    # A fresh database: post_migrate made the type under sqlmigrations, none under dbops.
    kept = history_type("sqlmigrations")
    assert kept is not None
    with connection.schema_editor() as editor:
        move.forwards(apps, editor)
    assert history_type("sqlmigrations") == kept
    assert history_type("dbops") is None
