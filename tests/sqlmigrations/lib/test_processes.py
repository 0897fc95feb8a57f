"""Every external tool the project starts dies with the process that started it."""

from __future__ import annotations

import ast
import os
import pwd
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, alive

PACKAGES = ("sqlmigrations", "dbops", "accounts", "chores", "choregarden")
# Ways to start a process that bypass sqlmigrations.lib.processes.
STARTERS = {"system", "popen", "spawnv", "spawnve", "spawnl", "spawnle", "fork", "forkpty"}


def wait_gone(pid: int, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def start_parent(*args: str) -> tuple[subprocess.Popen[str], int]:
    """Start a Python process that starts `sleep 120` (sqlmigrations.lib.processes); return both."""
    code = (
        "import sys, time; from sqlmigrations.lib import processes; "
        "p = processes.popen(['sleep', '120'], run_as=sys.argv[1] or None); "
        "print(p.pid, flush=True); time.sleep(120)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert parent.stdout is not None
    return parent, int(parent.stdout.readline())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("run_as", ["", "postgres"])
def test_a_tool_dies_when_its_parent_is_killed(run_as: str) -> None:
    if run_as and os.geteuid() != 0:
        pytest.skip("starting a tool as another user needs root")
    parent, child = start_parent(run_as)
    try:
        assert alive(child)
        if run_as:
            assert os.stat(f"/proc/{child}").st_uid == pwd.getpwnam(run_as).pw_uid
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert wait_gone(child), f"sleep {child} outlived its parent"
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_no_module_starts_a_process_but_the_processes_module() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            if path == REPO / "sqlmigrations" / "lib" / "processes.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                if "subprocess" in names or "multiprocessing" in names:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports subprocess")
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "os"
                    and (node.attr in STARTERS or node.attr.startswith("exec"))
                ):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno} os.{node.attr}")
    assert offenders == []


def test_stop_lets_a_process_end_gracefully_then_kills_one_that_does_not() -> None:
    from sqlmigrations.lib import processes

    graceful = processes.popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = processes.popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline() == "ready\n"

    processes.stop(graceful)
    processes.stop(stubborn, timeout=0.5)

    assert graceful.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL
    processes.stop(graceful)  # a process that has ended already: nothing to do
