"""Read Flyway's per-script config files, `<script>.sql.conf`.

Flyway (FileSystemScanner.getResource + SqlScriptMetadata + ConfigUtils) looks for a file
named exactly like the script plus ".conf", reads it as UTF-8 with java.util.Properties
after trimming each line, and knows these keys (case-sensitive):

- executeInTransaction  true/false, compared ignoring case ("Invalid value for
                        executeInTransaction (should be either true or false)")
- encoding              the charset to read the script with (overrides detection)
- placeholderReplacement  true/false
- shouldExecute         a boolean expression (not supported here)

Any other key fails with "Unknown configuration property: <key>. Please check your script
config files". When executeInTransaction is absent Flyway decides from the statements
(e.g. CREATE INDEX CONCURRENTLY cannot run in one); `explicit` tells callers what was set.

This project's own per-file settings (the lock waits of lib.lockwait) therefore cannot be
keys: they sit in a comment line, which Properties (and so Flyway) skips,

    # choregarden: lockTimeout=10s, statementTimeout=0, lockRetries=5

A bad directive fails here, naming the file and line, before anything runs.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path

from sqlmigrations.lib.checksum import decode, strip_bom
from sqlmigrations.lib.exceptions import ScriptConfigError
from sqlmigrations.lib.lockwait import parse_count, parse_duration

_BOOLEAN_KEYS = {
    "executeInTransaction": "execute_in_transaction",
    "placeholderReplacement": "placeholder_replacement",
}
_KNOWN = (*_BOOLEAN_KEYS, "encoding")
# Properties.load: the key ends at the first '=', ':' or whitespace; then optional
# whitespace, at most one '=' or ':', more whitespace, and the value.
_LINE = re.compile(r"(?P<key>[^=:\s]*)\s*[=:]?\s*(?P<value>.*)")
_EOL = re.compile(r"\r\n|\r|\n")
# A comment line that carries this project's settings: '#' or '!', then "choregarden:".
_DIRECTIVE = re.compile(r"[#!]\s*choregarden\s*:(?P<items>.*)")
# directive key -> (ScriptConfig field, parser)
_DIRECTIVE_KEYS = {
    "lockTimeout": ("lock_timeout_ms", parse_duration),
    "statementTimeout": ("statement_timeout_ms", parse_duration),
    "lockRetries": ("retries", parse_count),
}
DIRECTIVE_EXAMPLE = "# choregarden: lockTimeout=10s, statementTimeout=0, lockRetries=5"


@dataclass(frozen=True)
class ScriptConfig:
    """Hold one script's settings from its `.sql.conf` file (defaults when there is none)."""

    execute_in_transaction: bool = True
    placeholder_replacement: bool = True
    encoding: str | None = None  # None means the project default, UTF-8
    explicit: frozenset[str] = field(default_factory=frozenset)  # Flyway keys in the file
    # From a `# choregarden:` comment line; None: the SQL_MIGRATIONS setting applies.
    lock_timeout_ms: int | None = None
    statement_timeout_ms: int | None = None
    retries: int | None = None


DEFAULT = ScriptConfig()


def parse_script_config(text: str, *, path: str) -> ScriptConfig:
    """Parse the text of a `.sql.conf` file, raising ScriptConfigError with file and line."""
    found: dict[str, tuple[str, int]] = {}
    directives: dict[str, object] = {}
    for number, raw_line in enumerate(_EOL.split(strip_bom(text)), start=1):
        line = raw_line.strip()
        if not line or line[0] in "#!":
            directive = _DIRECTIVE.fullmatch(line)
            if directive:
                directives.update(_parse_directive(directive["items"], path=path, line=number))
            continue
        match = _LINE.fullmatch(line)
        assert match is not None  # every line matches; the groups may be empty
        key, value = match["key"], match["value"]
        if key not in _KNOWN:
            hint = _close_key(key)
            raise ScriptConfigError(
                f"unknown script config key {key!r} (Flyway: 'Unknown configuration"
                f" property'); {hint}",
                path=path,
                line=number,
            )
        found[key] = (value, number)  # Properties.load: a repeated key's last value wins
    settings: dict[str, object] = {}
    for key, attr in _BOOLEAN_KEYS.items():
        if key in found:
            value, number = found[key]
            if value.lower() not in ("true", "false"):
                raise ScriptConfigError(
                    f"invalid value {value!r} for {key}; write {key}=true or {key}=false",
                    path=path,
                    line=number,
                )
            settings[attr] = value.lower() == "true"
    if "encoding" in found:
        value, number = found["encoding"]
        try:
            codecs.lookup(value)
        except LookupError:
            raise ScriptConfigError(
                f"unknown encoding {value!r}; use a charset name such as UTF-8 or ISO-8859-1",
                path=path,
                line=number,
            ) from None
        settings["encoding"] = value
    settings.update(directives)
    return ScriptConfig(**settings, explicit=frozenset(found))  # type: ignore[arg-type]


def _parse_directive(items: str, *, path: str, line: int) -> dict[str, object]:
    """Parse the `key=value, ...` of a `# choregarden:` line into ScriptConfig fields."""
    values: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in items.split(","))):
        key, sep, value = (part.strip() for part in item.partition("="))
        if key not in _DIRECTIVE_KEYS or not sep:
            raise ScriptConfigError(
                f"unknown directive item {item!r}; write key=value pairs with the keys "
                f"{', '.join(_DIRECTIVE_KEYS)}, e.g. {DIRECTIVE_EXAMPLE}",
                path=path,
                line=line,
            )
        attr, parse = _DIRECTIVE_KEYS[key]
        try:
            values[attr] = parse(value, what=key)
        except ValueError as err:
            message = f"invalid directive value: {err}"
            raise ScriptConfigError(message, path=path, line=line) from None
    if not values:
        raise ScriptConfigError(
            f"empty choregarden directive; write e.g. {DIRECTIVE_EXAMPLE}", path=path, line=line
        )
    return values


def load_script_config(conf: Path, *, path: str) -> ScriptConfig:
    """Read and parse a `.sql.conf` file; `path` is how messages name it."""
    return parse_script_config(decode(conf.read_bytes(), path=path), path=path)


def _close_key(key: str) -> str:
    """Suggest the fix for an unknown key."""
    if key == "shouldExecute":
        return "shouldExecute expressions are not supported by this project; remove the line"
    for known in _KNOWN:
        if key.lower() == known.lower():
            return f"keys are case-sensitive: write {known}"
    return f"the known keys are {', '.join(_KNOWN)}; remove or correct the line"
