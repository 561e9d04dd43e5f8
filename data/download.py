"""Fetch the training corpora: tiny Shakespeare, The Federalist Papers, War and Peace.

Each corpus is downloaded once into this folder (``data/``), checked against its
recorded sha256, and reused afterwards::

    python -m data.download                   # all corpora
    python -m data.download tiny_shakespeare  # just one

Offline, point the code at copies you already have with the ``RNN_DATA_MIRROR``
environment variable (or ``--mirror``): either a local folder holding files named
like the corpora (``tiny_shakespeare.txt``, ``federalist.txt``, ``war_and_peace.txt``)
or an http(s) URL prefix under which those file names can be fetched. When a
mirror is set, the original URLs are not used.

What a download goes through, in order:

1. Stale temporary files of earlier, killed downloads are removed (only those no
   running download holds a lock on).
2. The file is streamed into a locked temporary file next to the target, with a
   size cap and a least pace (MIN_RATE bytes/s after a grace period), so a hostile
   or trickling server or mirror cannot fill the disk or hang. A local mirror's
   copy must be a regular file, and is read by a helper thread, so even a read
   that blocks (a hung network share) ends when the pace runs out.
3. War and Peace only: the text is normalised (byte-order mark dropped, CRLF and
   lone CR turned into LF; a Project Gutenberg copy loses its licence header and
   footer) before its checksum is taken.
4. The sha256 must match the recorded one. Corpora whose source is re-released now
   and then (federalist, war_and_peace) are also accepted, with a one-line note,
   if the text passes a structural check: length, known passages, character set.
5. Only then is the temporary file renamed into place, so a failed or interrupted
   download never leaves a partial corpus behind (from the command line, SIGTERM
   and SIGHUP stop it as Ctrl-C does, removing the temporary file).

From Python, training scripts use :func:`ensure_corpus` (by corpus name) or
:func:`ensure_data_file` (for a ``--data PATH`` argument).
"""

from __future__ import annotations

import argparse
import collections
import glob
import hashlib
import http.client
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from safeio import open_regular_file

try:                      # advisory file locks; POSIX only
    import fcntl
except ImportError:       # Windows: no locks, so stale temporary files are never swept
    fcntl = None

DATA_DIR = Path(__file__).resolve().parent

# Environment variable naming a local folder of copies or an http(s) URL prefix.
MIRROR_ENV = "RNN_DATA_MIRROR"

# Seconds to wait for the server (to connect, and for each chunk of the response).
TIMEOUT = 30.0

# The least pace: t seconds into a download, at least MIN_RATE * (t - GRACE) bytes
# must have arrived, or it is abandoned. A link that averages 10 kB/s always passes
# (War and Peace's 3.2 MB may take up to 380 s); a source that trickles is stopped
# soon after its grace. TIMEOUT alone cannot stop a server that sends a byte every
# few seconds. A local mirror folder needs no time to connect: MIRROR_GRACE.
MIN_RATE = 10_000
GRACE = 60.0
MIRROR_GRACE = 10.0

# A download larger than this many times the recorded size is refused.
MAX_SIZE_FACTOR = 2

# A temporary file younger than this is never swept, even if nobody holds its lock
# (it may belong to a download that has created it and not yet locked it).
STALE_AFTER = 10.0

_CHUNK = 1 << 16
_USER_AGENT = "rnn-numpy-tutorial data.download (Python urllib)"


# ----------------------------------------------------------------------------- corpora

@dataclass(frozen=True)
class Fingerprint:
    """What a copy must still look like to be accepted when its sha256 differs.

    A re-released or re-wrapped copy keeps its length (within `tolerance`), its
    sentences and its mix of characters; a file of the right headings padded with
    junk does not. Passages are a few words each, searched for with all runs of
    whitespace (line breaks included) read as one space.
    """

    chars: int                       # characters in the reference copy
    passages: tuple[str, ...]        # short phrases that must all occur
    letters: float                   # share of letters in the reference copy
    whitespace: float                # share of spaces and newlines in it
    begins: str = ""                 # the text must start with this (after whitespace)
    extra: Callable[[str], str | None] | None = None  # corpus-specific check: problem or None
    tolerance: float = 0.05          # relative length difference allowed
    share_tolerance: float = 0.03    # absolute difference allowed in the two shares


