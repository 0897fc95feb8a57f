"""The deploy handler's event schema: every accepted shape, and every refused one."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlmigrations.deploy_event import ACTIONS, DeployRequest, EventError, parse_event


@pytest.mark.parametrize("action", ["migrate", "validate", "info"])
def test_it_accepts_each_action_alone(action: str) -> None:
    assert parse_event({"action": action}) == DeployRequest(action, {})


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({}, 'the event has no "action": send {"action": "migrate"}'),
        (None, 'must be a JSON object such as {"action": "migrate"}, not null'),
        ([], "not an array"),
        ([{"action": "migrate"}], "not an array"),
        ("migrate", "not a string"),
        (1, "not a number"),
        (True, "not a boolean"),
        ({"action": "bogus"}, '"action" is "bogus": use one of "migrate", "validate", "info"'),
        ({"action": "MIGRATE"}, '"action" is "MIGRATE"'),
        ({"action": ""}, '"action" is ""'),
        ({"action": None}, '"action" is null'),
        ({"action": ["migrate"]}, '"action" is ["migrate"]'),
        ({"action": 1}, '"action" is 1'),
        ({"action": "migrate", "dry_run": True}, 'unknown key "dry_run" for action "migrate"'),
        ({"action": "validate", "force": 1}, 'unknown key "force" for action "validate"'),
        ({"action": "info", "Action": "info"}, 'unknown key "Action"'),
        ({"validate_only": True}, '"validate_only" is not accepted any more'),
        ({"validate_only": False}, 'send {"action": "validate"}'),
        ({"action": "migrate", "validate_only": True}, '"validate_only" is not accepted any more'),
    ],
)
def test_it_refuses_anything_else_with_what_to_send(event: Any, expected: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(event)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_it_names_every_problem_at_once() -> None:
    with pytest.raises(EventError) as info:
        parse_event({"action": "migrate", "b": 1, "a": 2, "validate_only": True})
    message = str(info.value)
    assert message.index('"validate_only"') < message.index('"a"') < message.index('"b"')


def test_a_value_that_looks_secret_is_masked() -> None:
    with pytest.raises(EventError) as info:
        parse_event({"action": "postgres://owner:Hunter-2-secret@db/x"})
    assert "Hunter-2-secret" not in str(info.value)


def test_rollback_takes_a_version_as_a_string_or_a_whole_number() -> None:
    event = {"action": "rollback", "to_version": 3, "release_floor": "1.2", "dry_run": True}
    assert parse_event(event) == DeployRequest(
        "rollback", {"to_version": "3", "release_floor": "1.2", "dry_run": True}
    )
    assert parse_event({"action": "rollback", "to_version": "2_1", "release_floor": 0}) == (
        DeployRequest("rollback", {"to_version": "2_1", "release_floor": "0"})
    )


def test_migrate_takes_rollback_on_failure() -> None:
    assert parse_event({"action": "migrate", "rollback_on_failure": True}) == DeployRequest(
        "migrate", {"rollback_on_failure": True}
    )
    assert parse_event({"action": "migrate", "rollback_on_failure": False}) == DeployRequest(
        "migrate", {"rollback_on_failure": False}
    )


ROLLBACK = {"action": "rollback", "release_floor": "1"}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ({"action": "rollback"}, 'needs "to_version" (a migration version'),
        ({"action": "rollback", "to_version": "2"}, 'needs "release_floor"'),
        ({**ROLLBACK, "to_version": True}, '"to_version" is true: use a migration version'),
        ({**ROLLBACK, "to_version": 3.0}, '"to_version" is 3.0: use a migration version'),
        ({**ROLLBACK, "to_version": -1}, '"to_version" is -1'),
        ({**ROLLBACK, "to_version": "v3"}, '"to_version" is "v3"'),
        ({**ROLLBACK, "to_version": "latest"}, '"to_version" is "latest"'),
        ({**ROLLBACK, "to_version": ""}, '"to_version" is ""'),
        ({**ROLLBACK, "to_version": "-1"}, '"to_version" is "-1"'),
        ({**ROLLBACK, "to_version": " 2"}, '"to_version" is " 2"'),
        ({**ROLLBACK, "to_version": None}, '"to_version" is null'),
        ({**ROLLBACK, "to_version": "2", "dry_run": 1}, '"dry_run" is 1: use true or false'),
        ({**ROLLBACK, "to_version": "2", "dry_run": "false"}, '"dry_run" is "false"'),
        ({**ROLLBACK, "to_version": "2", "rollback_on_failure": True}, "unknown key"),
        ({"action": "migrate", "rollback_on_failure": 1}, '"rollback_on_failure" is 1'),
        ({"action": "migrate", "rollback_on_failure": "true"}, "use true or false"),
        ({"action": "migrate", "to_version": "2"}, 'unknown key "to_version"'),
        ({"action": "validate", "rollback_on_failure": True}, "unknown key"),
    ],
)
def test_options_are_typed_exactly(event: dict[str, Any], expected: str) -> None:
    with pytest.raises(EventError) as info:
        parse_event(event)
    assert expected in str(info.value)


VERSIONS = st.integers(min_value=0) | st.from_regex(
    r"[0-9]{1,4}(\.[0-9]{1,3}){0,2}", fullmatch=True
)


@settings(max_examples=200, deadline=None)
@given(
    event=st.fixed_dictionaries(
        {"action": st.just("rollback")},
        optional={
            "to_version": VERSIONS
            | st.booleans()
            | st.floats()
            | st.none()
            | st.text(alphabet="0123456789._-+ a", max_size=5),
            "release_floor": VERSIONS | st.booleans() | st.none(),
            "dry_run": st.booleans() | st.integers(),
        },
    )
)
def test_a_rollback_event_is_accepted_exactly_when_each_option_is_well_typed(
    event: dict[str, Any],
) -> None:
    def version(value: Any) -> bool:
        if type(value) is int:
            return 0 <= value != 2**63 - 1  # Flyway's marker for "latest"
        return type(value) is str and bool(re.fullmatch(r"[0-9]+([._][0-9]+)*", value))

    well_typed = (
        version(event.get("to_version"))
        and version(event.get("release_floor"))
        and type(event.get("dry_run", False)) is bool
    )
    try:
        request = parse_event(event)
    except EventError:
        assert not well_typed, event
        return
    assert well_typed, event
    assert request.options["to_version"] == str(event["to_version"])
    assert request.options["release_floor"] == str(event["release_floor"])


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(event=JSON | st.dictionaries(st.sampled_from(["action", "validate_only"]), JSON))
def test_any_json_is_either_an_exact_accepted_shape_or_refused(event: Any) -> None:
    try:
        request = parse_event(event)
    except EventError as err:
        assert str(err) and "\n" not in str(err)
        return
    # Only {"action": <action>} gets through here: no generated key is an option, and
    # rollback needs its versions (tested above).
    assert isinstance(event, dict)
    assert event == {"action": request.action}
    assert request.action != "rollback"
    assert request.action in ACTIONS
    assert request.options == {}


@settings(max_examples=100, deadline=None)
@given(action=st.sampled_from(list(ACTIONS)), key=st.text(min_size=1, max_size=12), value=JSON)
def test_any_extra_key_is_refused(action: str, key: str, value: Any) -> None:
    if key == "action":
        return
    with pytest.raises(EventError):
        parse_event({"action": action, key: value})
