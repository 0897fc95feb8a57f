"""Start external tools (pg_dump, pg_restore, psql, initdb, pg_ctl, squawk, git, ruff).

Every tool the project starts goes through here, so that none outlives the command that
started it. On Linux the child asks the kernel, before it executes the tool, for SIGKILL
when its parent dies (prctl PR_SET_PDEATHSIG): that holds when the parent exits, raises,
or is killed with SIGKILL, which no exit handler survives, so a process group killed
"on exit" would not do. Two consequences, both wanted:

- it is not inherited by the tool's own children: `pg_ctl start` may die with us, the
  postmaster it forks keeps running, as it must;
- it fires when the *thread* that started the tool ends: start tools from the thread
  that waits for them (every caller here does).

Elsewhere (macOS) the tools are started as usual; the callers still kill their child on
any exception.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

PR_SET_PDEATHSIG = 1

# Names for the callers, so that none of them needs the subprocess module itself.
PIPE, DEVNULL, STDOUT = subprocess.PIPE, subprocess.DEVNULL, subprocess.STDOUT
Popen = subprocess.Popen
CompletedProcess = subprocess.CompletedProcess
TimeoutExpired = subprocess.TimeoutExpired


def _prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def _die_with(parent: int) -> Callable[[], None] | None:
    if _PRCTL is None:
        return None
    prctl, getppid, exit_now, sigkill = _PRCTL, os.getppid, os._exit, int(signal.SIGKILL)

    def in_child() -> None:
        # Runs between fork and exec: no imports, no locks, nothing but two system calls.
        prctl(PR_SET_PDEATHSIG, sigkill, 0, 0, 0)
        if getppid() != parent:
            exit_now(1)  # the parent died before the request took effect

    return in_child


def die_with_parent() -> None:
    """Have this forked process (a server's worker) killed when the process that forked it dies."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() == 1:  # the parent died before the request took effect
            os._exit(1)


def _as_user(name: str, env: dict[str, str] | None) -> dict[str, Any]:
    # Not runuser: it forks and waits, and its child would survive it.
    user = pwd.getpwnam(name)
    env = dict(os.environ if env is None else env)
    env.update(HOME=user.pw_dir, USER=name, LOGNAME=name)
    return {
        "user": user.pw_uid,
        "group": user.pw_gid,
        "extra_groups": os.getgrouplist(name, user.pw_gid),
        "env": env,
    }


def _options(run_as: str | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    if "preexec_fn" in kwargs:
        raise TypeError("sqlmigrations.lib.processes sets preexec_fn itself")
    options = dict(kwargs)
    if run_as is not None:
        options.update(_as_user(run_as, options.get("env")))
    # After the user change (CPython calls preexec_fn last): a change of user clears it.
    options["preexec_fn"] = _die_with(os.getpid())
    return options


def popen(argv: Sequence[str], *, run_as: str | None = None, **kwargs: Any) -> Popen[Any]:
    """subprocess.Popen of a tool that dies with this process (as `run_as` when given)."""
    return subprocess.Popen(list(argv), **_options(run_as, kwargs))


def run(argv: Sequence[str], *, run_as: str | None = None, **kwargs: Any) -> CompletedProcess[Any]:
    """subprocess.run of a tool that dies with this process (as `run_as` when given)."""
    return subprocess.run(list(argv), **_options(run_as, kwargs))


def stop(proc: Popen[Any], timeout: float = 30) -> None:
    """Ask a started process to stop (SIGTERM: a server's graceful stop), then kill it."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def start_cleaner(argv: Sequence[str]) -> Popen[Any]:
    """Start a process that outlives this one to clean up after it, and only for that.

    It reads its standard input until end of file, which comes when this process exits or
    is killed, however it ends (the write end is this process's alone), then does its work.
    Its own session: a Ctrl-C or a signal to this process group does not stop it early.
    """
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def become(argv: Sequence[str], env: dict[str, str]) -> None:
    """Replace this process with the tool (an interactive psql): nothing is left to outlive."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], list(argv), env)
