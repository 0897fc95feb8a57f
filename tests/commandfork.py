"""Run many `manage.py` command lines quickly: Django starts once, each command in a fork.

`python tests/commandfork.py` reads a JSON list of argv lists on stdin and prints one JSON
object per command line: argv, exit code, stdout, stderr. The process imports the project's
`manage.py`, loads the settings from its environment and sets Django up once; then, for each
command line, a forked child sets sys.argv and calls `manage.main()` exactly as
`python manage.py ...` does, with its output going to files. A fresh interpreter per
command would spend most of its time importing Django (about a second each).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 120  # seconds a command may take before the child is killed


def run(manage: Any, argv: list[str]) -> dict[str, Any]:
    """Run one command line in a forked child; return its exit code and output."""
    from tests.forkserver import fork_command  # the repository is on sys.path by now

    return {"argv": argv, **fork_command(manage, argv, TIMEOUT)}


def main() -> None:
    runs = json.loads(sys.stdin.read())
    sys.path.insert(0, str(REPO))
    sys.argv = [str(REPO / "manage.py")]  # the settings look at the program's name
    import manage

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "choregarden.settings")
    manage.load_settings(sys.argv)
    import boto3  # noqa: F401 - imported once here, not by each child that reads a secret
    import django

    django.setup()
    print(json.dumps([run(manage, argv) for argv in runs]))


if __name__ == "__main__":
    main()
