"""`sqlmigrations lint` runs the pinned squawk that `make run` installs, and only that one."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

from sqlmigrations.lib import squawk
from sqlmigrations.lib.squawk import SQUAWK_VERSION, SquawkError, squawk_binary
from tests.helpers import REPO, planned_installs


def fake_squawk(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / "squawk"
    program.write_text("#!/bin/sh\necho '[]'\n")
    program.chmod(0o755)
    return program


def test_it_runs_the_installed_wheel_not_a_squawk_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_squawk(tmp_path / "elsewhere")
    monkeypatch.setenv("PATH", f"{tmp_path / 'elsewhere'}:/usr/bin:/bin")

    found = Path(squawk_binary())

    wheel = metadata.distribution("squawk-cli")
    assert wheel.version == SQUAWK_VERSION
    assert found.parent != tmp_path / "elsewhere"
    assert subprocess.run([found, "--version"], capture_output=True, text=True).stdout.split()[
        -1
    ] == (SQUAWK_VERSION)


def test_without_the_wheel_it_says_how_to_install_it_and_ignores_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A virtualenv made by `make run` before squawk was part of it: no squawk beside its
    # Python, but some other squawk on PATH.
    fake_squawk(tmp_path / "elsewhere")
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "venv" / "bin" / "python"))
    monkeypatch.setenv("PATH", f"{tmp_path / 'elsewhere'}:/usr/bin:/bin")

    def not_installed(name: str) -> metadata.Distribution:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(squawk.metadata, "distribution", not_installed)

    with pytest.raises(SquawkError) as raised:
        squawk_binary()

    message = str(raised.value)
    assert "squawk is not installed in this Python environment" in message
    assert "run `make venv` (it installs requirements-tools.txt)" in message
    assert f"squawk-cli=={SQUAWK_VERSION}" in message


def test_another_version_of_the_wheel_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        squawk.metadata, "distribution", lambda name: SimpleNamespace(version="1.0.0", files=[])
    )

    with pytest.raises(
        SquawkError,
        match=rf"squawk-cli 1\.0\.0 is installed, but this project "
        rf"pins {re.escape(SQUAWK_VERSION)}",
    ):
        squawk_binary()


def test_the_pin_is_the_version_the_rules_are_written_for() -> None:
    for name in ("requirements-tools.in", "requirements-tools.txt", "requirements-dev.txt"):
        text = (REPO / name).read_text()
        assert re.search(rf"^squawk-cli=={re.escape(SQUAWK_VERSION)}\b", text, re.M), name
    assert "-r requirements-tools.in" in (REPO / "requirements-dev.in").read_text()


def test_make_run_installs_squawk(tmp_path: Path) -> None:
    # `make -n` prints what `make run` would do in a fresh clone, without doing it.
    planned, installs = planned_installs("run", tmp_path / "venv")
    assert any("-r requirements-tools.txt" in line for line in installs), planned
