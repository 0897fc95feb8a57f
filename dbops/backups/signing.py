"""Signed manifests: a restore can tell that `backup create` (the backup role) wrote a backup.

The manifest already holds the dump's size and sha256, so an HMAC-SHA256 over the whole
manifest covers the dump too. Anyone who can write the bucket but does not hold the
signing key can replace a dump, but cannot write a manifest that matches it: restore and
verify refuse it before pg_restore runs. The key comes from BACKUP_SIGNING_KEY (or
BACKUP_SIGNING_KEY_FILE), or from the Secrets Manager secret BACKUP_SIGNING_KEY_SECRET_ID;
the web application never needs it.

A manifest without a signature (written before signing), or signed with a key this process
does not hold, cannot be checked: refused unless the operator passes --allow-unsigned. A
signature that does not match under the known key is proof of a change: always refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.conf import settings
from django.core.files.storage import Storage

from dbops.backups import BackupError
from dbops.backups.manifest import ManifestError
from dbops.backups.names import MANIFEST_SUFFIX
from dbops.backups.store import Backup, find_backup
from sqlmigrations.redact import redact, register_secret

ALGORITHM = "hmac-sha256"
MIN_KEY_LENGTH = 32
KEY_SETTINGS = "BACKUP_SIGNING_KEY (or BACKUP_SIGNING_KEY_SECRET_ID)"


class SigningKeyError(ManifestError):
    """The signing key is missing, too short or cannot be read: the message says which."""


def _from_secrets_manager(secret_id: str) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    from dbops.connections import secrets

    try:
        response = secrets.client(getattr(settings, "AWS_REGION", "") or "").get_secret_value(
            SecretId=secret_id
        )
    except (BotoCoreError, ClientError) as err:
        raise SigningKeyError(
            f"Could not read the signing key from Secrets Manager secret {secret_id!r} "
            f"(BACKUP_SIGNING_KEY_SECRET_ID): {redact(str(err))}. The backup role needs "
            "secretsmanager:GetSecretValue on it."
        ) from None
    return str(response.get("SecretString") or "").strip()


def signing_key() -> bytes | None:
    """The key to sign and check manifests with; None when none is configured."""
    secret_id = getattr(settings, "BACKUP_SIGNING_KEY_SECRET_ID", "")
    if secret_id:
        key = _from_secrets_manager(secret_id)
        source = f"Secrets Manager secret {secret_id!r}"
    else:
        key = getattr(settings, "BACKUP_SIGNING_KEY", "")
        source = "BACKUP_SIGNING_KEY"
    if not key:
        return None
    register_secret(key)
    if len(key) < MIN_KEY_LENGTH:
        raise SigningKeyError(
            f"The backup signing key from {source} has {len(key)} characters; it needs "
            f"{MIN_KEY_LENGTH} or more (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'`)."
        )
    return key.encode()


def key_id(key: bytes) -> str:
    """A short name for a key that does not reveal it (which key signed a manifest)."""
    return hmac.new(key, b"choregarden backup signing key id", hashlib.sha256).hexdigest()[:16]


def _payload(manifest: dict[str, Any]) -> bytes:
    body = {k: v for k, v in manifest.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def sign(manifest: dict[str, Any], key: bytes) -> dict[str, Any]:
    """Return the manifest with its signature (over every other field, the sha256 included)."""
    value = hmac.new(key, _payload(manifest), hashlib.sha256).hexdigest()
    return {
        **manifest,
        "signature": {"algorithm": ALGORITHM, "key_id": key_id(key), "value": value},
    }


def check_signature(
    manifest_name: str, manifest: dict[str, Any], key: bytes | None, *, allow_unsigned: bool
) -> str:
    """Refuse a manifest whose signature is wrong; return a warning ("" if none) otherwise.

    Unsigned or uncheckable manifests raise ManifestError unless `allow_unsigned`, and
    then come back as a warning for the operator.
    """
    dump = manifest_name.removesuffix(".json")
    signature = manifest.get("signature")
    if signature is None:
        why = (
            f"{manifest_name} is not signed: it was written before backups were signed, or "
            f"not by `backup create`, so nothing proves the backup role wrote {dump}"
        )
    elif key is None:
        why = f"{manifest_name} is signed, but no signing key is set ({KEY_SETTINGS})"
    elif not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
        raise ManifestError(
            f"{manifest_name} has a signature this project does not write: do not restore "
            f"{dump}; restore an older backup."
        )
    elif signature.get("key_id") != key_id(key):
        why = (
            f"{manifest_name} was signed with another key (key id "
            f"{str(signature.get('key_id'))[:16]!r}; the configured key's id is {key_id(key)!r})"
        )
    else:
        expected = hmac.new(key, _payload(manifest), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(signature.get("value", ""))):
            raise ManifestError(
                f"{manifest_name}'s signature does not match its contents: the manifest (or "
                f"the {dump} it describes) was changed after the backup role wrote it. Do not "
                "restore it; restore an older backup and find out who can write the bucket."
            )
        return ""
    if not allow_unsigned:
        raise ManifestError(
            f"{why}. Restore it only if you trust it: add --allow-unsigned (or set "
            f"{KEY_SETTINGS} to the key that signed it)."
        )
    return (
        f"WARNING: {why}. Going on because of --allow-unsigned: this backup may not be the "
        "one the backup role wrote."
    )


def key_for_signing() -> bytes:
    """The key `backup create` signs with; refuse to write an unsigned backup."""
    key = signing_key()
    if key is None:
        raise BackupError(
            f"No backup signing key is set: set {KEY_SETTINGS} so that a restore can tell "
            'the backup role wrote the backup (docs/backups.md, "Signed manifests").'
        )
    return key


def signed_backup(
    storage: Storage, env: str, name: str, *, allow_unsigned: bool
) -> tuple[Backup, str]:
    """Find backup `name` and check its manifest's signature; return it and any warning."""
    backup = find_backup(storage, env, name)
    key = signing_key() if backup.manifest.get("signature") is not None else None
    warning = check_signature(
        backup.name + MANIFEST_SUFFIX, backup.manifest, key, allow_unsigned=allow_unsigned
    )
    return backup, warning
