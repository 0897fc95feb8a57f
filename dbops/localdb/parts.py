"""What the local cluster's PgBouncer and replica share: a port of their own, in a state file."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from dbops.localdb.errors import LocalDBError
from dbops.localdb.files import read_private, write_private

if TYPE_CHECKING:
    from dbops.connections.config import ConnInfo
    from dbops.localdb.cluster import LocalCluster


class ClusterPart:
    """A server the local cluster starts beside itself (`devdb start --with-<flag>`)."""

    name = ""  # as messages name it: "PgBouncer", "replica"
    flag = ""  # the `devdb start` option that makes it

    def __init__(self, cluster: LocalCluster, base_dir: Path) -> None:
        self.cluster = cluster
        self.base_dir = base_dir

    @property
    def state_file(self) -> Path:
        return self.base_dir / "state.json"

    def port(self) -> int:
        make = f"`python manage.py devdb start {self.flag}`"
        try:
            return int(json.loads(read_private(self.state_file))["port"])
        except FileNotFoundError:
            raise LocalDBError(f"The local {self.name} has not been set up: run {make}.") from None
        except (ValueError, KeyError, TypeError) as err:
            raise LocalDBError(
                f"{self.state_file} is not the {self.name}'s state ({err}): run {make} again."
            ) from None

    def save_port(self, port: int) -> None:
        write_private(self.state_file, json.dumps({"port": port}).encode())

    def conninfo(self, role: str = "app", database: str | None = None) -> ConnInfo:
        """The cluster's role (its login and CA) at this server's port."""
        return replace(self.cluster.conninfo(role, database), port=self.port())

    def url(self, role: str = "app", database: str | None = None) -> str:
        return self.conninfo(role, database).url()
