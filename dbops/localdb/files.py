"""The local cluster's folder and secret files, safe when another user can reach the folder.

The folder may sit under the shared temp directory (a checkout root cannot hand to the
`postgres` user), where anyone could create it first, or plant links in it, so that
root's `devdb` writes the passwords through a link. So: the folder must be a real
directory owned by the current user and writable by nobody else, and files are created
exclusively, never through a link, with their final mode from the start, then renamed
over the old one (a rename replaces a link, never follows it).
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from dbops.localdb.errors import UnsafeFolderError


def _refuse(folder: Path, why: str) -> UnsafeFolderError:
    return UnsafeFolderError(
        f"The local database folder {folder} {why}: another user could read or redirect its "
        f"passwords, so it is not used. Remove it (`rm -rf {folder}`) if it is yours, or "
        "set DEVDB_DIR to a folder of your own."
    )


def check_private_folder(folder: Path, *, take_back_from: int | None = None) -> bool:
    """Return whether folder exists; raise UnsafeFolderError unless only we can change it.

    A folder owned by `take_back_from` (the user the cluster runs as, which earlier
    releases made the folder's owner) is taken back through a descriptor opened without
    following links, so nothing can swap it between the check and the change.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    except OSError:
        if os.path.islink(folder):
            raise _refuse(folder, "is a symbolic link") from None
        raise _refuse(folder, "is not a directory") from None
    try:
        info = os.fstat(fd)
        me = os.geteuid()
        if info.st_uid != me and take_back_from is not None and info.st_uid == take_back_from:
            os.fchown(fd, me, os.getegid())
            os.fchmod(fd, 0o755)
            info = os.fstat(fd)
        if info.st_uid != me:
            raise _refuse(folder, f"belongs to user id {info.st_uid}, not to you ({me})")
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise _refuse(folder, f"is writable by others (mode {stat.filemode(info.st_mode)})")
    finally:
        os.close(fd)
    return True


def make_private_folder(folder: Path) -> None:
    """Create folder (mode 0755: the cluster's user must reach its data) or check it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        check_private_folder(folder)
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchmod(fd, 0o755)  # whatever the umask took away
    finally:
        os.close(fd)


def write_private(
    path: Path, data: bytes, *, mode: int = 0o600, owner: tuple[int, int] | None = None
) -> None:
    """Replace path with data, created with `mode` (and owner) before a byte is written."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)  # the umask may have taken bits from `mode`
            if owner is not None:
                os.fchown(out.fileno(), *owner)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def create_private(path: Path, *, owner: tuple[int, int] | None = None) -> None:
    """Create an empty 0600 file at path unless it exists (as a file, not a link)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        read_private(path, limit=0)
        return
    try:
        if owner is not None:
            os.fchown(fd, *owner)
    finally:
        os.close(fd)


def read_private(path: Path, *, limit: int = 1 << 20) -> str:
    """Return the text of a regular file at path, refusing a link (FileNotFoundError if none)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        if isinstance(err, FileNotFoundError):
            raise
        if os.path.islink(path):
            raise _refuse(path.parent, f"holds {path.name} as a symbolic link") from None
        raise
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise _refuse(path.parent, f"holds {path.name}, which is not a regular file")
        return file.read(limit).decode()
