"""Files the project reads and writes, treated with care (standard library only).

* ``read_text``: read a UTF-8 text file, refusing folders, named pipes, devices,
  binary files and files over a size limit, each with one line that says why.
* ``open_regular_file``: the check behind it, for any reader of a file someone
  else made (checkpoints, logs).
* ``write_atomically`` / ``atomic_write_bytes`` / ``atomic_write_text``: every file
  the project writes goes through a temporary file and one rename, so nobody
  ever sees it half-written.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

# The largest text read_text reads unless told otherwise: far above the corpora used here
# (tiny Shakespeare 1.1 MB, War and Peace 3.2 MB), far below what would exhaust memory.
TEXT_MAX_BYTES = 100_000_000


class TextTooLargeError(ValueError):
    """read_text refused a file larger than its max_bytes; .size and .limit say by how much."""

    def __init__(self, message: str, size: int, limit: int):
        super().__init__(message)
        self.size, self.limit = size, limit


def open_regular_file(path, caller: str):
    """Open `path` for binary reading, refusing anything but a regular file.

    Folders, named pipes (FIFOs), devices such as /dev/zero and sockets are
    refused from os.stat, before opening: reading a FIFO would wait for a
    writer, and /dev/zero never ends. The open itself does not block either
    (O_NONBLOCK), and the file is checked again once open, in case it was
    swapped in between. Returns (file object, size in bytes).
    """
    def check(mode):
        if stat.S_ISREG(mode):
            return
        kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "not a regular file")
        raise ValueError(f"{caller}: {path} is {kind}; give a regular file")

    check(os.stat(path).st_mode)                                       # FileNotFoundError if missing
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        check(st.st_mode)
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


def read_text(path, max_bytes: int = TEXT_MAX_BYTES) -> str:
    """Read a UTF-8 text file. One character = one Unicode code point.

    Raises ValueError, naming read_text and the file, for anything but a
    regular file (a folder, a FIFO, a device), for a file larger than
    max_bytes (checked before reading; pass a larger max_bytes to read it),
    and with the byte offset for a file that is not valid UTF-8 (a binary
    file, or text saved in another encoding).
    """
    path = Path(path)
    f, size = open_regular_file(path, "read_text")
    with f:
        if size > max_bytes:
            raise TextTooLargeError(f"read_text: {path} is {size:,} bytes, over the limit of {max_bytes:,} "
                                    "bytes; to read it, pass a larger max_bytes", size, max_bytes)
        raw = f.read(max_bytes + 1)                                   # bounded, even if the file grows
    if len(raw) > max_bytes:
        raise TextTooLargeError(f"read_text: {path} grew past the limit of {max_bytes:,} bytes while being "
                                "read", len(raw), max_bytes)
    if b"\x00" in raw:
        raise ValueError(f"read_text: {path} looks like a binary file (NUL byte at offset {raw.index(0)}); "
                         "the model trains on UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"read_text: {path} is not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset "
                         f"{e.start}); re-save the file as UTF-8") from None


class UnsafeOutputError(ValueError):
    """check_output_path refused a name to write to; the message is one line."""


def check_output_path(path, what: str = "output file") -> Path:
    """`path` as a Path, if a file may be written there; else UnsafeOutputError, one line.

    Refused: an empty name; a name that already exists and is not a regular file
    (a folder, a device such as /dev/null, a named pipe, a socket) or is a
    symbolic link (the rename would replace the link, not what it points to).
    """
    if path is None or os.fspath(path) == "":
        raise UnsafeOutputError(f"the {what} name is empty; give a file name")
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = ("a symbolic link" if stat.S_ISLNK(st.st_mode) else "a folder" if stat.S_ISDIR(st.st_mode)
                else "a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise UnsafeOutputError(f"{path} is {kind}; the {what} must be a new or regular file")
    return path


def write_atomically(path, write, check=None) -> Path:
    """Write a file so that it is never seen half-written: write(f) fills a temporary
    file in the same folder, check(f) (optional) may refuse it by raising, then one
    rename puts it in place. A crash, a full disk, Ctrl-C or a refusal leaves the
    previous file (if any) intact and the temporary file removed. A name that
    check_output_path refuses (a device, a FIFO, a link, a folder) is never replaced. Every file the
    project writes goes through here (checkpoints, logs, plots and pages).
    """
    path = check_output_path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w+b") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())                                       # on disk before the rename
            if check is not None:
                f.seek(0)
                check(f)
        os.chmod(tmp, 0o644)                                           # mkstemp makes it private (0600)
        os.replace(tmp, path)                                          # atomic on POSIX and Windows
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write `data` to `path` through write_atomically: a crash, a full disk or Ctrl-C
    while writing leaves the previous file (if any) intact and no temporary file."""
    return write_atomically(path, lambda f: f.write(data))


def atomic_write_text(path, text: str) -> Path:
    """atomic_write_bytes for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))
