"""Run `manage.py ARGS` and kill -9 this very process at a step a test names.

    python tests/killpoint.py MODULE:ATTR N MATCH ARGS...

Before the N-th call of MODULE.ATTR (a function, or Class.method) whose arguments'
repr contains MATCH, the process sends itself SIGKILL: nothing after it runs, no
`finally`, no exit handler, exactly as with `kill -9` from outside, but at an exact
point (between two renames, after the first delete) that no timing could hit reliably.
Run from the project folder.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from pathlib import Path
from typing import Any


def arm(target: str, count: int, match: str) -> None:
    """Replace MODULE.ATTR by a wrapper that kills the process at the count-th match."""
    module_name, _, attr = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *path, name = attr.split(".")
    for part in path:
        owner = getattr(owner, part)
    real = getattr(owner, name)
    calls = 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        if match in repr(args) + repr(kwargs):
            calls += 1
            if calls == count:
                os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)

    setattr(owner, name, wrapper)


def main(argv: list[str]) -> None:
    target, count, match, *args = argv
    sys.path.insert(0, str(Path.cwd()))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "choregarden.settings")
    import django

    django.setup()
    arm(target, int(count), match)
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *args])


if __name__ == "__main__":
    main(sys.argv[1:])