@dataclass(frozen=True)
class Corpus:
    """One training text: where it comes from and what it must hash to."""

    name: str         # key in CORPORA and CLI argument, e.g. "tiny_shakespeare"
    filename: str     # file name inside the data folder (and inside a mirror)
    url: str          # original source
    sha256: str       # hex digest of the file as saved (see `normalise`)
    size: int         # size in bytes of that file
    description: str  # one line for humans
    backup_url: str = ""      # second source, tried when `url` fails or does not check out
    normalise: bool = False   # sha256 and size are of the text after _normalise()
    fingerprint: Fingerprint | None = None  # structural fallback; None: sha256 must match


_FEDERALIST_HEADING = re.compile(r"FEDERALIST\s+No\.\s*(\d+)", re.IGNORECASE)


def _federalist_headings(text: str) -> str | None:
    """None if `text` has the headings of all 85 papers, "FEDERALIST No. 1" to 85."""
    missing = set(range(1, 86)) - {int(n) for n in _FEDERALIST_HEADING.findall(text)}
    if missing:
        return f"the headings FEDERALIST No. {', '.join(map(str, sorted(missing)[:5]))}... are missing"
    return None


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
        fingerprint=Fingerprint(
            chars=1_167_139, letters=0.810, whitespace=0.169,
            passages=("the peace of America that she", "the celebrated Belgic confederacy",
                      "proposed Constitution ought to", "authorities of a President",
                      "your own State constitution"),
            extra=_federalist_headings),
    ),
    "war_and_peace": Corpus(
        name="war_and_peace",
        filename="war_and_peace.txt",
        url="https://cs.stanford.edu/people/karpathy/char-rnn/warpeace_input.txt",
        sha256="b0fc81c399971eaf738c8be89809e6a0d95c151749112b04f06b6af648d8a39f",
        size=3_196_228,
        description="War and Peace (Maude translation), 3.2 MB, as cleaned for "
                    "Karpathy, Johnson & Fei-Fei's char-rnn paper",
        backup_url="https://www.gutenberg.org/files/2600/2600-0.txt",
        normalise=True,
        fingerprint=Fingerprint(
            chars=3_196_211, letters=0.785, whitespace=0.179,
            begins='"Well, Prince, so Genoa and Lucca',
            passages=("SECOND EPILOGUE", "Prince Andrew possessed", "Bilibin who found",
                      "Bogucharovo had lain", "approached Yaroslavl",
                      "thousand men into Russia")),
    ),
}


def known_corpus(path) -> Corpus | None:
    """The corpus of CORPORA that `path` (say, the --data a run recorded) names, or None.

    The one rule for every script: only the file name counts, so data/tiny_shakespeare.txt
    and /elsewhere/tiny_shakespeare.txt both name tiny Shakespeare. A caller that wants
    the text reads the verified copy (ensure_corpus), never `path` itself.
    """
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        return None
    name = os.fspath(path).replace("\\", "/").rsplit("/", 1)[-1]
    return next((c for c in CORPORA.values() if c.filename == name), None)


class DownloadError(RuntimeError):
    """A corpus could not be fetched; the message says how to put it there by hand."""


class DataFileNotFoundError(DownloadError, FileNotFoundError):
    """A ``--data`` path does not exist and is not a corpus we can download."""


class _SourceFailed(Exception):
    """One source did not deliver a good copy; the next source (if any) is tried."""


class _TooSlow(OSError):
    """A download fell behind the least pace (see MIN_RATE)."""


class _Signalled(KeyboardInterrupt):
    """SIGTERM or SIGHUP during main(): handled as Ctrl-C is, so the temporary file is removed."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


# ----------------------------------------------------------------------------- text checks

_GUTENBERG_START = re.compile(rb"^\*\*\* ?START[^\n]*\n", re.MULTILINE)
_GUTENBERG_END = re.compile(rb"^\*\*\* ?END", re.MULTILINE)
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


def _normalise(data: bytes) -> bytes:
    """Drop a UTF-8 byte-order mark; CRLF and lone CR become LF."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _cut_gutenberg(data: bytes, begins: str = "") -> bytes:
    """Cut a Project Gutenberg file down to the book (normalised bytes in, bytes out).

    Everything up to the ``*** START ...`` line and from the ``*** END ...`` line
    on is licence text. If `begins` is given (the book's first words), the front
    matter before the line holding them (title, contents) goes too. A file without
    both markers is returned unchanged.
    """
    start, end = _GUTENBERG_START.search(data), _GUTENBERG_END.search(data)
    if start is None or end is None or end.start() < start.end():
        return data
    book = data[start.end():end.start()]
    if begins:
        words = begins.lstrip("\"'").encode()  # the opening quote may be straight or curly
        at = book.find(words)
        if at >= 0:
            book = book[book.rfind(b"\n", 0, at) + 1:]
    return book.strip(b"\n")


