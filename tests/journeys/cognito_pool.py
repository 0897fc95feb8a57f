"""Run `manage.py cognitosync` against moto's Cognito, several runs in one process.

moto keeps its AWS state in the process that mocks it, so the pool, its users and every
sync run share this process: `python tests/journeys/cognito_pool.py '<json>'` in the
project folder, where the JSON is {"users": [[username, email, name], ...], "runs":
[[arg, ...], ...]}. It prints one JSON object per run: argv, exit code, stdout, stderr.
"""

from __future__ import annotations

import io
import json
import os
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

REGION = "eu-west-1"


def main(spec: dict[str, list[list[str]]]) -> list[dict[str, object]]:
    """Create the pool and its users under moto, then run each `manage.py` argv in turn."""
    import boto3
    from moto import mock_aws

    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION=REGION
    )
    results: list[dict[str, object]] = []
    with mock_aws():
        client = boto3.client("cognito-idp", region_name=REGION)
        pool = client.create_user_pool(PoolName="choregarden")["UserPool"]["Id"]
        for username, email, name in spec["users"]:
            attrs = [
                {"Name": "email", "Value": email},
                {"Name": "email_verified", "Value": "true"},
                {"Name": "name", "Value": name},
            ]
            client.admin_create_user(UserPoolId=pool, Username=username, UserAttributes=attrs)
        os.environ["COGNITO_USER_POOL_ID"] = pool  # read by the settings, as in production
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "choregarden.settings")
        from django.core.management import execute_from_command_line

        for argv in spec["runs"]:
            out, err, code = io.StringIO(), io.StringIO(), 0
            with redirect_stdout(out), redirect_stderr(err):
                try:
                    execute_from_command_line(["manage.py", *argv])
                except SystemExit as exit_:
                    code = exit_.code if isinstance(exit_.code, int) else 1
            results.append(
                {"argv": argv, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
            )
    return results


if __name__ == "__main__":
    sys.path.insert(0, str(Path.cwd()))  # the project folder, as manage.py has it
    print(json.dumps(main(json.loads(sys.argv[1]))))
