"""Fetch the training corpora: tiny Shakespeare and The Federalist Papers.

Each corpus is downloaded once into this folder (``data/``), checked against its
recorded sha256, and reused afterwards::

    python -m data.download                   # all corpora
    python -m data.download tiny_shakespeare  # just one

Offline, point the code at copies you already have with the ``RNN_DATA_MIRROR``
environment variable (or ``--mirror``): either a local folder holding files named
like the corpora (``tiny_shakespeare.txt``, ``federalist.txt``) or an http(s) URL
prefix under which those file names can be fetched. When a mirror is set, the
original URLs are not used.

Downloads go to a temporary file next to the target and are moved into place only
after the checksum matches, so a failed or interrupted download never leaves a
partial corpus behind.

From Python, training scripts use :func:`ensure_corpus` (by corpus name) or
:func:`ensure_data_file` (for a ``--data PATH`` argument).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import socket
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

DATA_DIR = Path(__file__).resolve().parent

# Environment variable naming a local folder of copies or an http(s) URL prefix.
MIRROR_ENV = "RNN_DATA_MIRROR"

# Seconds to wait for the server (to connect, and for each chunk of the response).
TIMEOUT = 30.0

_CHUNK = 1 << 16
_USER_AGENT = "rnn-numpy-tutorial data.download (Python urllib)"


@dataclass(frozen=True)
class Corpus:
    """One training text: where it comes from and what it must hash to."""

    name: str         # key in CORPORA and CLI argument, e.g. "tiny_shakespeare"
    filename: str     # file name inside the data folder (and inside a mirror)
    url: str          # original source
    sha256: str       # hex digest of the exact bytes at `url` when recorded
    size: int         # size in bytes of that file
    description: str  # one line for humans


CORPORA: dict[str, Corpus] = {
    "tiny_shakespeare": Corpus(
        name="tiny_shakespeare",
        filename="tiny_shakespeare.txt",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        size=1_115_394,
        description="tiny Shakespeare, 1.1 MB of Shakespeare's plays from Karpathy's char-rnn",
    ),
    "federalist": Corpus(
        name="federalist",
        filename="federalist.txt",
        url="https://www.gutenberg.org/files/1404/1404.txt",
        sha256="8db1b89d8d20560138650fcdf6d329975efa25dca8df3731bd1eccdbe9c1d122",
        size=1_167_144,
        description="The Federalist Papers, all 85 essays (Project Gutenberg etext 1404)",
    ),
}


class DownloadError(RuntimeError):
    """A corpus could not be fetched; the message says how to put it there by hand."""


class DataFileNotFoundError(DownloadError, FileNotFoundError):
    """A ``--data`` path does not exist and is not a corpus we can download."""


# ----------------------------------------------------------------------------- checks

_FEDERALIST_HEADING = re.compile(rb"FEDERALIST\s+No\.\s*(\d+)", re.IGNORECASE)


def _looks_like_federalist(text: bytes) -> bool:
    """True if `text` has the headings of all 85 papers, "FEDERALIST No. 1" to 85."""
    found = {int(n) for n in _FEDERALIST_HEADING.findall(text)}
    return set(range(1, 86)) <= found


# Corpora whose source gets re-released now and then: when the checksum differs,
# the file is still accepted if this check recognises the text.
_CONTENT_CHECKS = {"federalist": _looks_like_federalist}


# ----------------------------------------------------------------------------- helpers

def _fix_hint(corpus: Corpus, target: Path) -> str:
    """The second line of every DownloadError: how to get the file in place by hand."""
    return (f"to fix it, run `python -m data.download {corpus.name}` with network access "
            f"(or set {MIRROR_ENV}=/folder/of/copies), or save {corpus.url} as {target} "
            f"by hand (sha256 {corpus.sha256})")


def _is_url(mirror: str) -> bool:
    """True for URL prefixes like http://host/path (as opposed to a local folder)."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", mirror) is not None


def _describe(exc: BaseException) -> str:
    """A short human description of a network or file error."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP error {exc.code} {exc.reason}".rstrip()
    if isinstance(exc, urllib.error.URLError):
        if not isinstance(exc.reason, BaseException):
            return str(exc.reason)
        exc = exc.reason
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"timed out (no answer within {TIMEOUT:g} s)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed before the whole file arrived"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _copy_stream(src, dst, total: int | None, desc: str, progress: bool) -> str:
    """Copy file object `src` to `dst` in chunks with a progress bar; return the sha256."""
    digest = hashlib.sha256()
    with tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
              disable=not progress, leave=False) as bar:
        while True:
            chunk = src.read(_CHUNK)
            if not chunk:
                break
            dst.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()


def _fetch_url(url: str, dst, corpus: Corpus, progress: bool) -> str:
    """Stream `url` into the file object `dst` and return its sha256."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        length = response.headers.get("Content-Length", "")
        expected = int(length) if length.isdigit() else None
        sha = _copy_stream(response, dst, expected or corpus.size, corpus.filename, progress)
    if expected is not None and dst.tell() != expected:
        raise OSError(f"connection closed after {dst.tell():,} of {expected:,} bytes")
    return sha


# ----------------------------------------------------------------------------- API

