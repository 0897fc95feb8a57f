"""The deploy handler's event: an action and its options; anything else is refused.

The event is the handler's whole interface (docs/deploy.md, "The event"): a JSON object
with an "action" and only the options that action takes, each of its exact JSON type.
Nothing is defaulted: an event without an action, with a key the action does not take,
or with a value of another type is refused before the handler sets Django up or reads a
secret, so a malformed deploy step changes nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sqlmigrations.lib.exceptions import SqlMigrationError
from sqlmigrations.lib.versions import Version
from sqlmigrations.redact import redact


class EventError(ValueError):
    """The event is not one the deploy handler accepts."""


@dataclass(frozen=True)
class Option:
    """One option of an action: its JSON type and whether the action needs it."""

    kind: type
    required: bool = False

    def accepts(self, value: Any) -> bool:
        # JSON true is not the number 1, nor 1 true: compare the type exactly.
        return type(value) is self.kind

    def describe(self) -> str:
        return {bool: "true or false", int: "a whole number", str: "a string"}[self.kind]


# What a V file's name may carry as its version (ASCII digits, "." or "_" between parts);
# no sign, no spaces, none of Flyway's marker words.
_VERSION = re.compile(r"[0-9]+(?:[._][0-9]+)*")


@dataclass(frozen=True)
class VersionOption(Option):
    """A migration version: a string such as "1.2" (Flyway's versions may be dotted) or a
    whole number such as 7 (JSON's natural form of "7"); kept as the string it stands for."""

    kind: type = str

    def accepts(self, value: Any) -> bool:
        if type(value) is int and value >= 0:
            text = str(value)
        elif type(value) is str and _VERSION.fullmatch(value):
            text = value
        else:
            return False
        try:
            Version(text)
        except SqlMigrationError:
            return False
        return True

    def describe(self) -> str:
        return 'a migration version: a string such as "7" or "1.2", or a whole number'


# Each action and the options it takes. A new action or option is one entry here (and a
# branch in sqlmigrations.deploy.run); unknown keys stay refused for every other action.
ACTIONS: dict[str, dict[str, Option]] = {
    # validate, then apply what is pending; with rollback_on_failure, a failure undoes what
    # this run applied (every pending file needs an undo file, checked before anything runs)
    "migrate": {"rollback_on_failure": Option(bool)},
    "validate": {},  # validate and count what is pending; apply nothing
    "info": {},  # every file and history row with its Flyway state; apply nothing
    # undo the applied files above to_version, newest first; never below release_floor
    "rollback": {
        "to_version": VersionOption(required=True),
        "release_floor": VersionOption(required=True),
        "dry_run": Option(bool),
    },
}
ACTION_KEY = "action"
EXAMPLE = '{"action": "migrate"}'
RETIRED = {
    "validate_only": 'send {"action": "validate"} to validate without applying anything, '
    'or {"action": "migrate"} to migrate',
}


@dataclass(frozen=True)
class DeployRequest:
    """An accepted event: the action and the options given with it."""

    action: str
    options: dict[str, Any] = field(default_factory=dict)


def parse_event(event: object) -> DeployRequest:
    """Return the request an event asks for; raise EventError naming every problem in it."""
    if not isinstance(event, dict):
        raise EventError(f"the event must be a JSON object such as {EXAMPLE}, not {kind(event)}")
    problems = [
        f'"{key}" is not accepted any more: {hint}' for key, hint in RETIRED.items() if key in event
    ]
    if ACTION_KEY not in event:
        missing = f'the event has no "action": send {EXAMPLE} (actions: {actions()})'
        raise EventError("; ".join([missing, *problems]))
    action = event[ACTION_KEY]
    if not isinstance(action, str) or action not in ACTIONS:
        raise EventError(f'"action" is {show(action)}: use one of {actions()}')
    allowed = ACTIONS[action]
    for key in sorted((k for k in event if k != ACTION_KEY), key=str):
        if key in RETIRED:
            continue
        if key not in allowed:
            takes = ", ".join(f'"{k}"' for k in allowed) or "no other key"
            problems.append(f'unknown key {show(key)} for action "{action}" (it takes {takes})')
    for key, option in allowed.items():
        if key not in event:
            if option.required:
                problems.append(f'action "{action}" needs "{key}" ({option.describe()})')
        elif not option.accepts(event[key]):
            problems.append(f'"{key}" is {show(event[key])}: use {option.describe()}')
    if problems:
        raise EventError("; ".join(problems))
    return DeployRequest(action, {k: _value(allowed[k], event[k]) for k in allowed if k in event})


def _value(option: Option, value: Any) -> Any:
    # A version is passed on as text, whichever JSON form it came in.
    return str(value) if isinstance(option, VersionOption) else value


def actions() -> str:
    return ", ".join(f'"{name}"' for name in ACTIONS)


def kind(value: object) -> str:
    """Name a value's JSON type (what the caller sent), e.g. "an array"."""
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if type(value) in names:
        return names[type(value)]
    return "a number" if isinstance(value, int | float) else f"a {type(value).__name__}"


def show(value: object, limit: int = 60) -> str:
    """Quote a value as JSON, shortened and with anything secret-looking masked."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
