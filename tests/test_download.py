"""Tests of data/download.py against a local HTTP server and local mirror folders.

Nothing here touches the internet: the network path is exercised with a small
http.server on 127.0.0.1 serving fixture files, and test corpora are patched into
CORPORA with checksums computed from those fixtures.
"""

import collections
import dataclasses
import functools
import hashlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from data import download
from corpora import corpus_path
from data.download import (CORPORA, Corpus, DataFileNotFoundError, DownloadError,
                           ensure_corpus, ensure_data_file, main)

from helpers import REPO_ROOT as ROOT
TEXT = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 50


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; /partial/NAME promises 1000 bytes and sends 10;
    /trickle/NAME promises 1000 bytes and sends one every 0.05 s, at most 100."""

    def do_GET(self):
        if self.path.startswith("/partial/"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return
        if self.path.startswith("/trickle/"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.close_connection = True
            for _ in range(100):         # ends by itself after 5 s, or when the client hangs up
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)
            return
        super().do_GET()

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def served(tmp_path):
    """(folder, base URL) of an HTTP server on 127.0.0.1 serving that folder."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def dest(tmp_path):
    """An empty destination folder (the data dir of the test)."""
    folder = tmp_path / "dest"
    folder.mkdir()
    return folder


@pytest.fixture(autouse=True)
def no_env_mirror(monkeypatch):
    """Tests choose their own mirror; an RNN_DATA_MIRROR from the shell must not leak in."""
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)


def add_corpus(monkeypatch, url, data=TEXT, name="toy", sha=None):
    """Register a test corpus whose checksum is that of `data`."""
    corpus = Corpus(name=name, filename=f"{name}.txt", url=url, sha256=sha or sha256(data),
                    size=len(data), description=f"{name} test corpus")
    monkeypatch.setitem(CORPORA, name, corpus)
    return corpus


