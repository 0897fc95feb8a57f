"""The lock files pin every package, with hashes, and agree with the .in files they come from."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO, planned_installs

LOCKS = {
    "requirements.txt": "requirements.in",
    "requirements-tools.txt": "requirements-tools.in",
    "requirements-dev.txt": "requirements-dev.in",
}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_entries(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Map each locked package to its version and hashes."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = ""
    for line in path.read_text().splitlines():
        pin = PIN.match(line)
        if pin:
            current = canonical(pin[1])
            assert current not in entries, f"{path.name}: {current} twice"
            entries[current] = (pin[2], [])
        elif line.strip().startswith("--hash="):
            entries[current][1].append(line.strip().removeprefix("--hash=").rstrip(" \\"))
        elif line.strip() and not line.lstrip().startswith("#"):
            pytest.fail(f"{path.name}: unexpected line {line!r} (regenerate with `make lock`)")
    return entries


def direct_pins(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        pin = PIN.match(line)
        if pin:
            pins[canonical(pin[1])] = pin[2]
        elif line.startswith("-r "):
            pins |= direct_pins(path.parent / line.split()[1])
    return pins


@pytest.mark.parametrize("lock", LOCKS)
def test_every_locked_package_is_pinned_with_hashes(lock: str) -> None:
    entries = lock_entries(REPO / lock)

    assert entries
    for name, (version, hashes) in entries.items():
        assert hashes, f"{lock}: {name}=={version} has no hash"
        assert all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), (name, hashes)


@pytest.mark.parametrize(("lock", "source"), LOCKS.items())
def test_each_lock_holds_its_direct_pins(lock: str, source: str) -> None:
    entries = lock_entries(REPO / lock)

    for name, version in direct_pins(REPO / source).items():
        assert name in entries, f"{name} of {source} is missing from {lock}: run `make lock`"
        assert entries[name][0] == version, f"{lock} has {name}=={entries[name][0]}: `make lock`"


def test_the_test_environment_has_the_runtime_versions() -> None:
    runtime = lock_entries(REPO / "requirements.txt")
    dev = lock_entries(REPO / "requirements-dev.txt")

    assert {name: dev[name][0] for name in runtime} == {
        name: version for name, (version, _) in runtime.items()
    }


@pytest.mark.parametrize("target", ["run", "test"])
def test_make_installs_with_hash_checking_from_the_locks_only(target: str, tmp_path: Path) -> None:
    _, installs = planned_installs(target, tmp_path / "venv")

    assert installs
    for line in installs:
        assert "--require-hashes" in line, line
        files = re.findall(r"-r (\S+)", line)
        assert files and set(files) <= set(LOCKS), line