def _fingerprint_problem(data: bytes, fp: Fingerprint) -> str | None:
    """None if `data` reads as the corpus `fp` describes, else what is wrong with it."""
    try:
        text = _normalise(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text (byte {exc.start:,})"
    n = len(text)
    if abs(n - fp.chars) > fp.tolerance * fp.chars:
        return f"{n:,} characters, expected {fp.chars:,} within {fp.tolerance:.0%}"
    counts = collections.Counter(text)
    odd = sorted(c for c in counts if c != "\n" and unicodedata.category(c).startswith("C"))
    if odd:
        return f"control, format or unassigned characters such as {odd[0]!r} ({len(odd)} kinds)"
    for what, share, expected in (
            ("letters", sum(v for c, v in counts.items() if c.isalpha()) / n, fp.letters),
            ("spaces and newlines", (counts[" "] + counts["\n"]) / n, fp.whitespace)):
        if abs(share - expected) > fp.share_tolerance:
            return f"{share:.1%} {what}, expected {expected:.1%} within {fp.share_tolerance:.0%}"
    if fp.begins and not text.lstrip()[:len(fp.begins)].translate(_QUOTES) == fp.begins:
        return f"does not begin with {fp.begins!r}"
    flat = " ".join(text.split())                      # re-wrapped copies read the same
    for passage in fp.passages:
        if passage not in flat:
            return f"the passage {passage!r} is missing"
    return fp.extra(text) if fp.extra is not None else None


# ----------------------------------------------------------------------------- temporary files

def _temp_pattern(corpus: Corpus) -> str:
    """Glob of the temporary files of `corpus` (names made by tempfile.mkstemp below)."""
    return f".{glob.escape(corpus.filename)}.*.tmp"


def _open_locked_temp(data_dir: Path, corpus: Corpus):
    """A new temporary file next to the target, open for writing and locked; (file, path)."""
    fd, name = tempfile.mkstemp(dir=data_dir, prefix=f".{corpus.filename}.", suffix=".tmp")
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until the file is closed
    return os.fdopen(fd, "w+b"), Path(name)


def _sweep_stale_temps(data_dir: Path, corpus: Corpus) -> list[Path]:
    """Remove temporary files of `corpus` left by downloads that were killed; return them.

    A running download holds an exclusive lock on its temporary file, so a file
    whose lock we can take belongs to nobody. Without fcntl (Windows) nothing is
    removed.
    """
    removed = []
    if fcntl is None or not data_dir.is_dir():
        return removed
    for path in data_dir.glob(_temp_pattern(corpus)):
        try:
            if time.time() - path.stat().st_mtime < STALE_AFTER:
                continue
            with open(path, "rb") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue                           # a live download is writing it
                path.unlink()
                removed.append(path)
        except OSError:
            continue                                   # gone already, or not ours to read
    return removed


# ----------------------------------------------------------------------------- fetching

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
    if isinstance(exc, _TooSlow):
        return str(exc)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"timed out (no answer within {TIMEOUT:g} s)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, http.client.IncompleteRead):
        return "connection closed before the whole file arrived"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _read_within(read, seconds: float):
    """read(_CHUNK) in a helper thread, waiting at most `seconds`; None if it has not returned.

    A local mirror is read this way: a read that blocks (a hung network share) would
    otherwise hold the download forever. The helper, stuck in its read, is left
    behind; it is a daemon thread, so it does not keep the process alive.
    """
    result = []

    def work():
        try:
            result.append((read(_CHUNK), None))
        except BaseException as exc:                   # handed to the caller below
            result.append((None, exc))

    helper = threading.Thread(target=work, name="mirror read", daemon=True)
    helper.start()
    helper.join(max(seconds, 0.0))
    if not result:
        return None
    chunk, exc = result[0]
    if exc is not None:
        raise exc
    return chunk


def _copy_stream(src, dst, corpus: Corpus, total: int | None, progress: bool,
                 grace: float | None = None, watched: bool = False) -> str:
    """Copy file object `src` to `dst` in chunks with a progress bar; return the sha256.

    Raises OSError if more than MAX_SIZE_FACTOR times the recorded size arrives, and
    _TooSlow if the copy falls behind the least pace: t seconds in, fewer than
    MIN_RATE * (t - grace) bytes (grace None: GRACE). read1 returns whatever the network has delivered,
    so a server that trickles a byte at a time is caught here, between reads;
    watched=True (a local file) also bounds each read itself (_read_within).
    """
    limit = MAX_SIZE_FACTOR * corpus.size
    grace = GRACE if grace is None else grace
    read = getattr(src, "read1", src.read)
    digest = hashlib.sha256()
    start = time.monotonic()

    def seconds_left() -> float:                       # until the pace is missed
        return grace + dst.tell() / MIN_RATE - (time.monotonic() - start)

    def too_slow() -> _TooSlow:
        return _TooSlow(f"too slow: {dst.tell():,} of {corpus.size:,} bytes in "
                        f"{time.monotonic() - start:.0f} s (the least allowed is {MIN_RATE:,} "
                        f"bytes/s after {grace:g} s of grace)")

    with tqdm(total=total, desc=corpus.filename, unit="B", unit_scale=True, unit_divisor=1024,
              disable=not progress, leave=False) as bar:
        while True:
            chunk = _read_within(read, seconds_left()) if watched else read(_CHUNK)
            if chunk is None:
                raise too_slow()
            if not chunk:
                break
            if dst.tell() + len(chunk) > limit:
                raise OSError(f"more than {limit:,} bytes, {MAX_SIZE_FACTOR}x the expected "
                              f"{corpus.size:,}")
            dst.write(chunk)
            digest.update(chunk)
            bar.update(len(chunk))
            if seconds_left() < 0:
                raise too_slow()
    return digest.hexdigest()


def _open_mirror_copy(path: str):
    """(unbuffered file, size) of a mirror's copy; ValueError if it is not a regular file.

    A named pipe or a device could block or never end (safeio.open_regular_file).
    Unbuffered, so that closing it never waits for a read stuck in a helper thread.
    """
    src, size = open_regular_file(path, "mirror")
    return src.detach(), size


def _fetch(source: str, local: bool, dst, corpus: Corpus, progress: bool) -> str:
    """Stream `source` (a local file or a URL) into file object `dst`; return the sha256."""
    if local:
        src, size = _open_mirror_copy(source)
        with src:
            return _copy_stream(src, dst, corpus, size, progress, grace=MIRROR_GRACE, watched=True)
    request = urllib.request.Request(source, headers={"User-Agent": _USER_AGENT})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        length = response.headers.get("Content-Length", "")
        expected = int(length) if length.isdigit() else None
        sha = _copy_stream(response, dst, corpus, expected or corpus.size, progress)
    if expected is not None and dst.tell() != expected:
        raise OSError(f"connection closed after {dst.tell():,} of {expected:,} bytes")
    return sha


def _try_source(corpus: Corpus, source: str, local: bool, origin: str, data_dir: Path,
                target: Path, progress: bool) -> None:
    """Fetch, normalise, check and move one copy into place; _SourceFailed if it is no good."""
    try:
        dst, tmp = _open_locked_temp(data_dir, corpus)
    except OSError as exc:
        raise DownloadError(f"cannot write to folder {data_dir}: {_describe(exc)}") from None
    try:
        with dst:
            try:
                sha = _fetch(source, local, dst, corpus, progress)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                what = "copy" if local else "download"
                raise _SourceFailed(f"could not {what} {corpus.filename} from {source}{origin}: "
                                    f"{_describe(exc)}") from None
            data = None
            if corpus.normalise:
                dst.seek(0)
                raw = dst.read()
                data = _cut_gutenberg(_normalise(raw), corpus.fingerprint.begins
                                      if corpus.fingerprint else "")
                if data != raw:                        # save the normalised text instead
                    dst.seek(0)
                    dst.truncate()
                    dst.write(data)
                    sha = hashlib.sha256(data).hexdigest()

            if sha != corpus.sha256:
                mismatch = (f"checksum mismatch for {corpus.filename} from {source}: "
                            f"got sha256 {sha}, expected {corpus.sha256}")
                if corpus.fingerprint is None:
                    raise _SourceFailed(mismatch)
                if data is None:
                    dst.seek(0)
                    data = dst.read()
                problem = _fingerprint_problem(data, corpus.fingerprint)
                if problem is not None:
                    raise _SourceFailed(f"{mismatch}, and it does not read as a re-release: "
                                        f"{problem}")
                print(f"note: {corpus.filename} from {source} has sha256 {sha}, not the "
                      f"recorded {corpus.sha256}; accepted since its length, passages and "
                      f"characters match {corpus.description}", file=sys.stderr)

            try:
                dst.flush()
                os.chmod(tmp, 0o644)
                if fcntl is None:
                    dst.close()                        # Windows cannot rename an open file
                os.replace(tmp, target)
            except OSError as exc:
                raise DownloadError(f"cannot move the download into place as {target}: "
                                    f"{_describe(exc)}") from None
    finally:                                           # errors, Ctrl-C: no temporary file left
        tmp.unlink(missing_ok=True)                    # a no-op after the os.replace


# ----------------------------------------------------------------------------- API

def ensure_corpus(name: str, data_dir: str | os.PathLike = DATA_DIR,
                  mirror: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Return the path of corpus `name` in `data_dir`, fetching it first if missing.

    The source is `mirror` if given, else the ``RNN_DATA_MIRROR`` environment
    variable, else the corpus URL (and then its backup URL if it has one). A mirror
    is a local folder holding a copy named ``corpus.filename``, or a URL prefix
    (the file is fetched from prefix/filename). An existing file is returned as is,
    without fetching or re-checking it.

    Raises DownloadError, leaving no partial or temporary file behind, if every
    source fails or no copy passes the checks.
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

    # Pick the sources; a local mirror folder is checked before anything is created.
    local = False
    if mirror is None:
        sources = [url for url in (corpus.url, corpus.backup_url) if url]
    elif _is_url(os.fspath(mirror)):
        sources = [os.fspath(mirror).rstrip("/") + "/" + corpus.filename]
    else:
        folder, local = Path(mirror).expanduser(), True
        try:
            if not folder.is_dir():
                raise DownloadError(f"mirror folder {folder}{origin} does not exist\n{hint}")
            if not (folder / corpus.filename).exists():
                raise DownloadError(f"mirror folder {folder}{origin} has no {corpus.filename}\n{hint}")
            if not (folder / corpus.filename).is_file():
                raise DownloadError(f"mirror folder {folder}{origin}: {corpus.filename} is not a "
                                    f"regular file (a named pipe or a device is not copied)\n{hint}")
        except OSError as exc:
            raise DownloadError(f"cannot read mirror folder {folder}{origin}: "
                                f"{_describe(exc)}\n{hint}") from None
        sources = [str(folder / corpus.filename)]

    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot write to folder {data_dir}: {_describe(exc)}\n{hint}") from None
    _sweep_stale_temps(data_dir, corpus)

    failures = []
    for source in sources:
        try:
            _try_source(corpus, source, local, origin, data_dir, target, progress)
            return target
        except _SourceFailed as exc:
            failures.append(str(exc))
        except DownloadError as exc:
            raise DownloadError(f"{exc}\n{hint}") from None
    raise DownloadError("; then ".join(failures) + "\n" + hint)


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

# Exit codes, the same as cli.py's, plus 1: a corpus could not be fetched.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _ArgumentParser(argparse.ArgumentParser):
    """A bad flag is one line ("error: ... (see --help)") and exit status 2, as with
    cli.ArgumentParser. Not imported from cli.py: cli.py imports this module (its
    read_data fetches a missing corpus), and imports go one way only."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"error: {message} (see --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
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
    return parser


def _on_stop_signals(handler) -> dict:
    """Install `handler` for SIGTERM and SIGHUP (where they exist); returns the previous handlers."""
    previous = {}
    if threading.current_thread() is threading.main_thread():    # only the main thread may
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                previous[getattr(signal, name)] = signal.signal(getattr(signal, name), handler)
    return previous


def _raise_signalled(signum, frame):
    raise _Signalled(signum)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code (0 ok, 1 failed, 2 usage, 130 Ctrl-C,
    128 + n for SIGTERM or SIGHUP).

    Every failure is one line on stderr, never a traceback. A signal (Ctrl-C, kill,
    timeout, a closed terminal) stops it with no temporary file left behind.
    """
    args = _build_parser().parse_args(argv)
    names = args.names or list(CORPORA)
    unknown = [n for n in names if n not in CORPORA]
    if unknown:
        print(f"error: unknown corpus {unknown[0]!r} (known: {', '.join(CORPORA)})",
              file=sys.stderr)
        return EXIT_USAGE

    previous = _on_stop_signals(_raise_signalled)
    try:
        status = EXIT_OK
        for name in names:
            try:
                present = (args.data_dir / CORPORA[name].filename).exists()
                path = ensure_corpus(name, data_dir=args.data_dir, mirror=args.mirror,
                                     progress=not args.no_progress)
                size = path.stat().st_size
            except DownloadError as exc:
                print("error: " + "; ".join(str(exc).splitlines()), file=sys.stderr)
                status = EXIT_FAILED
            except (OSError, ValueError) as exc:               # e.g. an unreadable --data-dir
                where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
                print(f"error: {name}: {_describe(exc)}{where}", file=sys.stderr)
                status = EXIT_FAILED
            else:
                state = "already present" if present else "downloaded"
                print(f"{name}: {path} ({state}, {size:,} bytes)")
        return status
    except _Signalled as exc:
        print(f"error: stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
