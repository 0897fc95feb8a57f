"""The local cluster's folder: another user's folder, or a link in it, never gets a password.

Run as root, the cluster lives in a predictable folder under the temp directory when the
checkout is out of the `postgres` user's reach; anyone could create that folder first.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbops.localdb import LocalCluster, UnsafeFolderError
from dbops.localdb.files import write_private
from tests.helpers import run_manage

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the fallback folder is root's alone")

ROOT_SECRET = "root's own file\n"


@pytest.fixture
def fallback(tmp_path: Path) -> Iterator[LocalCluster]:
    checkout = tmp_path / "checkout" / "var" / "devdb"
    tmp_path.chmod(0o700)  # out of the cluster user's reach, as a checkout under /root
    cluster = LocalCluster(checkout)
    assert cluster.base_dir != cluster.requested_dir  # the shared temp directory
    yield cluster
    with contextlib.suppress(UnsafeFolderError):  # a refused folder has nothing to stop
        cluster.stop()
    if cluster.base_dir.is_symlink():  # rmtree refuses a link, and would leave it in /tmp
        cluster.base_dir.unlink()
    shutil.rmtree(cluster.base_dir, ignore_errors=True)


@pytest.fixture
def roots_file(tmp_path: Path) -> Path:
    target = tmp_path / "roots-file"
    target.write_text(ROOT_SECRET)
    return target


def plant(cluster: LocalCluster, owner: str, target: Path) -> None:
    """What another user does first: the folder, with state.json a link to root's file."""
    cluster.base_dir.mkdir(mode=0o755)
    (cluster.base_dir / "state.json").symlink_to(target)
    user = pwd.getpwnam(owner)
    for path in (cluster.base_dir, cluster.base_dir / "state.json"):
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)


def test_it_refuses_a_folder_another_user_made_first(
    fallback: LocalCluster, roots_file: Path
) -> None:
    plant(fallback, "nobody", roots_file)
    with pytest.raises(UnsafeFolderError) as refused:
        fallback.start()
    message = str(refused.value)
    assert str(fallback.base_dir) in message
    assert "not to you" in message and "DEVDB_DIR" in message
    assert roots_file.read_text() == ROOT_SECRET
    assert os.listdir(fallback.base_dir) == ["state.json"]  # nothing was written


def test_manage_py_names_the_folder_and_the_fix_in_one_line(
    fallback: LocalCluster, roots_file: Path
) -> None:
    plant(fallback, "nobody", roots_file)
    env = {**os.environ, "DEVDB_DIR": str(fallback.requested_dir), "DJANGO_ENV": "development"}
    env.pop("DATABASE_URL", None)
    proc = run_manage("devdb", "start", env=env)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"CommandError: The local database folder {fallback.base_dir} belongs")
    assert "set DEVDB_DIR to a folder of your own" in line
    assert roots_file.read_text() == ROOT_SECRET


def test_it_refuses_a_folder_others_may_write_to(fallback: LocalCluster) -> None:
    fallback.base_dir.mkdir()
    fallback.base_dir.chmod(0o777)
    with pytest.raises(UnsafeFolderError, match="is writable by others"):
        fallback.start()


def test_it_refuses_a_folder_that_is_a_link(fallback: LocalCluster, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    fallback.base_dir.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UnsafeFolderError, match="is a symbolic link"):
        fallback.start()
    assert os.listdir(tmp_path / "elsewhere") == []


def test_a_linked_state_file_in_the_cluster_users_folder_gets_no_password(
    fallback: LocalCluster, roots_file: Path
) -> None:
    # Earlier releases gave the folder to the cluster's user: it is taken back, and the
    # link it holds is replaced, never written through.
    plant(fallback, fallback.run_as or "postgres", roots_file)
    assert fallback.start() == "created and started"
    assert roots_file.read_text() == ROOT_SECRET
    info = fallback.base_dir.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o755)
    assert not fallback.state_file.is_symlink()
    assert fallback.state().app_password not in roots_file.read_text()


def test_state_refuses_a_linked_state_file(fallback: LocalCluster, roots_file: Path) -> None:
    fallback.base_dir.mkdir(mode=0o755)
    fallback.state_file.symlink_to(roots_file)
    with pytest.raises(UnsafeFolderError, match=r"holds state\.json as a symbolic link"):
        fallback.state()


def test_a_private_file_has_its_mode_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_private(tmp_path / "secret", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "secret").stat().st_mode) == 0o600
    assert os.listdir(tmp_path) == ["secret"]  # no temporary file left behind
