"""Read the acknowledgements a migration file carries for an operation migrate refuses.

    -- choregarden:allow table-rewrite reason="backfilled off-hours, 2 min window agreed"

One per rule, on a line of its own, with a reason a reviewer can read. A malformed one
or an unknown rule is an error at its line rather than ignored: a typo must not let the
operation through unseen, nor leave it refused for a reason the author cannot see.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from sqlmigrations.lib.exceptions import SqlMigrationError

_ACK = re.compile(r"^\s*--\s*choregarden:(?P<rest>.*)$")
_ALLOW = re.compile(r'^allow\s+(?P<rule>\S+)(?:\s+reason="(?P<reason>[^"]*)")?\s*$')


class BadAcknowledgement(SqlMigrationError):
    """A `-- choregarden:` comment that is not a valid acknowledgement."""


@dataclass(frozen=True)
class Acknowledgement:
    """`-- choregarden:allow RULE reason="..."` at a line of a file."""

    rule: str
    reason: str
    line: int


def parse_acknowledgements(
    text: str, script: str, rules: Collection[str], doc: str
) -> dict[str, Acknowledgement]:
    """Return the file's acknowledgements by rule; refuse a malformed or unknown one.

    Only whole-line comments count: a `choregarden:` inside a string or after SQL is
    not an acknowledgement. An acknowledgement without a reason is refused, since the
    reason is what a reviewer reads. `rules`: the names an acknowledgement may use;
    `doc`: where they are documented, for the error.
    """
    found: dict[str, Acknowledgement] = {}
    for n, raw in enumerate(text.splitlines(), 1):
        match = _ACK.match(raw)
        if not match:
            continue
        allow = _ALLOW.match(match["rest"].strip())
        if allow is None:
            raise BadAcknowledgement(
                'expected `-- choregarden:allow RULE reason="why"` '
                f"(rules: {', '.join(sorted(rules))})",
                path=script,
                line=n,
            )
        rule, reason = allow["rule"], (allow["reason"] or "").strip()
        if rule not in rules:
            raise BadAcknowledgement(
                f"unknown rule {rule!r} in an acknowledgement; the rules are "
                f"{', '.join(sorted(rules))} ({doc})",
                path=script,
                line=n,
            )
        if not reason:
            raise BadAcknowledgement(
                f'the acknowledgement of {rule} needs a reason: reason="why it is safe here"',
                path=script,
                line=n,
            )
        found.setdefault(rule, Acknowledgement(rule, reason, n))
    return found
