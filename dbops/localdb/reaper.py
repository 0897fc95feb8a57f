"""Destroy a throwaway cluster when the process that made it ends, however it ends.

PostgreSQL runs as a daemon, not as a child of the process that started it: a test run or
benchmark that is killed (Ctrl-C twice, SIGKILL, a CI timeout) would leave its cluster
running, and its folder, for good. `destroy_with_this_process(cluster)` starts a small
cleaner that waits for this process to end, then stops the cluster and removes its folder.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from dbops.localdb.cluster import LocalCluster
from sqlmigrations.lib import processes

_CLEANERS: list[processes.Popen[bytes]] = []  # their pipes stay open while this process lives


def destroy_with_this_process(cluster: LocalCluster) -> None:
    """Destroy `cluster` (stop it, remove its folder) when this process ends."""
    _CLEANERS.append(
        processes.start_cleaner(
            [
                sys.executable,
                "-m",
                "dbops.localdb.reaper",
                str(cluster.requested_dir),
                cluster.database,
            ]
        )
    )


def main(argv: list[str]) -> int:
    requested_dir, database = Path(argv[0]), argv[1]
    sys.stdin.buffer.read()  # end of file: the process that made the cluster has ended
    LocalCluster(requested_dir, database=database).destroy()
    with contextlib.suppress(OSError):  # a test's temporary folder, when the cluster was elsewhere
        requested_dir.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
