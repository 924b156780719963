"""File work inside a tree an agent could have shaped: never follow its links.

The worker touches an agent's workspace (and the HOME and config copies it wrote into)
with more privilege than the agent: as root in the sandbox modes, and always with a view
of the host the sandbox hides. Whatever the agent left there is hostile data — a symlink
named `SKILL.md` pointing at `/etc/shadow`, a `projects` directory that is a link into
another tenant's workspace, a FIFO where a transcript should be, a hard link to a file it
may not read. So every operation here walks from a directory the worker trusts, one
component at a time, with ``O_NOFOLLOW`` on each (the rule of openat2's
``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``, spelled with calls every kernel has):

* no component may be a symlink, ``..``, or absolute — the walk stays beneath its root;
* what is read must be a regular file (a FIFO or device never blocks or feeds the worker),
  opened ``O_NONBLOCK`` and checked with ``fstat`` on the descriptor it reads;
* what is written is a new file created ``O_EXCL`` beside its target and renamed over it,
  so a link (soft or hard) at the target is replaced, never written through;
* ownership is changed with ``follow_symlinks=False`` relative to a directory descriptor,
  and never on a file with more than one hard link (it could be anyone's file).

Nothing of the agent runs while the worker does this (its PID namespace is gone, or
every process of its uid was killed and counted): the data is hostile but not moving.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(OSError):
    """A path the agent shaped: a link, a non-regular file, or a name that climbs out."""


def _parts(rel: str | os.PathLike[str]) -> list[str]:
    text = os.fspath(rel)
    if text.startswith("/"):
        raise UnsafePath(errno.EINVAL, "absolute path", text)
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafePath(errno.EINVAL, "path climbs out", text)
    return parts


def _open_dir_at(fd: int, name: str) -> int:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePath(exc.errno, "not a plain directory (a link?)", name) from exc
        raise


@contextlib.contextmanager
def opendir(root: str | os.PathLike[str], rel: str | os.PathLike[str] = "", *, create: bool = False,
            mode: int = 0o755, uid: int | None = None, replace: bool = False) -> Iterator[int]:
    """A descriptor of `root/rel`, walked without following any link below `root`.

    `root` itself is trusted (the worker made it); `create` makes missing directories
    (mode `mode`, owned by `uid` when given); `replace` (with `create`) unlinks a link or
    file that stands where a directory should be, instead of refusing. The descriptor is
    closed on exit.
    """
    fd = os.open(os.fspath(root), DIR_FLAGS)
    try:
        for part in _parts(rel):
            if create and replace:
                with contextlib.suppress(FileNotFoundError):
                    if not stat.S_ISDIR(os.lstat(part, dir_fd=fd).st_mode):
                        os.unlink(part, dir_fd=fd)  # the name only: a link is never followed
            if create:
                try:
                    os.mkdir(part, mode, dir_fd=fd)
                    if uid is not None:
                        os.chown(part, uid, uid, dir_fd=fd, follow_symlinks=False)
                except FileExistsError:
                    pass
            nxt = _open_dir_at(fd, part)
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def _split(rel: str | os.PathLike[str]) -> tuple[str, str]:
    parts = _parts(rel)
    if not parts:
        raise UnsafePath(errno.EINVAL, "empty path", os.fspath(rel))
    return "/".join(parts[:-1]), parts[-1]


def read_regular(root: str | os.PathLike[str], rel: str | os.PathLike[str], cap_bytes: int) -> bytes | None:
    """The bytes of the regular file `root/rel`, or None when it is over `cap_bytes`.

    UnsafePath when any component is a link or the file is not a regular file with one
    link; FileNotFoundError when it is not there. One bounded read, so a file cannot grow
    past the cap between a check and the read.
    """
    parent, name = _split(rel)
    with opendir(root, parent) as dfd:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePath(exc.errno, "a link", os.fspath(rel)) from exc
            raise
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise UnsafePath(errno.EPERM, "not a regular file with one link", os.fspath(rel))
            data = f.read(cap_bytes + 1)
    return None if len(data) > cap_bytes else data


def write_file(root: str | os.PathLike[str], rel: str | os.PathLike[str], data: bytes, *, mode: int = 0o644,
               uid: int | None = None, dir_mode: int = 0o755, replace: bool = False) -> None:
    """Put `data` at `root/rel` (parents made as needed), replacing whatever is there.

    The file is written under a fresh name and renamed over the target: a symlink or a
    hard link the agent left at the target is replaced, never written through. A link
    where a parent directory should be raises UnsafePath, or with `replace` is unlinked
    and a real directory made in its place. A directory at the target raises
    (IsADirectoryError): nothing is removed.
    """
    parent, name = _split(rel)
    with opendir(root, parent, create=True, mode=dir_mode, uid=uid, replace=replace) as dfd:
        tmp = f".{name}.eve-{secrets.token_hex(6)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if uid is not None:
                    os.fchown(f.fileno(), uid, uid)
                os.fchmod(f.fileno(), mode)
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise


def chown_tree(root: str | os.PathLike[str], uid: int) -> int:
    """Give the tree under `root` (and `root`) to `uid`; returns how many entries were left alone.

    Walked by descriptor without following links (os.fwalk); links themselves are
    re-owned, never their targets; a non-directory with more than one hard link is left
    as it is (the other name could be a file the agent may not have).
    """
    skipped = 0
    os.chown(os.fspath(root), uid, uid, follow_symlinks=False)
    for _dirpath, dirnames, filenames, dfd in os.fwalk(os.fspath(root), follow_symlinks=False):
        for name in dirnames + filenames:
            try:
                st = os.lstat(name, dir_fd=dfd)
                if st.st_uid == uid and st.st_gid == uid:
                    continue
                if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                    skipped += 1
                    continue
                os.chown(name, uid, uid, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                continue
    return skipped


def fresh_dir(path: Path, *, mode: int = 0o700, uid: int | None = None) -> Path:
    """`path` as a new, empty directory (whatever was there removed without following links)."""
    remove_tree(path)
    path.mkdir(mode=mode)
    path.chmod(mode)  # not the umask's
    if uid is not None:
        os.chown(path, uid, uid)
    return path


def remove_tree(path: Path) -> None:
    """rmtree that never follows a link (CPython's fd-based rmtree on Linux), and a link at
    `path` itself is unlinked, not walked."""
    import shutil

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        assert shutil.rmtree.avoids_symlink_attacks, "this platform's rmtree follows links"
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
