"""The import contracts hold, and they catch an import that breaks them (pyproject.toml).

The engine (sqlmigrations) is an app any Django project can install: it imports none of
this project's apps, and its library (sqlmigrations.lib) imports neither Django nor the
rest of the engine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("sqlmigrations", "dbops", "accounts", "chores", "choregarden")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": str(LINT_IMPORTS.parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_project_keeps_its_import_contracts() -> None:
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: 2 kept, 0 broken." in proc.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("lib/names.py", "from django.db import connection", "library imports neither Django"),
        ("lib/lock.py", "from sqlmigrations import engine", "library imports neither Django"),
        ("checks.py", "from dbops import health", "engine imports none of the project's apps"),
    ],
)
def test_an_import_against_the_contracts_fails_the_lint(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(
            REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    path = tmp_path / "sqlmigrations" / module
    path.write_text(path.read_text() + f"\n{line}\n")

    proc = lint_imports(tmp_path)

    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Contracts: 1 kept, 1 broken." in proc.stdout
    broken = proc.stdout.split("Broken contracts")[1]
    assert contract in broken.replace("\n", " ")
    assert f"sqlmigrations.{module[:-3].replace('/', '.')} -> " in broken