def free_port():
    """A local port nothing listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def federalist_like(numbers=range(1, 86)):
    """A small text with the paper headings of etext 1404."""
    return b"".join(b"FEDERALIST No. %d\n\nTo the People of the State of New York:\n\n" % n
                    for n in numbers)


# ----------------------------------------------------------------------------- HTTP

def test_download_success(served, dest, monkeypatch):
    folder, base = served
    (folder / "remote.txt").write_bytes(TEXT)
    add_corpus(monkeypatch, f"{base}/remote.txt")
    path = ensure_corpus("toy", data_dir=dest, progress=False)
    assert path == dest / "toy.txt"
    assert path.read_bytes() == TEXT
    assert os.listdir(dest) == ["toy.txt"]  # no temp file left


def test_existing_file_is_returned_without_fetching(dest, monkeypatch):
    add_corpus(monkeypatch, f"http://127.0.0.1:{free_port()}/nothing.txt")
    (dest / "toy.txt").write_bytes(b"already here")
    assert ensure_corpus("toy", data_dir=dest, progress=False).read_bytes() == b"already here"


def test_checksum_mismatch(served, dest, monkeypatch):
    folder, base = served
    (folder / "remote.txt").write_bytes(TEXT + b"tampered")
    corpus = add_corpus(monkeypatch, f"{base}/remote.txt")
    with pytest.raises(DownloadError, match=f"expected {corpus.sha256}") as info:
        ensure_corpus("toy", data_dir=dest, progress=False)
    assert f"got sha256 {sha256(TEXT + b'tampered')}" in str(info.value)
    assert os.listdir(dest) == []


def test_http_404(served, dest, monkeypatch):
    _, base = served
    corpus = add_corpus(monkeypatch, f"{base}/missing.txt")
    with pytest.raises(DownloadError, match="404") as info:
        ensure_corpus("toy", data_dir=dest, progress=False)
    message = str(info.value)
    assert len(message.splitlines()) == 2
    # the second line says how to put the file there by hand
    for part in (corpus.url, str(dest / "toy.txt"), corpus.sha256, "python -m data.download"):
        assert part in message
    assert os.listdir(dest) == []


def test_connection_refused(dest, monkeypatch):
    add_corpus(monkeypatch, f"http://127.0.0.1:{free_port()}/toy.txt")
    with pytest.raises(DownloadError, match="refused"):
        ensure_corpus("toy", data_dir=dest, progress=False)
    assert os.listdir(dest) == []


def test_timeout(dest, monkeypatch):
    # A socket that listens but never answers: the connection is accepted by the
    # kernel and the request then waits for a response that never comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        add_corpus(monkeypatch, f"http://127.0.0.1:{silent.getsockname()[1]}/toy.txt")
        monkeypatch.setattr(download, "TIMEOUT", 0.2)
        with pytest.raises(DownloadError, match="timed out"):
            ensure_corpus("toy", data_dir=dest, progress=False)
    assert os.listdir(dest) == []


def test_truncated_response_leaves_nothing(served, dest, monkeypatch):
    _, base = served
    add_corpus(monkeypatch, f"{base}/partial/toy.txt")
    with pytest.raises(DownloadError, match="could not download"):
        ensure_corpus("toy", data_dir=dest, progress=False)
    assert os.listdir(dest) == []


def test_url_mirror_from_env_replaces_the_default_url(served, dest, monkeypatch):
    folder, base = served
    (folder / "toy.txt").write_bytes(TEXT)
    add_corpus(monkeypatch, f"http://127.0.0.1:{free_port()}/never-used.txt")
    monkeypatch.setenv(download.MIRROR_ENV, base + "/")
    assert ensure_corpus("toy", data_dir=dest, progress=False).read_bytes() == TEXT


def test_progress_bar_goes_to_stderr(served, dest, monkeypatch, capsys):
    folder, base = served
    (folder / "toy.txt").write_bytes(TEXT)
    add_corpus(monkeypatch, f"{base}/toy.txt")
    ensure_corpus("toy", data_dir=dest, progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "toy.txt" in err


# ----------------------------------------------------------------------------- structural checks

def rewrap(data: bytes) -> bytes:
    """The same text with every paragraph on one line (paragraphs stay apart)."""
    return b"\n\n".join(p.replace(b"\n", b" ") for p in data.split(b"\n\n"))


def crlf(data: bytes) -> bytes:
    return data.replace(b"\n", b"\r\n")


def headings_and_junk(length: int) -> bytes:
    """The 85 paper headings, padded with plain English to `length` bytes."""
    filler = b"the federal government of these states shall preserve their union, liberty and commerce.\n"
    parts = []
    for n in range(1, 86):
        parts.append(b"FEDERALIST No. %d\n\n" % n)
        parts.append(filler * (length // 85 // len(filler)))
    text = b"".join(parts)
    return text + filler[:length - len(text)] if len(text) < length else text[:length]


def serve_as_mirror(served, name: str, data: bytes) -> str:
    """Put `data` in the served folder under the corpus's file name; return the URL prefix."""
    folder, base = served
    (folder / CORPORA[name].filename).write_bytes(data)
    return base


def assert_refused(name, mirror, dest, *phrases):
    with pytest.raises(DownloadError, match="checksum mismatch") as info:
        ensure_corpus(name, data_dir=dest, mirror=mirror, progress=False)
    message = str(info.value)
    assert len(message.splitlines()) == 2, message
    for phrase in phrases:
        assert phrase in message.splitlines()[0], message
    assert os.listdir(dest) == [], "a refused download must leave nothing behind"


def test_headings_plus_junk_is_not_the_federalist(served, dest):
    """All 85 headings, the right length and an English-like mix of letters is still
    refused: the known passages are missing."""
    junk = headings_and_junk(CORPORA["federalist"].size)
    # the junk really does get past the length and character checks (computed here)
    text = junk.decode()
    counts = collections.Counter(text)
    letters = sum(v for c, v in counts.items() if c.isalpha()) / len(text)
    whitespace = (counts[" "] + counts["\n"]) / len(text)
    assert abs(letters - 0.810) < 0.03 and abs(whitespace - 0.169) < 0.03
    assert abs(len(text) - 1_167_139) < 0.05 * 1_167_139
    assert_refused("federalist", serve_as_mirror(served, "federalist", junk), dest,
                   "does not read as a re-release", "passage")


