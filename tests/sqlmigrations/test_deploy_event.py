"""The deploy handler's event schema: every accepted shape, and every refused one."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlmigrations.deploy_event import ACTIONS, DeployRequest, EventError, Option, parse_event


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


def test_options_are_typed_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # How a later option (issue 18's rollback) slots in: one entry in ACTIONS.
    monkeypatch.setitem(
        ACTIONS,
        "rollback",
        {"to_version": Option(int, required=True), "dry_run": Option(bool)},
    )
    assert parse_event({"action": "rollback", "to_version": 3}) == DeployRequest(
        "rollback", {"to_version": 3}
    )
    refused = {
        '"to_version" is "3": use a whole number': {"action": "rollback", "to_version": "3"},
        '"to_version" is true: use a whole number': {"action": "rollback", "to_version": True},
        '"to_version" is 3.0: use a whole number': {"action": "rollback", "to_version": 3.0},
        'needs "to_version"': {"action": "rollback"},
        '"dry_run" is 1: use true or false': {"action": "rollback", "to_version": 2, "dry_run": 1},
        '"dry_run" is "false"': {"action": "rollback", "to_version": 2, "dry_run": "false"},
    }
    for expected, event in refused.items():
        with pytest.raises(EventError, match=expected):
            parse_event(event)


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
    # Only {"action": <known action>} and nothing else gets through today.
    assert isinstance(event, dict)
    assert event == {"action": request.action}
    assert request.action in ACTIONS
    assert request.options == {}


@settings(max_examples=100, deadline=None)
@given(action=st.sampled_from(list(ACTIONS)), key=st.text(min_size=1, max_size=12), value=JSON)
def test_any_extra_key_is_refused(action: str, key: str, value: Any) -> None:
    if key == "action":
        return
    with pytest.raises(EventError):
        parse_event({"action": action, key: value})
