"""Run `manage.py` for throwaway projects in forks of one process that imported Django once.

A fresh interpreter per command spends most of its time importing Django and the project's
libraries. `python tests/forkserver.py` imports them (without settings: each throwaway
project has its own) and then reads one JSON request per line on stdin: argv, environment,
working directory, timeout. For each, a forked child takes that environment, folder and
import path, sets sys.argv and calls `manage.main()` exactly as `python manage.py ...`
does; the server answers one JSON line with the exit code and the child's output.

Tests where the process itself is the point (kill -9, signals, several at once) start the
real `manage.py` instead.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# Imported once in the server; none of them reads the settings at import time.
PRELOAD = (
    "django.core.management",
    "django.core.management.base",
    "django.db.migrations.autodetector",
    "django.db.migrations.executor",
    "django.db.migrations.loader",
    "django.db.migrations.state",
    "django.db.backends.postgresql.base",
    "django.db.backends.postgresql.schema",
    "django.forms",
    "django.template",
    "django.urls",
    "django.views.debug",
    "psycopg",
    "environ",
    "pglast",
    "boto3",
)


def fork_command(
    manage: Any, argv: list[str], timeout: float, prepare: Any = None
) -> dict[str, Any]:
    """Run `manage.py ARGV` in a forked child; return its exit code and output.

    In the child, `prepare()` (if given) first sets up the process (environment, folder);
    then sys.argv is set and `manage.main()` is called exactly as `python manage.py ...`
    does, with stdin empty and the output going to files.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            # The parent's stdin may carry its requests: a command that reads input gets none.
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            signal.alarm(max(1, int(timeout)))
            sys.argv = [str(REPO / "manage.py"), *argv]
            code = 0
            try:  # whatever happens, the child ends here: it never returns to the caller
                if prepare is not None:
                    prepare()
                manage.main()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
                if isinstance(exit_.code, str):
                    sys.stderr.write(exit_.code + "\n")
            except BaseException:  # noqa: BLE001 - what the interpreter would print
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return {
            "code": os.waitstatus_to_exitcode(status),
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
        }


def become(request: dict[str, Any]) -> None:
    """In the forked child: take the request's environment, folder and import path."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [str(REPO), *extra, *[p for p in sys.path if p not in (str(REPO), *extra)]]
    importlib.invalidate_caches()


def serve() -> None:
    # As for `python manage.py`: the repository first, not this file's folder (whose test
    # packages are named like the project's).
    sys.path[0] = str(REPO)
    for name in PRELOAD:
        importlib.import_module(name)
    import manage

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        request = json.loads(line)
        answer = fork_command(
            manage, request["argv"], request["timeout"], prepare=functools.partial(become, request)
        )
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


class ForkServer:
    """The test process's handle on one fork server, started on first use."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.lock = threading.Lock()

    def start(self) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        process = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,
        )
        assert process.stdout is not None
        if process.stdout.readline() != "ready\n":
            raise RuntimeError("the fork server did not start (see its stderr above)")
        return process

    def run(
        self, argv: list[str], *, env: dict[str, str], cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        """Run `manage.py ARGV` in a fork; return it as subprocess.run would."""
        request = {"argv": argv, "env": env, "cwd": str(cwd), "timeout": timeout}
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                self.process = self.start()
            assert self.process.stdin is not None and self.process.stdout is not None
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            answer = json.loads(self.process.stdout.readline())
        args = [sys.executable, str(REPO / "manage.py"), *argv]
        return subprocess.CompletedProcess(args, answer["code"], answer["stdout"], answer["stderr"])


SERVER = ForkServer()


def run_manage(
    *args: str, env: dict[str, str], cwd: Path = REPO, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `python manage.py ARGS` of this repository as a user would, in a fork.

    The same `manage.main()`, environment (the project's or a throwaway project's
    settings), folder, exit code and output as a fresh interpreter, without its start-up.
    """
    return SERVER.run(list(args), env=env, cwd=cwd, timeout=timeout)


if __name__ == "__main__":
    serve()