@pytest.mark.parametrize("mutation, reason", [
    (lambda d: d[:len(d) * 8 // 10], "characters, expected"),                 # truncated
    (lambda d: d[:500_000] + b"\x00" + d[500_000:], "control"),               # a NUL byte
    (lambda d: d.replace(b"Belgic", b"Flemish"), "Belgic"),                    # a passage gone
    (lambda d: d.replace(b"FEDERALIST No. 85", b"FEDERALIST No. 58"),          # a paper gone
     "FEDERALIST No. 85"),
    (lambda d: d.decode("utf-8").upper().encode(), "passage"),
])
def test_damaged_federalist_is_refused(federalist_path, served, dest, mutation, reason):
    damaged = mutation(federalist_path.read_bytes())
    assert_refused("federalist", serve_as_mirror(served, "federalist", damaged), dest, reason)


def test_rewrapped_crlf_federalist_is_accepted(federalist_path, served, dest, capsys):
    """A re-release with other line breaks (re-wrapped, CRLF) is accepted with a note."""
    copy = crlf(rewrap(federalist_path.read_bytes()))
    path = ensure_corpus("federalist", data_dir=dest,
                         mirror=serve_as_mirror(served, "federalist", copy), progress=False)
    assert path.read_bytes() == copy
    err = capsys.readouterr().err
    assert err.startswith("note: ") and len(err.splitlines()) == 1
    assert os.listdir(dest) == ["federalist.txt"]


def test_other_corpora_are_strict(dest, tmp_path, monkeypatch):
    """tiny Shakespeare has no fallback: any other content is rejected."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "tiny_shakespeare.txt").write_bytes(federalist_like())
    with pytest.raises(DownloadError, match=CORPORA["tiny_shakespeare"].sha256):
        ensure_corpus("tiny_shakespeare", data_dir=dest, mirror=mirror, progress=False)
    assert os.listdir(dest) == []


# ----------------------------------------------------------------------------- War and Peace

# The reference copy, as described in data/README.md (measured with sha256sum and Python).
WAP_SHA256 = "b0fc81c399971eaf738c8be89809e6a0d95c151749112b04f06b6af648d8a39f"
WAP_BYTES, WAP_CHARS, WAP_DISTINCT = 3_196_228, 3_196_211, 82


@pytest.fixture(scope="session")
def war_and_peace_path():
    return corpus_path("war_and_peace")


def gutenberg_style(book: bytes) -> bytes:
    """`book` wrapped the way Project Gutenberg ships a text: CRLF, a byte-order mark,
    a licence header, front matter and a licence footer."""
    head = (b"\xef\xbb\xbfThe Project Gutenberg eBook of a test book\n\nLicence terms.\n\n"
            b"*** START OF THE PROJECT GUTENBERG EBOOK A TEST BOOK ***\n\n\n"
            b"WAR AND PEACE\n\nContents\n\nBOOK ONE: 1805\n\nCHAPTER I\n\n")
    foot = b"\n\n\n\n*** END OF THE PROJECT GUTENBERG EBOOK A TEST BOOK ***\n\nMore licence.\n"
    return crlf(head + book + foot)


def test_real_war_and_peace(war_and_peace_path):
    corpus = CORPORA["war_and_peace"]
    data = war_and_peace_path.read_bytes()
    text = data.decode("utf-8")
    assert (len(data), len(text), len(set(text))) == (WAP_BYTES, WAP_CHARS, WAP_DISTINCT)
    assert sha256(data) == corpus.sha256 == WAP_SHA256 and corpus.size == WAP_BYTES
    assert download._fingerprint_problem(data, corpus.fingerprint) is None
    # the recorded shares are those of the reference copy (computed here, independently)
    counts = collections.Counter(text)
    assert abs(sum(v for c, v in counts.items() if c.isalpha()) / len(text) - 0.785) < 0.001
    assert abs((counts[" "] + counts["\n"]) / len(text) - corpus.fingerprint.whitespace) < 0.001


def test_war_and_peace_from_the_mirror_folder(war_and_peace_path, dest):
    path = ensure_corpus("war_and_peace", data_dir=dest, mirror=war_and_peace_path.parent,
                         progress=False)
    assert sha256(path.read_bytes()) == WAP_SHA256


def test_war_and_peace_crlf_bom_is_normalised(war_and_peace_path, served, dest, capsys):
    """A CRLF copy with a byte-order mark is saved as the reference text, sha256 and all."""
    reference = war_and_peace_path.read_bytes()
    base = serve_as_mirror(served, "war_and_peace", b"\xef\xbb\xbf" + crlf(reference))
    path = ensure_corpus("war_and_peace", data_dir=dest, mirror=base, progress=False)
    assert sha256(path.read_bytes()) == WAP_SHA256
    assert capsys.readouterr().err == ""               # an exact match: no note
    assert os.listdir(dest) == ["war_and_peace.txt"]


def test_war_and_peace_lone_cr_is_normalised(war_and_peace_path, dest, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "war_and_peace.txt").write_bytes(war_and_peace_path.read_bytes().replace(b"\n", b"\r"))
    path = ensure_corpus("war_and_peace", data_dir=dest, mirror=mirror, progress=False)
    assert sha256(path.read_bytes()) == WAP_SHA256


def test_war_and_peace_falls_back_to_gutenberg(war_and_peace_path, served, dest, monkeypatch,
                                               capsys):
    """The first URL fails; the Gutenberg copy loses header, front matter and footer."""
    folder, base = served
    (folder / "2600-0.txt").write_bytes(gutenberg_style(war_and_peace_path.read_bytes()))
    monkeypatch.setitem(CORPORA, "war_and_peace", dataclasses.replace(
        CORPORA["war_and_peace"], url=f"{base}/missing.txt", backup_url=f"{base}/2600-0.txt"))
    path = ensure_corpus("war_and_peace", data_dir=dest, progress=False)
    assert sha256(path.read_bytes()) == WAP_SHA256
    assert capsys.readouterr().err == ""
    assert os.listdir(dest) == ["war_and_peace.txt"]


def test_war_and_peace_gutenberg_rerelease_with_curly_quotes(war_and_peace_path, served, dest,
                                                             capsys):
    """A Gutenberg release with typographic quotes and chapter headings: accepted, with a note."""
    book = war_and_peace_path.read_bytes()
    book = "\u201c".encode() + book[1:].replace(b"\n\nIt was in July", b"\n\nCHAPTER II\n\nIt was in July")
    base = serve_as_mirror(served, "war_and_peace", gutenberg_style(book))
    path = ensure_corpus("war_and_peace", data_dir=dest, mirror=base, progress=False)
    assert path.read_bytes() == book                   # header, footer, CR and BOM gone
    err = capsys.readouterr().err
    assert err.startswith("note: ") and len(err.splitlines()) == 1


def test_rewrapped_war_and_peace_is_accepted(war_and_peace_path, served, dest, capsys):
    copy = rewrap(war_and_peace_path.read_bytes())
    base = serve_as_mirror(served, "war_and_peace", crlf(copy))
    path = ensure_corpus("war_and_peace", data_dir=dest, mirror=base, progress=False)
    assert path.read_bytes() == copy
    assert capsys.readouterr().err.startswith("note: ")


@pytest.mark.parametrize("mutation, reason", [
    (lambda d: d[:2_900_000], "characters, expected"),
    (lambda d: d + b"\x07", "control"),
    (lambda d: d.replace(b"Bogucharovo", b"Bogucharova"), "Bogucharovo"),
    (lambda d: d[d.index(b"\n\n") + 2:], "does not begin with"),
    (lambda d: d.replace(b"SECOND EPILOGUE", b"EPILOGUE TWO"), "SECOND EPILOGUE"),
    (lambda d: d.replace(b" ", b"_"), "spaces and newlines"),
    (lambda d: d.decode().encode("utf-16-le"), "not UTF-8"),
])
def test_damaged_war_and_peace_is_refused(war_and_peace_path, served, dest, mutation, reason):
    damaged = mutation(war_and_peace_path.read_bytes())
    assert_refused("war_and_peace", serve_as_mirror(served, "war_and_peace", damaged), dest,
                   reason)


def test_both_sources_failing_names_both(served, dest, monkeypatch):
    folder, base = served
    (folder / "2600-0.txt").write_bytes(gutenberg_style(headings_and_junk(3_000_000)))
    monkeypatch.setitem(CORPORA, "war_and_peace", dataclasses.replace(
        CORPORA["war_and_peace"], url=f"{base}/missing.txt", backup_url=f"{base}/2600-0.txt"))
    with pytest.raises(DownloadError) as info:
        ensure_corpus("war_and_peace", data_dir=dest, progress=False)
    first = str(info.value).splitlines()[0]
    assert "404" in first and "2600-0.txt" in first and "does not read as" in first
    assert os.listdir(dest) == []


# ----------------------------------------------------------------------------- local mirror

def test_local_mirror(dest, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toy.txt").write_bytes(TEXT)
    add_corpus(monkeypatch, f"http://127.0.0.1:{free_port()}/never-used.txt")
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror))
    path = ensure_corpus("toy", data_dir=dest, progress=False)
    assert path.read_bytes() == TEXT
    assert os.listdir(dest) == ["toy.txt"]


def test_mirror_argument_beats_env(dest, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toy.txt").write_bytes(TEXT)
    add_corpus(monkeypatch, f"http://127.0.0.1:{free_port()}/never-used.txt")
    monkeypatch.setenv(download.MIRROR_ENV, str(tmp_path / "does-not-exist"))
    assert ensure_corpus("toy", data_dir=dest, mirror=mirror, progress=False).is_file()


def test_local_mirror_without_the_file(dest, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    corpus = add_corpus(monkeypatch, f"http://127.0.0.1:{free_port()}/never-used.txt")
    monkeypatch.setenv(download.MIRROR_ENV, str(mirror))
    with pytest.raises(DownloadError, match="has no toy.txt") as info:
        ensure_corpus("toy", data_dir=dest, progress=False)
    assert download.MIRROR_ENV in str(info.value) and corpus.url in str(info.value)
    assert os.listdir(dest) == []


def test_missing_mirror_folder(dest, tmp_path, monkeypatch):
    add_corpus(monkeypatch, f"http://127.0.0.1:{free_port()}/never-used.txt")
    with pytest.raises(DownloadError, match="does not exist"):
        ensure_corpus("toy", data_dir=dest, mirror=tmp_path / "nowhere", progress=False)
    assert os.listdir(dest) == []


# ----------------------------------------------------------------------------- ensure_data_file

def test_ensure_data_file_existing(tmp_path):
    path = tmp_path / "my_text.txt"
    path.write_text("hello")
    assert ensure_data_file(str(path), progress=False) == path


def test_ensure_data_file_known_corpus(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toy.txt").write_bytes(TEXT)
    add_corpus(monkeypatch, f"http://127.0.0.1:{free_port()}/never-used.txt")
    target = tmp_path / "new" / "data" / "toy.txt"
    path = ensure_data_file(target, progress=False, mirror=mirror)
    assert path == target and path.read_bytes() == TEXT
    assert os.listdir(target.parent) == ["toy.txt"]


def test_ensure_data_file_unknown(tmp_path):
    path = tmp_path / "no_such_corpus.txt"
    with pytest.raises(FileNotFoundError) as info:
        ensure_data_file(path, progress=False)
    assert isinstance(info.value, (DownloadError, DataFileNotFoundError))
    assert str(info.value) == (
        f"no such file: {path} (known corpora that are downloaded automatically: "
        "data/tiny_shakespeare.txt, data/federalist.txt, data/war_and_peace.txt)")
    assert not path.exists()


# ----------------------------------------------------------------------------- CLI

def test_cli_success(dest, tmp_path, monkeypatch, capsys):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toy.txt").write_bytes(TEXT)
    add_corpus(monkeypatch, f"http://127.0.0.1:{free_port()}/never-used.txt")
    argv = ["toy", "--mirror", str(mirror), "--data-dir", str(dest), "--no-progress"]
    assert main(argv) == 0
    assert "downloaded" in capsys.readouterr().out
    assert main(argv) == 0
    assert "already present" in capsys.readouterr().out


def test_cli_failure_is_one_line(served, dest, monkeypatch, capsys):
    _, base = served
    add_corpus(monkeypatch, f"{base}/missing.txt")
    assert main(["toy", "--data-dir", str(dest), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "404" in err
    assert len(err.splitlines()) == 1
    assert os.listdir(dest) == []


def test_cli_unknown_name(capsys):
    assert main(["no_such_corpus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown corpus") and len(err.splitlines()) == 1


def test_cli_process_prints_no_traceback(tmp_path):
    """`python -m data.download` as a process: exit code 1, one line, no traceback."""
    env = {k: v for k, v in os.environ.items() if k != download.MIRROR_ENV}
    result = subprocess.run(
        [sys.executable, "-m", "data.download", "tiny_shakespeare", "--no-progress",
         "--mirror", str(tmp_path / "nowhere"), "--data-dir", str(tmp_path / "dest")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "dest").exists()


def test_cli_bad_flag_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--no-such-flag"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.splitlines()) == 1


def test_cli_ctrl_c_is_one_line_and_130(dest, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(download, "ensure_corpus", interrupted)
    assert main(["tiny_shakespeare", "--data-dir", str(dest), "--no-progress"]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


# What the kernel does when a folder cannot be read: stat() of anything inside fails
# with EACCES. Faked in the child process, because root reads a chmod 000 folder anyway.
_UNREADABLE = """
import errno, os, runpy, sys
folder, real_stat = sys.argv[1], os.stat
def stat(path, *args, **kwargs):
    if os.fspath(path).startswith(folder + os.sep):
        raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
    return real_stat(path, *args, **kwargs)
os.stat = stat
sys.argv = ["data.download"] + sys.argv[2:]
runpy.run_module("data.download", run_name="__main__", alter_sys=True)
"""


@pytest.mark.parametrize("how", ["chmod", "faked"])
def test_cli_unreadable_mirror_is_one_line(tmp_path, how):
    """`--mirror FOLDER` that cannot be read: exit 1, one line, no traceback, nothing written."""
    if how == "chmod" and os.geteuid() == 0:
        pytest.skip("root reads a chmod 000 folder; the 'faked' case covers it")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "tiny_shakespeare.txt").write_bytes(TEXT)
    args = ["tiny_shakespeare", "--no-progress", "--mirror", str(mirror),
            "--data-dir", str(tmp_path / "dest")]
    if how == "chmod":
        mirror.chmod(0)
        command = [sys.executable, "-m", "data.download"] + args
    else:
        command = [sys.executable, "-c", _UNREADABLE, str(mirror)] + args
    env = {k: v for k, v in os.environ.items() if k != download.MIRROR_ENV}
    try:
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=60)
    finally:
        mirror.chmod(0o755)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1, \
        result.stderr
    assert "Permission denied" in result.stderr and str(mirror) in result.stderr
    assert not (tmp_path / "dest").exists()


# ----------------------------------------------------------------------------- slow servers

def test_trickling_server_hits_the_deadline(served, dest, monkeypatch):
    """One byte every 0.05 s never trips the per-read timeout; the overall deadline ends it."""
    _, base = served
    add_corpus(monkeypatch, f"{base}/trickle/toy.txt")
    monkeypatch.setattr(download, "GRACE", 0.3)          # deadline: 0.3 s + size / MIN_RATE
    monkeypatch.setattr(download, "MIN_RATE", 10**9)
    with pytest.raises(DownloadError, match="too slow") as info:
        ensure_corpus("toy", data_dir=dest, progress=False)
    assert len(str(info.value).splitlines()) == 2
    assert os.listdir(dest) == []


def test_default_deadline_allows_a_slow_link():
    """War and Peace at 10 kB/s (an old modem would be slower) keeps the default pace."""
    size = CORPORA["war_and_peace"].size
    for grace in (download.GRACE, download.MIRROR_GRACE):
        assert all(10_000 * t >= download.MIN_RATE * (t - grace) for t in range(0, size // 10_000 + 1)), \
            "a link of 10 kB/s must never fall behind MIN_RATE * (t - grace)"


def finishes(call, seconds=30):
    """call()'s result, or a failed test if it is still running after `seconds` (it hung)."""
    box = []
    worker = threading.Thread(target=lambda: box.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s: it hangs"
    return box[0] if box else None


@pytest.fixture
def trickle(tmp_path, monkeypatch):
    """A mirror whose copy arrives through a named pipe: feed(pause) starts a thread that writes
    one byte every `pause` s (pause None: nothing, ever) until the test ends."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("needs named pipes")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toy.txt").write_bytes(TEXT)           # what the folder check sees
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    done, writers = threading.Event(), []

    def feed(pause):
        def open_copy(path):                          # the copy, as the pipe delivers it
            reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
            writers.append(os.open(fifo, os.O_WRONLY))
            os.set_blocking(reader, True)
            if pause is not None:
                threading.Thread(target=drip, args=(writers[-1], pause), daemon=True).start()
            return os.fdopen(reader, "rb", buffering=0), len(TEXT)
        monkeypatch.setattr(download, "_open_mirror_copy", open_copy)
        return mirror

    def drip(fd, pause):
        for byte in TEXT:
            if done.wait(pause):
                return
            try:
                os.write(fd, bytes([byte]))
            except OSError:
                return
    yield feed
    done.set()
    for fd in writers:                                # a read still stuck in the pipe returns
        os.close(fd)


@pytest.mark.parametrize("pause", [0.05, None], ids=["one byte every 0.05 s", "nothing at all"])
def test_trickling_mirror_is_stopped_in_one_line(trickle, dest, monkeypatch, capsys, pause):
    """A mirror folder (say, a network share) that trickles, or whose read never returns,
    is given up once it falls behind the pace: one line, exit 1, no temporary file."""
    add_corpus(monkeypatch, f"http://127.0.0.1:{free_port()}/never-used.txt")
    monkeypatch.setattr(download, "MIRROR_GRACE", 0.5)    # pace: MIN_RATE * (t - 0.5) bytes by t s
    monkeypatch.setattr(download, "MIN_RATE", 1000)
    mirror = trickle(pause)
    status = finishes(lambda: main(["toy", "--mirror", str(mirror), "--data-dir", str(dest),
                                    "--no-progress"]))
    err = capsys.readouterr().err
    assert status == 1, err
    assert err.startswith("error: ") and "too slow" in err and len(err.splitlines()) == 1, err
    assert os.listdir(dest) == [], "the temporary file must be removed"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_in_the_mirror_is_refused_without_blocking(dest, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    os.mkfifo(mirror / "toy.txt")
    add_corpus(monkeypatch, f"http://127.0.0.1:{free_port()}/never-used.txt")
    error = finishes(lambda: pytest.raises(DownloadError, ensure_corpus, "toy", data_dir=dest,
                                           mirror=mirror, progress=False), seconds=10)
    assert "not a regular file" in str(error.value).splitlines()[0], error.value
    assert os.listdir(dest) == []


_STOPPED_CHILD = """
import os, sys, threading, time
from data import download
name, mirror, dest = sys.argv[1:4]
fifo = os.path.join(mirror, "pipe")
os.mkfifo(fifo)
download.CORPORA["toy"] = download.Corpus("toy", "toy.txt", "http://127.0.0.1:9/never-used",
                                          "0" * 64, 10_000, "toy")
download.MIRROR_GRACE = 60.0                          # a trickle keeps the pace for a minute
def open_copy(path):                                  # one byte every 0.01 s
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    writer = os.open(fifo, os.O_WRONLY)
    os.set_blocking(reader, True)
    def drip():
        while True:
            os.write(writer, b"x")
            time.sleep(0.01)
    threading.Thread(target=drip, daemon=True).start()
    return os.fdopen(reader, "rb", buffering=0), 10_000
download._open_mirror_copy = open_copy
sys.exit(download.main(["toy", "--mirror", mirror, "--data-dir", dest, "--no-progress"]))
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_stops_a_mirror_copy_in_one_line_and_leaves_no_temp_file(tmp_path, name):
    """`timeout`, `kill` or a closed terminal during a slow copy: exit 128 + n, one line, nothing left."""
    if not hasattr(signal, name) or not hasattr(os, "mkfifo"):
        pytest.skip(f"needs {name} and named pipes")
    mirror, dest = tmp_path / "mirror", tmp_path / "dest"
    mirror.mkdir()
    dest.mkdir()
    (mirror / "toy.txt").write_bytes(b"x")
    env = {k: v for k, v in os.environ.items() if k != download.MIRROR_ENV}
    child = subprocess.Popen([sys.executable, "-c", _STOPPED_CHILD, name, str(mirror), str(dest)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):                          # until the copy has started (at most 30 s)
            if any(p.name.endswith(".tmp") for p in dest.iterdir()):
                time.sleep(0.2)                       # well inside the copy loop
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"the copy never started: {child.stderr.read() if child.poll() is not None else ''}")
        child.send_signal(getattr(signal, name))
        out, err = child.communicate(timeout=30)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 128 + getattr(signal, name), err
    assert err == f"error: stopped by {name}\n", err
    assert os.listdir(dest) == [], "the temporary file must be removed"


def test_oversized_download_is_refused(served, dest, monkeypatch):
    folder, base = served
    (folder / "big.txt").write_bytes(TEXT * 3)
    add_corpus(monkeypatch, f"{base}/big.txt")             # recorded size: len(TEXT)
    with pytest.raises(DownloadError, match="more than"):
        ensure_corpus("toy", data_dir=dest, progress=False)
    assert os.listdir(dest) == []


# ----------------------------------------------------------------------------- temporary files

_HOLD_LOCK = """
import fcntl, sys, time
f = open(sys.argv[1], "wb")
fcntl.flock(f, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)   # ends by itself if the test forgets it
"""


def hold_lock(path: Path) -> subprocess.Popen:
    """A process that writes `path` and holds its lock, like a running download."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(path)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "locked\n"
    return proc


@pytest.mark.skipif(download.fcntl is None, reason="no advisory locks on this platform")
def test_stale_temp_files_are_swept_live_ones_kept(dest, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toy.txt").write_bytes(TEXT)
    add_corpus(monkeypatch, f"http://127.0.0.1:{free_port()}/never-used.txt")
    dead, live = dest / ".toy.txt.dead1234.tmp", dest / ".toy.txt.live1234.tmp"
    other = dest / ".other.txt.dead1234.tmp"            # another file's: not ours to sweep
    killed = hold_lock(dead)
    killed.send_signal(signal.SIGKILL)                   # killed mid-download: no cleanup
    killed.wait()
    running = hold_lock(live)
    try:
        other.write_bytes(b"x")
        old = time.time() - 3600                         # old enough to be swept by age
        for path in (dead, live, other):
            os.utime(path, (old, old))
        assert ensure_corpus("toy", data_dir=dest, mirror=mirror, progress=False).is_file()
        assert sorted(os.listdir(dest)) == sorted([live.name, other.name, "toy.txt"])
    finally:
        running.kill()
        running.wait()


def test_ctrl_c_mid_download_leaves_no_temp_file(served, dest, monkeypatch):
    folder, base = served
    (folder / "toy.txt").write_bytes(TEXT)
    add_corpus(monkeypatch, f"{base}/toy.txt")

    def interrupted(src, dst, *args):
        dst.write(src.read(100))
        raise KeyboardInterrupt
    monkeypatch.setattr(download, "_copy_stream", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_corpus("toy", data_dir=dest, progress=False)
    assert os.listdir(dest) == []


# ----------------------------------------------------------------------------- real data

def test_real_tiny_shakespeare(shakespeare_path):
    corpus = CORPORA["tiny_shakespeare"]
    data = shakespeare_path.read_bytes()
    assert len(data) == corpus.size == 1_115_394
    assert sha256(data) == corpus.sha256


def test_real_federalist(federalist_path):
    """The real etext passes the re-release check that the fallback relies on."""
    corpus = CORPORA["federalist"]
    data = federalist_path.read_bytes()
    assert len(data) == corpus.size and sha256(data) == corpus.sha256
    assert download._fingerprint_problem(data, corpus.fingerprint) is None
    text = data.decode("utf-8").lstrip("\ufeff")
    assert len(text) == corpus.fingerprint.chars
    counts = collections.Counter(text)
    assert abs(sum(v for c, v in counts.items() if c.isalpha()) / len(text) - 0.810) < 0.001
    assert abs((counts[" "] + counts["\n"]) / len(text) - corpus.fingerprint.whitespace) < 0.001
