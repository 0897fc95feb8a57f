"""moto as RDS for the tests of the RDS commands: a source instance, the calls made.

The fixtures `aws` and `calls` (tests/dbops/conftest.py) use these.
"""

from __future__ import annotations

REGION = "eu-west-1"
SECOND = "eu-central-1"
SOURCE = "cg-prod"
ACCOUNT = "123456789012"  # moto's
