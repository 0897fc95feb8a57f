"""dbops.redact masks a secret in every shape a message, a repr or a log line gives it."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dbops.redact import MASK, redact

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
