"""Wrappers defer rendering the models they create; whatever reads the state sees them all."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, migrations, models, transaction
from django.db.migrations.state import ProjectState

from sqlmigrations.operations import (
    DeferredApps,
    LazyApps,
    RunSQLFile,
    SQLFileMigration,
    _state_forwards,
    defer_rendering,
)

APP = "stateapp"


def wrapper(name: str, *state_operations: Any) -> SQLFileMigration:
    cls = type(
        "Migration",
        (SQLFileMigration,),
        {
            "operations": [
                migrations.SeparateDatabaseAndState(
                    database_operations=[RunSQLFile(f"{name}.sql")],
                    state_operations=list(state_operations),
                )
            ]
        },
    )
    return cls(name, APP)


def create(model: str, *fields: tuple[str, models.Field]) -> migrations.CreateModel:
    return migrations.CreateModel(
        name=model, fields=[("id", models.BigAutoField(primary_key=True)), *fields]
    )


def apply_state(migration: SQLFileMigration, state: ProjectState) -> None:
    _state_forwards(migration, state)  # what SQLFileMigration.apply does before the file


def rendered_state() -> ProjectState:
    state = ProjectState()
    state.apps  # noqa: B018 - the executor renders the apps before the first migration
    return state


def member_wrapper() -> SQLFileMigration:
    """V2: a Member model with a foreign key to V1's Household."""
    household = models.ForeignKey("stateapp.Household", models.CASCADE)
    return wrapper("V2__b", create("Member", ("household", household)))


def test_it_renders_created_models_when_the_apps_are_first_used() -> None:
    state = rendered_state()
    apply_state(wrapper("V1__a", create("Household")), state)
    apply_state(member_wrapper(), state)

    member = state.apps.get_model(APP, "Member")
    household = state.apps.get_model(APP, "Household")

    assert member._meta.get_field("household").related_model is household
    assert [rel.related_model for rel in household._meta.related_objects] == [member]


def test_it_renders_pending_models_before_a_wrapper_that_alters_one() -> None:
    state = rendered_state()
    apply_state(wrapper("V1__a", create("Household")), state)
    apply_state(
        wrapper("V2__b", migrations.AddField("Household", "name", models.TextField(default=""))),
        state,
    )

    household = state.apps.get_model(APP, "Household")

    assert [f.name for f in household._meta.fields] == ["id", "name"]


def test_a_clone_of_the_state_holds_the_pending_models() -> None:
    state = rendered_state()
    apply_state(wrapper("V1__a", create("Household")), state)

    clone = state.clone()

    assert clone.apps.get_model(APP, "Household")._meta.db_table == "stateapp_household"
    assert state.apps.get_model(APP, "Household")


def test_an_unrendered_state_stays_unrendered() -> None:
    state = ProjectState()
    apply_state(wrapper("V1__a", create("Household")), state)

    assert "apps" not in state.__dict__
    assert state.apps.get_model(APP, "Household")


def test_a_deferred_state_renders_everything_on_first_use() -> None:
    state = ProjectState()
    apply_state(wrapper("V1__a", create("Household")), state)
    defer_rendering(state)
    apply_state(member_wrapper(), state)

    assert isinstance(state.__dict__["apps"], DeferredApps)  # nothing rendered so far
    member = state.apps.get_model(APP, "Member")

    assert member._meta.get_field("household").related_model._meta.model_name == "household"
    assert "apps" in state.__dict__ and not isinstance(state.__dict__["apps"], DeferredApps)


def test_lazy_apps_are_built_once_and_only_when_used() -> None:
    built: list[int] = []

    def build() -> ProjectState:
        built.append(1)
        state = ProjectState()
        apply_state(wrapper("V1__a", create("Household")), state)
        return state.apps

    apps = LazyApps(build)
    assert built == []

    assert apps.get_model(APP, "Household")._meta.model_name == "household"
    assert apps.get_model(APP, "household")
    assert built == [1]


@pytest.mark.django_db(transaction=True)
def test_one_trip_needs_a_connection_outside_any_transaction() -> None:
    migration = wrapper("V1__a", create("Household"))

    assert migration.applies_in_one_trip(connection)
    with transaction.atomic():
        # The query string would run inside the caller's transaction: Django's path then.
        assert not migration.applies_in_one_trip(connection)
