"""Tests of data/download.py against a local HTTP server and local mirror folders.

Nothing here touches the internet: the network path is exercised with a small
http.server on 127.0.0.1 serving fixture files, and test corpora are patched into
CORPORA with checksums computed from those fixtures.
"""

import functools
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from data import download
from data.download import (CORPORA, Corpus, DataFileNotFoundError, DownloadError,
                           ensure_corpus, ensure_data_file, main)

ROOT = Path(__file__).resolve().parents[1]
TEXT = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 50


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; /partial/NAME promises 1000 bytes and sends 10."""

    def do_GET(self):
        if self.path.startswith("/partial/"):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
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


# ----------------------------------------------------------------------------- federalist

@pytest.mark.parametrize("accepted", [True, False])
def test_federalist_rerelease(served, dest, monkeypatch, capsys, accepted):
    """A different sha256 is fine for federalist if all 85 headings are there."""
    folder, base = served
    text = federalist_like() if accepted else federalist_like(range(1, 85))
    (folder / "federalist.txt").write_bytes(text)
    add_corpus(monkeypatch, f"{base}/1404.txt", data=b"the recorded release", name="federalist")
    if accepted:
        path = ensure_corpus("federalist", data_dir=dest, mirror=base, progress=False)
        assert path.read_bytes() == text
        err = capsys.readouterr().err
        assert err.startswith("note: ") and len(err.splitlines()) == 1
    else:
        with pytest.raises(DownloadError, match="checksum mismatch"):
            ensure_corpus("federalist", data_dir=dest, mirror=base, progress=False)
        assert os.listdir(dest) == []


def test_other_corpora_are_strict(dest, tmp_path, monkeypatch):
    """tiny Shakespeare has no fallback: any other content is rejected."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "tiny_shakespeare.txt").write_bytes(federalist_like())
    with pytest.raises(DownloadError, match=CORPORA["tiny_shakespeare"].sha256):
        ensure_corpus("tiny_shakespeare", data_dir=dest, mirror=mirror, progress=False)
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
    with pytest.raises(DownloadError, match=f"has no toy.txt") as info:
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


def test_ensure_data_file_known_corpus(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "federalist.txt").write_bytes(federalist_like())
    target = tmp_path / "new" / "data" / "federalist.txt"
    path = ensure_data_file(target, progress=False, mirror=mirror)
    assert path == target and path.read_bytes() == federalist_like()
    assert os.listdir(target.parent) == ["federalist.txt"]


def test_ensure_data_file_unknown(tmp_path):
    path = tmp_path / "no_such_corpus.txt"
    with pytest.raises(FileNotFoundError) as info:
        ensure_data_file(path, progress=False)
    assert isinstance(info.value, (DownloadError, DataFileNotFoundError))
    assert str(info.value) == (
        f"no such file: {path} (known corpora that are downloaded automatically: "
        "data/tiny_shakespeare.txt, data/federalist.txt)")
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
    assert main(["no_such_corpus"]) == 1
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


# ----------------------------------------------------------------------------- real data

def test_real_tiny_shakespeare(shakespeare_path):
    corpus = CORPORA["tiny_shakespeare"]
    data = shakespeare_path.read_bytes()
    assert len(data) == corpus.size == 1_115_394
    assert sha256(data) == corpus.sha256


def test_real_federalist(federalist_path):
    """The real etext passes the re-release check that the fallback relies on."""
    data = federalist_path.read_bytes()
    assert len(data) > 1_000_000
    assert download._looks_like_federalist(data)
