"""A throwaway cluster goes when the process that made it is killed (nothing left running)."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from dbops.localdb import LocalCluster
from sqlmigrations.lib import processes
from tests.helpers import REPO

MAKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from dbops.localdb import LocalCluster
    from dbops.localdb.reaper import destroy_with_this_process

    cluster = LocalCluster(Path(sys.argv[1]))
    cluster.start()
    destroy_with_this_process(cluster)
    print(cluster.pid(), cluster.base_dir, flush=True)
    time.sleep(600)
    """
)


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_maker_leaves_no_cluster_running_and_no_folder() -> None:
    requested = Path(tempfile.mkdtemp(prefix="choregarden-reaper-test-"))
    maker = processes.popen(
        [sys.executable, "-c", MAKER, str(requested)],
        cwd=REPO,
        stdout=processes.PIPE,
        text=True,
    )
    assert maker.stdout is not None
    pid_text, base_dir = maker.stdout.readline().split()
    postmaster = int(pid_text)
    assert running(postmaster)

    try:
        os.kill(maker.pid, signal.SIGKILL)
        maker.wait(timeout=10)

        deadline = time.monotonic() + 60
        while (running(postmaster) or Path(base_dir).exists()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not running(postmaster), "the cluster outlived the process that made it"
        assert not Path(base_dir).exists()
        assert not requested.exists()
    finally:  # a failure here must not leave the cluster either
        LocalCluster(requested).destroy()
