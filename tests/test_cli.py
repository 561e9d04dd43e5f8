"""Tests for cli.py: the argparse types, the thread limit and read_data's limit, at the edges."""

import argparse
import os

import pytest

import cli
import train_minimal as tm
from data import download


def test_download_speaks_like_cli(capsys):
    """data.download's command line has its own parser (cli imports data.download, so not the other way
    round): the same exit codes, and a bad flag is the same one line."""
    assert (download.EXIT_OK, download.EXIT_USAGE, download.EXIT_INTERRUPTED) == \
        (cli.EXIT_OK, cli.EXIT_USAGE, cli.EXIT_INTERRUPTED)
    for parser in (cli.ArgumentParser(prog="x"), download._build_parser()):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(["--no-such-flag"])
        assert e.value.code == cli.EXIT_USAGE
        assert capsys.readouterr().err == "error: unrecognized arguments: --no-such-flag (see --help)\n"


# -----------------------------------------------------------------------------
# Numbers at the edges
# -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["0", "-1", "1.5", "1e3", "x", "99999999999999999999", "9" * 5000])
def test_integer_refuses_in_one_line(raw):
    with pytest.raises(argparse.ArgumentTypeError) as e:
        cli.integer(1)(raw)
    message = str(e.value)
    assert message.startswith("must be an integer >= 1") and "\n" not in message and len(message) < 120, \
        f"cli.integer(1)({raw[:20]!r}...): {message[:200]}"


def test_integer_keeps_its_range():
    assert cli.integer(1)("7") == 7 and cli.integer(1)(str(2**63 - 1)) == 2**63 - 1
    assert cli.integer(2, maximum=14)("14") == 14
    with pytest.raises(argparse.ArgumentTypeError, match="from 2 to 14, got '15'"):
        cli.integer(2, maximum=14)("15")


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "1e400", "x", "9" * 5000])
def test_number_refuses_in_one_line(raw):
    with pytest.raises(argparse.ArgumentTypeError) as e:
        cli.number(0)(raw)
    assert str(e.value).startswith("must be a number > 0") and len(str(e.value)) < 120, str(e.value)[:200]


def test_number_keeps_its_range():
    assert cli.number(0)("1e30") == 1e30 and cli.number(0, maximum=2)("2") == 2.0
    with pytest.raises(argparse.ArgumentTypeError, match="> 0 and <= 2, got '1e30'"):
        cli.number(0, maximum=2)("1e30")


@pytest.mark.parametrize("raw", ["99999999999999999999", "0", "-3", "two", "1025", "9" * 5000])
def test_rnn_threads_outside_its_range_is_one_line_and_exit_2(raw, monkeypatch, tmp_path, capsys):
    """RNN_THREADS=99999999999999999999 once overflowed inside the BLAS library's ctypes call."""
    monkeypatch.setenv(cli.THREADS_ENV, raw)
    with pytest.raises(cli.UserError, match=f"from 1 to {cli.MAX_THREADS:,}"):
        cli.limit_threads()
    assert tm.main(["--data", str(tmp_path / "none.txt"), "--out", str(tmp_path / "out")]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"error: {cli.THREADS_ENV}=") and len(err.splitlines()) == 1, err[:300]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("threads", [0, cli.MAX_THREADS + 1, 10**20, 2.0, True])
def test_limit_threads_refuses_a_bad_count(threads):
    with pytest.raises(cli.UserError, match=f"from 1 to {cli.MAX_THREADS:,}"):
        cli.limit_threads(threads)


def test_read_data_refuses_a_limit_beyond_its_maximum(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello\n")
    assert cli.read_data(path, max_bytes=cli.READ_LIMIT_MAX)[0] == "hello\n"
    for limit in (10**36, cli.READ_LIMIT_MAX + 1, 0, -5, 2.5):
        with pytest.raises(cli.UserError, match="--max-text-mb must be a limit from 1 byte to 10,000 MB"):
            cli.read_data(path, max_bytes=limit, limit_flag="--max-text-mb")


def test_max_text_mb_1e30_is_one_line_and_exit_2(tmp_path, capsys):
    """--max-text-mb 1e30 once reached f.read(10**36) and ended in OverflowError."""
    path = tmp_path / "t.txt"
    path.write_text("hello world\n" * 200)
    out = tmp_path / "out"
    status = tm.main(["--data", str(path), "--out", str(out), "--max-text-mb", "1e30", "--max-steps", "1"])
    err = capsys.readouterr().err
    assert status == cli.EXIT_USAGE, err
    assert err.startswith("error: --max-text-mb") and len(err.splitlines()) == 1, err
    assert not out.exists(), "nothing may be written for a refused flag"


def test_read_data_reads_within_the_limit(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("hello\n" * 1000)
    with pytest.raises(cli.UserError, match="raise it with --max-text-mb 1"):
        cli.read_data(path, max_bytes=100, limit_flag="--max-text-mb")
    assert os.fspath(cli.read_data(path, max_bytes=6000)[1]) == os.fspath(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_read_data_names_a_fifo_or_a_device_and_never_waits_on_it(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)                                  # nobody writes to it: reading would wait for ever
    for path, kind in [(fifo, "a named pipe (FIFO)"), ("/dev/zero", "a device"), (tmp_path / "nope", "no such file")]:
        with pytest.raises(cli.UserError) as info:
            cli.read_data(path)
        assert kind in str(info.value) and "\n" not in str(info.value), f"read_data({path}): {info.value}"
