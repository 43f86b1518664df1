"""Writing an output file: whole or not at all, and never in place of something that is not a file.

Every verb that writes (fit, plan, runs export, plot, pareto, ladder, measure)
goes through here:

* a regular file (or a new path) is replaced atomically: a temporary file in
  the same folder, flushed and fsynced, then renamed over the path, so a
  writer killed mid-write leaves the old file (or none), never half of one;
* a symlink is followed and its target is replaced atomically (the link stays);
* an existing character device or FIFO (``/dev/null``, ``/dev/stdout``, a pipe)
  is written through, never replaced;
* a folder, a block device or socket, a path under /proc or /sys, a missing
  folder or one that cannot be written is refused by ``check_output`` with one
  line (exit 2), which verbs call before their work starts.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from capgap.core.errors import InputError

Content = str | bytes | Callable[[BinaryIO], None]
# Paths that name an open file descriptor (the shell's stdout, /dev/fd/3): always written through.
_DESCRIPTOR = re.compile(r"^(/dev/(stdout|stderr|fd/\d+)|/proc/[^/]+/fd/\d+)$")
_KERNEL_TREES = ("/proc", "/sys")


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


def writes_through(path: str | os.PathLike) -> bool:
    """True for a character device, a FIFO or a descriptor path; False for a regular file or a new path."""
    path = os.fspath(path)
    if _DESCRIPTOR.match(os.path.abspath(path)) and os.path.exists(path):
        return True
    try:
        mode = os.stat(path).st_mode  # follows symlinks: the kind of the target
    except (FileNotFoundError, NotADirectoryError):  # a new path (check_output says whether it can be made)
        return False
    except OSError as exc:
        raise InputError(f"cannot use as output ({exc.strerror})", where=str(path)) from None
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def check_output(path: str | os.PathLike, *, what: str = "output", make_folders: bool = False) -> None:
    """Refuse, with one line, an output path that cannot be written as ``write_output`` would.

    ``make_folders``: missing folders above it will be created (a run store), so only the
    nearest existing one must be writable.
    """
    text = os.fspath(path)
    where = str(path)
    if writes_through(text):
        if not os.access(text, os.W_OK):
            raise InputError(f"the {what} is a device or pipe that cannot be written", where=where)
        return
    target = os.path.realpath(text)
    tree = next((root for root in _KERNEL_TREES for p in (target, os.path.abspath(text)) if _under(p, (root,))), None)
    if tree:
        raise InputError(f"the {what} is under {tree}, a kernel tree, not a place for files; give a path in a "
                         "folder you can write", where=where)
    if os.path.lexists(target):
        mode = os.stat(target).st_mode
        if stat.S_ISDIR(mode):
            raise InputError(f"the {what} is a folder; give a file path inside it or elsewhere", where=where)
        if not stat.S_ISREG(mode):
            raise InputError(f"the {what} is neither a file, a character device nor a pipe; give a file path",
                             where=where)
        if not os.access(target, os.W_OK):
            raise InputError(f"the {what} exists and is not writable; give a path you can write", where=where)
    folder = Path(target).parent
    if make_folders:
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
    if not folder.exists():
        raise InputError(f"the folder of the {what} ({folder}) does not exist; create it or give another path",
                         where=where)
    if not folder.is_dir():
        raise InputError(f"the {what} is not writable: {folder} is a file, not a folder", where=where)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"the folder of the {what} ({folder}) is not writable; give a path you can write",
                         where=where)


def check_output_folder(path: str | os.PathLike, *, what: str = "output folder") -> None:
    """Refuse a folder to write files into that is under /proc or /sys, a file, or not writable (it may not exist yet)."""
    target = os.path.realpath(os.fspath(path))
    if _under(target, _KERNEL_TREES):
        raise InputError(f"the {what} is under a kernel tree (/proc or /sys); give a folder you can write",
                         where=str(path))
    if os.path.exists(target) and not os.path.isdir(target):
        raise InputError(f"the {what} is a file; give a folder", where=str(path))
    check_output(Path(target) / "probe", what=what, make_folders=True)


def write_output(path: str | os.PathLike, content: Content, *, what: str = "output") -> Path:
    """Write ``content`` (text, bytes, or a function writing into a binary handle) to ``path``, whole or not at all.

    Returns the path written (the symlink's target when ``path`` is a symlink to a file).
    """
    check_output(path, what=what)
    text = os.fspath(path)
    try:
        if writes_through(text):
            with open(text, "wb") as handle:
                _put(handle, content)
            return Path(text)
        target = Path(os.path.realpath(text))
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as handle:
                _put(handle, content)
                handle.flush()
                os.fsync(handle.fileno())
            if target.exists():  # the replacement keeps the old file's permissions
                os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        _sync_folder(target.parent)
        return target
    except OSError as exc:
        raise InputError(f"cannot write the {what} ({exc.strerror or exc})", where=str(path)) from None


def _put(handle: BinaryIO, content: Content) -> None:
    if isinstance(content, str):
        handle.write(content.encode("utf-8"))
    elif isinstance(content, bytes):
        handle.write(content)
    else:
        content(handle)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