def ensure_corpus(name: str, data_dir: str | os.PathLike = DATA_DIR,
                  mirror: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Return the path of corpus `name` in `data_dir`, fetching it first if missing.

    The source is `mirror` if given, else the ``RNN_DATA_MIRROR`` environment
    variable, else the corpus URL. A mirror is a local folder holding a copy named
    ``corpus.filename``, or a URL prefix (the file is fetched from prefix/filename).
    An existing file is returned as is, without fetching or re-checking it.

    Raises DownloadError, leaving no partial or temporary file behind, if the
    fetch fails or the checksum does not match.
    """
    try:
        corpus = CORPORA[name]
    except KeyError:
        raise ValueError(f"unknown corpus {name!r} (known: {', '.join(CORPORA)})") from None
    data_dir = Path(data_dir)
    target = data_dir / corpus.filename
    if target.exists():
        return target

    origin = ""
    if mirror is None and os.environ.get(MIRROR_ENV):
        mirror, origin = os.environ[MIRROR_ENV], f" (from {MIRROR_ENV})"
    hint = _fix_hint(corpus, target)

    # Pick the source; a local mirror folder is checked before anything is created.
    local_copy = None
    if mirror is None:
        source = corpus.url
    elif _is_url(os.fspath(mirror)):
        source = os.fspath(mirror).rstrip("/") + "/" + corpus.filename
    else:
        folder = Path(mirror).expanduser()
        if not folder.is_dir():
            raise DownloadError(f"mirror folder {folder}{origin} does not exist\n{hint}")
        local_copy = folder / corpus.filename
        if not local_copy.is_file():
            raise DownloadError(f"mirror folder {folder}{origin} has no {corpus.filename}\n{hint}")
        source = str(local_copy)

    tmp = None
    try:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=data_dir, prefix=f".{corpus.filename}.",
                                            suffix=".tmp")
        except OSError as exc:
            raise DownloadError(f"cannot write to folder {data_dir}: {_describe(exc)}\n{hint}") from None
        tmp = Path(tmp_name)

        with os.fdopen(fd, "wb") as dst:
            try:
                if local_copy is not None:
                    with open(local_copy, "rb") as src:
                        sha = _copy_stream(src, dst, local_copy.stat().st_size,
                                           corpus.filename, progress)
                else:
                    sha = _fetch_url(source, dst, corpus, progress)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                what = "copy" if local_copy is not None else "download"
                raise DownloadError(f"could not {what} {corpus.filename} from {source}{origin}: "
                                    f"{_describe(exc)}\n{hint}") from None

        if sha != corpus.sha256:
            check = _CONTENT_CHECKS.get(corpus.name)
            if check is None or not check(tmp.read_bytes()):
                raise DownloadError(f"checksum mismatch for {corpus.filename} from {source}: "
                                    f"got sha256 {sha}, expected {corpus.sha256}\n{hint}")
            print(f"note: {corpus.filename} from {source} has sha256 {sha}, not the recorded "
                  f"{corpus.sha256}; accepted since it still reads as {corpus.description}",
                  file=sys.stderr)

        try:
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except OSError as exc:
            raise DownloadError(f"cannot move the download into place as {target}: "
                                f"{_describe(exc)}\n{hint}") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)  # a no-op after the os.replace
    return target


def ensure_data_file(path: str | os.PathLike, progress: bool = True,
                     mirror: str | os.PathLike | None = None) -> Path:
    """Resolve a training script's ``--data PATH``.

    An existing PATH is returned as is. A missing PATH whose file name is a known
    corpus file name (e.g. ``data/tiny_shakespeare.txt``) is downloaded to exactly
    that path. Anything else raises DataFileNotFoundError, which is both a
    DownloadError and a FileNotFoundError.
    """
    path = Path(path)
    if path.exists():
        return path
    for corpus in CORPORA.values():
        if path.name == corpus.filename:
            return ensure_corpus(corpus.name, data_dir=path.parent, mirror=mirror,
                                 progress=progress)
    known = ", ".join(f"data/{c.filename}" for c in CORPORA.values())
    raise DataFileNotFoundError(
        f"no such file: {path} (known corpora that are downloaded automatically: {known})")


# ----------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the process exit code (0 ok, 1 error)."""
    parser = argparse.ArgumentParser(
        prog="python -m data.download",
        description="Download the training corpora into data/ and verify their sha256.",
        epilog=f"Offline, set {MIRROR_ENV} (or --mirror) to a folder holding copies "
               f"named {', '.join(c.filename for c in CORPORA.values())}, "
               f"or to an http(s) URL prefix serving them.")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"corpora to fetch (default: all of {', '.join(CORPORA)})")
    parser.add_argument("--mirror", default=None,
                        help=f"local folder of copies, or http(s) URL prefix, to fetch from "
                             f"instead of the original URLs (default: ${MIRROR_ENV} if set)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                        help="folder to put the corpora in (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true",
                        help="do not show progress bars")
    args = parser.parse_args(argv)

    names = args.names or list(CORPORA)
    unknown = [n for n in names if n not in CORPORA]
    if unknown:
        print(f"error: unknown corpus {unknown[0]!r} (known: {', '.join(CORPORA)})",
              file=sys.stderr)
        return 1

    status = 0
    for name in names:
        present = (args.data_dir / CORPORA[name].filename).exists()
        try:
            path = ensure_corpus(name, data_dir=args.data_dir, mirror=args.mirror,
                                 progress=not args.no_progress)
        except DownloadError as exc:
            print("error: " + "; ".join(str(exc).splitlines()), file=sys.stderr)
            status = 1
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 1
        else:
            state = "already present" if present else "downloaded"
            print(f"{name}: {path} ({state}, {path.stat().st_size:,} bytes)")
    return status


if __name__ == "__main__":
    sys.exit(main())
