"""sqlmigrations.redact masks a secret in every shape a message, a repr or a log line gives it."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlmigrations.redact import MASK, redact

SECRET_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
    min_size=4,
    max_size=30,
)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgres://app:s3cret@db:5432/x", f"postgres://app:{MASK}@db:5432/x"),
        ("host=db password=s3cret dbname=x", f"host=db password={MASK} dbname=x"),
        ("password='s3 cr\\'et' dbname=x", f"password='{MASK}' dbname=x"),
        (
            "State(port=1, owner_password='s3cret', app_password='other')",
            f"State(port=1, owner_password='{MASK}', app_password='{MASK}')",
        ),
        (
            '{"username": "app", "password": "s3 cret"}',
            f'{{"username": "app", "password": "{MASK}"}}',
        ),
        (
            "[('user', 'app'), ('password', 's3 cret')]",
            f"[('user', 'app'), ('password', '{MASK}')]",
        ),
        ("token: abc123", f"token: {MASK}"),
        ("SECRET_KEY=abc123", f"SECRET_KEY={MASK}"),
    ],
)
def test_it_masks_secrets_by_shape(text: str, masked: str) -> None:
    assert redact(text, []) == masked


@pytest.mark.parametrize(
    "text",
    [
        "MIGRATION_DB_SECRET_ID=chore/prod/owner",
        "SECRET_KEY_FILE='/run/secrets/key' cannot be read",
        "SecretRef(secret_id='chore/app', region='eu-west-1')",
        'password authentication failed for user "choregarden"',
        "set SECRET_KEY to a long random value",
    ],
)
def test_it_leaves_names_and_messages_alone(text: str) -> None:
    assert redact(text, []) == text


def test_a_secret_that_contains_another_is_masked_whole() -> None:
    assert redact("x abcd-efgh y", ["abcd", "abcd-efgh"]) == f"x {MASK} y"


@settings(max_examples=60, deadline=None)
@given(secret=SECRET_TEXT)
def test_a_known_secret_is_masked_as_written_encoded_and_escaped(secret: str) -> None:
    shown = [secret, quote(secret, safe=""), repr(secret), json.dumps({"password": secret})]
    text = " | ".join(f"got {form} here" for form in shown)
    assert secret not in redact(text, [secret])
    assert quote(secret, safe="") not in redact(text, [secret])


@settings(max_examples=60, deadline=None)
@given(secret=SECRET_TEXT)
def test_an_unknown_password_is_masked_by_its_shape(secret: str) -> None:
    marked = f"{secret}MARKER"
    shapes = [
        f"postgres://app:{quote(marked, safe='')}@db:5432/x",
        f"host=db password={marked!r}",
        json.dumps({"user": "app", "password": marked}),
        repr([("user", "app"), ("password", marked)]),
    ]
    for text in shapes:
        assert "MARKER" not in redact(text, []), text


def sql_literals(value: str) -> list[str]:
    """`value` as each SQL quoting writes it."""
    forms = ["'" + value.replace("'", "''") + "'", '"' + value.replace('"', '""') + '"']
    forms.append("E'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'")
    forms += [f"{tag}{value}{tag}" for tag in ("$$", "$pw$") if tag not in value + "$"]
    return forms


@settings(max_examples=100, deadline=None)
@given(
    secret=SECRET_TEXT,
    statement=st.sampled_from(
        [
            "CREATE ROLE app WITH LOGIN PASSWORD {} VALID UNTIL 'infinity'",
            'ALTER ROLE "choregarden_owner" WITH LOGIN NOCREATEROLE PASSWORD {}',
            "create user app encrypted password {};",
            "LOG:  statement: ALTER USER app PASSWORD {}\nDETAIL: next line",
        ]
    ),
)
def test_a_password_in_role_sql_is_masked_in_every_quoting(secret: str, statement: str) -> None:
    marked = f"{secret}MARKER"
    for literal in sql_literals(marked):
        text = statement.format(literal)
        masked = redact(text, [])
        assert "MARKER" not in masked, text
        assert "PASSWORD '********'" in masked.upper()


@settings(max_examples=60, deadline=None)
@given(
    salt=st.binary(min_size=16, max_size=16),
    keys=st.binary(min_size=64, max_size=64),
    iterations=st.integers(min_value=1, max_value=100_000),
)
def test_a_scram_verifier_is_masked_anywhere(salt: bytes, keys: bytes, iterations: int) -> None:
    verifier = (
        f"SCRAM-SHA-256${iterations}:{base64.b64encode(salt).decode()}$"
        f"{base64.b64encode(keys[:32]).decode()}:{base64.b64encode(keys[32:]).decode()}"
    )
    for text in (f"rolpassword = {verifier}", f"got ({verifier!r},)", f"{verifier}\n"):
        assert "SCRAM-SHA-256$" not in redact(text, [])


@pytest.mark.parametrize(
    "text",
    [
        "ALTER ROLE app PASSWORD NULL",
        'password authentication failed for user "choregarden"',
        "the statement mentions password $1 and $2",
    ],
)
def test_sql_without_a_password_literal_is_left_alone(text: str) -> None:
    assert redact(text, []) == text


def test_an_md5_password_hash_is_masked() -> None:
    assert redact("rolpassword md5d41d8cd98f00b204e9800998ecf8427e.", []) == f"rolpassword {MASK}."
