"""moto as RDS for the tests of the RDS commands: a source instance, the calls made.

The fixtures `aws` and `calls` (tests/dbops/conftest.py) use these.
"""

from __future__ import annotations

from typing import Any

REGION = "eu-west-1"
SECOND = "eu-central-1"
SOURCE = "cg-prod"
ACCOUNT = "123456789012"  # moto's


def create_instance(client: Any, name: str, **params: Any) -> None:
    """Another PostgreSQL instance in moto: a small one, `params` added or replaced."""
    client.create_db_instance(
        **{
            "DBInstanceIdentifier": name,
            "Engine": "postgres",
            "DBInstanceClass": "db.t4g.micro",
            "AllocatedStorage": 20,
            "MasterUsername": "owner",
            "MasterUserPassword": "not-used-here",
            **params,
        }
    )
