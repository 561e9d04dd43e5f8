"""Checkpoints, text files and primes are input someone else made.

load_checkpoint must refuse every malformed checkpoint with one line of
CheckpointError (never another exception), read only the members the format
defines, check each .npy header before reading its data, and never run code
from the file. Every hostile variant below is a valid small checkpoint with one
thing changed. A checkpoint small on disk but huge in memory is refused before
anything is allocated, and every count in it is bounded. Checkpoints written by
earlier code (tests/fixtures) still load and resume. read_text must refuse
anything but a regular file of bounded size, before reading it; sample_text
primes on a long text in flat memory.
"""

import errno
import io
import json
import math
import os
import pickle
import re
import socket
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import implementation as rnn
import safeio
import checkpoints

V, H, B, T = 6, 5, 2, 4
CHARS = list("abcdef")
LR = 0.05
FIXTURES = Path(__file__).parent / "fixtures"    # checkpoints of earlier code: see its README.md


# ----------------------------------------------------------------------------- valid checkpoints

def trained(optimizer="adagrad", ema=0.0, dtype=np.float64):
    """A Trainer after a few steps: nonzero weights, optimiser state and hidden state."""
    data = np.random.default_rng(0).integers(0, V, size=200)
    params = rnn.init_params(V, H, np.random.default_rng(1), dtype=dtype, init_scale=0.3)
    tr = rnn.Trainer(params, data, B, T, LR, optimizer, ema=ema)
    for _ in range(3):
        tr.step()
    return tr


def config_for(optimizer="adagrad", ema=0.0, dtype="float64"):
    """train_minimal.py's settings for the run trained() makes."""
    return {"hidden_size": H, "seq_length": T, "batch_size": B, "optimizer": optimizer,
            "learning_rate": LR, "lr_schedule": "constant", "min_lr": 0.0, "clip": 5.0,
            "dtype": dtype, "init_scale": 0.3, "random_offsets": False, "ema": ema, "warmup_steps": 0,
            "epochs": 10, "max_steps": None, "time_budget": None, "patience": 0, "val_fraction": 0.1,
            "sample_every": 0, "eval_every": 0, "log_every": 1, "sample_length": 20,
            "temperature": 1.0, "seed": 3, "preset": "textbook", "data": "d.txt", "out": "out"}


def save(path, optimizer="adagrad", ema=0.0, rng=None, config=True):
    tr = trained(optimizer, ema)
    meta = {**tr.state(), "best_val_loss": None, "best_step": None, "evals_since_best": 0,
            "elapsed": 1.5, "train_seconds": 1.0}
    if config:
        meta["config"] = config_for(optimizer, ema)
    path = checkpoints.save_checkpoint(path, *tr.checkpoint_arrays(), CHARS, tr.h, meta, rng)
    return path, tr


@pytest.mark.parametrize("optimizer,ema", [("adagrad", 0.0), ("adam", 0.0), ("adam", 0.9), ("adagrad", 0.9)])
def test_valid_checkpoints_load_and_round_trip_exactly(tmp_path, optimizer, ema):
    rng = np.random.default_rng(7)
    rng.random(5)
    path, tr = save(tmp_path / "ck.npz", optimizer, ema, rng)
    ck = checkpoints.load_checkpoint(path, expected_chars=CHARS)
    params, opt = tr.checkpoint_arrays()
    for k in rnn.PARAM_NAMES:
        np.testing.assert_array_equal(ck["params"][k], params[k], err_msg=f"params[{k!r}]")
        assert ck["params"][k].dtype == params[k].dtype
    assert set(ck["opt_state"]) == set(opt)
    for slot, value in opt.items():
        if isinstance(value, dict):
            for k in rnn.PARAM_NAMES:
                np.testing.assert_array_equal(ck["opt_state"][slot][k], value[k], err_msg=f"opt {slot}/{k}")
        else:
            assert ck["opt_state"][slot] == value
    np.testing.assert_array_equal(ck["hidden"], tr.h)
    assert ck["chars"] == CHARS and ck["meta"]["step"] == tr.step_count
    assert ck["meta"]["config"] == config_for(optimizer, ema)
    assert ck["rng"].random(3).tolist() == rng.random(3).tolist()
    # and it resumes: one more step from the file equals one more step of the original
    back = rnn.Trainer(rnn.init_params(V, H, np.random.default_rng(9)), tr.train_ids, B, T, LR,
                       optimizer, ema=ema).restore(ck)
    back.step(), tr.step()
    for k in rnn.PARAM_NAMES:
        np.testing.assert_array_equal(back.model_params[k], tr.model_params[k])


@pytest.mark.parametrize("name", sorted(checkpoints.BIT_GENERATORS))
def test_every_listed_bit_generator_round_trips(tmp_path, name):
    rng = np.random.Generator(checkpoints.BIT_GENERATORS[name](11))
    rng.random(7)
    ck = checkpoints.load_checkpoint(save(tmp_path / "ck.npz", rng=rng)[0])
    assert type(ck["rng"].bit_generator).__name__ == name
    assert ck["rng"].random(5).tolist() == rng.random(5).tolist()


def test_checkpoint_without_rng_or_settings_and_compressed_loads(tmp_path):
    path, _ = save(tmp_path / "ck.npz", config=False)
    ck = checkpoints.load_checkpoint(path)
    assert ck["rng"] is None and "config" not in ck["meta"]
    deflated = tmp_path / "deflated.npz"                          # what np.savez_compressed writes
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    again = checkpoints.load_checkpoint(deflated)
    for k in rnn.PARAM_NAMES:
        np.testing.assert_array_equal(again["params"][k], ck["params"][k])


# ----------------------------------------------------------------------------- crafting files

def npy(a) -> bytes:
    """The .npy bytes of an array (object arrays pickled, as a hostile writer may)."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(a), allow_pickle=True)
    return buf.getvalue()


def npy_header(shape, descr="<f8", version=(1, 0)) -> bytes:
    """A .npy header declaring `shape` and `descr`, with no data after it."""
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    if version == (1, 0):
        np.lib.format.write_array_header_1_0(buf, header)
    else:
        np.lib.format.write_array_header_2_0(buf, header)
    return buf.getvalue()


def zip_bytes(entries) -> bytes:
    """A zip archive written by hand, so that a test can set what zipfile would not:
    any flag and compression method, a declared size that is not the real one,
    the same name twice.

    entries: dicts with name and data (as stored on disk), and optionally method
    (0 stored, 8 deflated, ...), size (declared uncompressed size), crc (of the
    uncompressed data; the default is right for stored data only) and flags.
    """
    out, index = bytearray(), bytearray()
    for e in entries:
        name, data = e["name"].encode(), e["data"]
        method, flags = e.get("method", 0), e.get("flags", 0)
        size, crc = e.get("size", len(data)), e.get("crc", zlib.crc32(data))
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, len(data), size,
                           len(name), 0) + name + data
        index += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, method, 0, 0x21, crc, len(data),
                             size, len(name), 0, 0, 0, 0, 0, offset) + name
    out += index + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(index),
                               len(out), 0)
    return bytes(out)


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)                     # raw deflate, as in a zip
    return c.compress(data) + c.flush()


def deflate_bomb(prefix: bytes, total: int) -> bytes:
    """Raw deflate data that inflates to `prefix` followed by zeros, `total` bytes in all,
    built without ever holding them: a block of 1 MiB of zeros, compressed once after a
    full flush (which resets the compressor), is the same bytes every time."""
    chunk = 1 << 20
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(chunk)) + c.flush(zlib.Z_FULL_FLUSH)
    n, rest = divmod(total - len(prefix), chunk)
    return head + block * n + c.compress(bytes(rest)) + c.flush()


class Base:
    """A valid checkpoint taken apart: its members (name -> .npy bytes) and its meta."""

    def __init__(self, path: Path):
        self.raw = path.read_bytes()
        with zipfile.ZipFile(path) as z:
            self.members = {i.filename: z.read(i) for i in z.infolist()}
        self.meta = json.loads(str(np.lib.format.read_array(io.BytesIO(self.members["meta.npy"]))))

    def build(self, members=None, **per_name) -> bytes:
        """The archive of `members` (default: the valid ones); per_name[name] = dict of
        zip_bytes entry fields overriding that member's."""
        members = self.members if members is None else members
        return zip_bytes([{"name": n, "data": d, **per_name.get(n.replace("/", "_").removesuffix(".npy"), {})}
                          for n, d in members.items()])

    def replace(self, name, data) -> bytes:
        return self.build({**self.members, name: data})

    def drop(self, name) -> bytes:
        return self.build({n: d for n, d in self.members.items() if n != name})

    def add(self, name, data) -> bytes:
        return self.build({**self.members, name: data})

    def with_meta_text(self, text: str) -> bytes:
        return self.replace("meta.npy", npy(np.array(text)))

    def with_meta(self, change) -> bytes:
        meta = json.loads(json.dumps(self.meta))
        change(meta)
        return self.with_meta_text(json.dumps(meta))

    def array(self, name) -> np.ndarray:
        return np.lib.format.read_array(io.BytesIO(self.members[name]))

    def with_array(self, name, change) -> bytes:
        a = self.array(name).copy()
        a = change(a)
        return self.replace(name, npy(a))


def _set(path, value):
    """A variant whose meta has meta[path[0]][path[1]]... = value."""
    def change(meta):
        d = meta
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return lambda b: b.with_meta(change)


def _pop(*path):
    """A variant whose meta lacks meta[path[0]][path[1]]..."""
    def change(meta):
        d = meta
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
    return lambda b: b.with_meta(change)


def _rng(state):
    return _set(["rng_state"], json.dumps(state))


# Runs when unpickled: sets a flag that test_pickles_are_never_loaded looks for.
PICKLE_PAYLOAD = type("Payload", (), {"__reduce__": lambda self: (
    exec, ("import implementation; implementation.UNPICKLED_CODE_RAN = True",))})

PCG = {"bit_generator": "PCG64", "state": {"state": 1, "inc": 3}, "has_uint32": 0, "uinteger": 0}
MT = {"bit_generator": "MT19937", "state": {"key": [1] * 624, "pos": 624}}


# label -> function(Base) -> bytes of a file that load_checkpoint must refuse.
HOSTILE = {
    # --- meta: not an object, not JSON, not a string ---
    "meta is a JSON list": lambda b: b.with_meta_text("[1, 2]"),
    "meta is a JSON string": lambda b: b.with_meta_text('"numpy-char-rnn-checkpoint"'),
    "meta is null": lambda b: b.with_meta_text("null"),
    "meta is a number": lambda b: b.with_meta_text("17"),
    "meta is not JSON": lambda b: b.with_meta_text("{step: 1"),
    "meta nested 100000 deep": lambda b: b.with_meta_text("[" * 100_000 + "]" * 100_000),
    "meta is a float array": lambda b: b.replace("meta.npy", npy(np.float64(1.0))),
    "meta is a 1-D string array": lambda b: b.replace("meta.npy", npy(np.array([json.dumps(b.meta)]))),
    "meta is a pickled object": lambda b: b.replace("meta.npy", npy(np.array([PICKLE_PAYLOAD()], dtype=object))),
    "meta longer than the limit": lambda b: b.with_meta_text(" " * (checkpoints.META_MAX_CHARS + 1)),
    "meta with another format": _set(["format"], "pytorch"),
    "meta without format": _pop("format"),
    "meta version 2": _set(["version"], 2),
    "meta version true": _set(["version"], True),
    # --- meta: the counters ---
    **{f"meta without {k}": _pop(k) for k in ("step", "epoch", "window", "smooth_loss", "opt_scalars", "rng_state")},
    "step -1": _set(["step"], -1),
    "step 2**63": _set(["step"], 2**63),
    "step 10**30": _set(["step"], 10**30),
    "step 1e30": _set(["step"], 1e30),
    "step 10**12": _set(["step"], 10**12),
    "epoch 10**400": _set(["epoch"], 10**400),
    "window 2**63": _set(["window"], 2**63),
    "best_step 10**12": _set(["best_step"], 10**12),
    "evals_since_best 2**64": _set(["evals_since_best"], 2**64),
    "elapsed 1e30": _set(["elapsed"], 1e30),
    "train_seconds 1e9": _set(["train_seconds"], 1e9),
    "step 1.5": _set(["step"], 1.5),
    "step a string": _set(["step"], "3"),
    "step true": _set(["step"], True),
    "step null": _set(["step"], None),
    "epoch -1": _set(["epoch"], -1),
    "window a list": _set(["window"], [0]),
    "smooth_loss NaN": lambda b: b.with_meta_text(json.dumps({**b.meta, "smooth_loss": float("nan")})),
    "smooth_loss Infinity": lambda b: b.with_meta_text(json.dumps({**b.meta, "smooth_loss": float("inf")})),
    "smooth_loss a string": _set(["smooth_loss"], "1.0"),
    "best_val_loss a string": _set(["best_val_loss"], "low"),
    "best_step 1.5": _set(["best_step"], 1.5),
    "evals_since_best -1": _set(["evals_since_best"], -1),
    "elapsed -1": _set(["elapsed"], -1.0),
    "opt_scalars a list": _set(["opt_scalars"], []),
    "opt_scalars with a step for adagrad": _set(["opt_scalars"], {"step": 3}),
    # --- meta: the settings ---
    "config a list": _set(["config"], [1]),
    "config a string": _set(["config"], "fast"),
    "config null": _set(["config"], None),
    "learning_rate 0": _set(["config", "learning_rate"], 0),
    "learning_rate negative": _set(["config", "learning_rate"], -0.1),
    "learning_rate a string": _set(["config", "learning_rate"], "0.1"),
    "clip -1": _set(["config", "clip"], -1),
    "clip a string": _set(["config", "clip"], "5"),
    "min_lr a string": _set(["config", "min_lr"], "low"),
    "epochs 1.5": _set(["config", "epochs"], 1.5),
    "epochs 0": _set(["config", "epochs"], 0),
    "max_steps true": _set(["config", "max_steps"], True),
    "time_budget -1": _set(["config", "time_budget"], -1),
    "warmup_steps -3": _set(["config", "warmup_steps"], -3),
    "optimizer sgd": _set(["config", "optimizer"], "sgd"),
    "dtype float16": _set(["config", "dtype"], "float16"),
    "lr_schedule linear": _set(["config", "lr_schedule"], "linear"),
    "ema 1": _set(["config", "ema"], 1.0),
    "ema negative": _set(["config", "ema"], -0.1),
    "hidden_size 0": _set(["config", "hidden_size"], 0),
    "hidden_size a string": _set(["config", "hidden_size"], "5"),
    "seed -1": _set(["config", "seed"], -1),
    "random_offsets a string": _set(["config", "random_offsets"], "yes"),
    "data a number": _set(["config", "data"], 5),
    "val_fraction 1": _set(["config", "val_fraction"], 1.0),
    "temperature 0": _set(["config", "temperature"], 0),
    "sample_every 2.5": _set(["config", "sample_every"], 2.5),
    "config hidden_size differs from the arrays": _set(["config", "hidden_size"], H + 2),
    "config batch_size differs from hidden": _set(["config", "batch_size"], B + 1),
    "config vocab_size differs from vocab": _set(["config", "vocab_size"], V + 1),
    "config dtype differs from the arrays": _set(["config", "dtype"], "float32"),
    "config names adam, the arrays are adagrad's": _set(["config", "optimizer"], "adam"),
    "config ema set, no weights slot": _set(["config", "ema"], 0.5),
    # --- meta: the RNG state (names that would be called if looked up in np.random) ---
    **{f"rng_state names {name}": _rng({**PCG, "bit_generator": name})
       for name in ("seed", "default_rng", "Generator", "RandomState", "BitGenerator", "SeedSequence",
                    "__import__", "os.system", "")},
    "rng_state name is a list": _rng({**PCG, "bit_generator": ["PCG64"]}),
    "rng_state not a string": _set(["rng_state"], 5),
    "rng_state not JSON": _set(["rng_state"], "{PCG64"),
    "rng_state a JSON list": _rng(["PCG64"]),
    "rng_state without state": _rng({k: v for k, v in PCG.items() if k != "state"}),
    "rng_state with an extra key": _rng({**PCG, "extra": 1}),
    "rng_state negative state": _rng({**PCG, "state": {"state": -1, "inc": 3}}),
    "rng_state state over 128 bits": _rng({**PCG, "state": {"state": 1 << 130, "inc": 3}}),
    "rng_state inc a string": _rng({**PCG, "state": {"state": 1, "inc": "3"}}),
    "rng_state has_uint32 2": _rng({**PCG, "has_uint32": 2}),
    "rng_state uinteger over 32 bits": _rng({**PCG, "uinteger": 1 << 33}),
    "rng_state MT19937 pos past the key (crashes NumPy)": _rng({**MT, "state": {"key": [1] * 624, "pos": 10**6}}),
    "rng_state MT19937 key too short": _rng({**MT, "state": {"key": [1] * 10, "pos": 0}}),
    "rng_state MT19937 key over 32 bits": _rng({**MT, "state": {"key": [1 << 33] * 624, "pos": 0}}),
    "rng_state Philox buffer_pos past the buffer": _rng(
        {**json.loads(checkpoints.rng_state_json(np.random.Generator(np.random.Philox(0)))), "buffer_pos": 9}),
    "rng_state SFC64 state of 3 words": _rng({"bit_generator": "SFC64", "state": {"state": [1, 2, 3]},
                                              "has_uint32": 0, "uinteger": 0}),
    # --- members missing, extra, repeated ---
    "no hidden": lambda b: b.drop("hidden.npy"),
    "no vocab": lambda b: b.drop("vocab.npy"),
    "no meta": lambda b: b.drop("meta.npy"),
    "no params/Why": lambda b: b.drop("params/Why.npy"),
    "no opt/memory/bh": lambda b: b.drop("opt/memory/bh.npy"),
    "no optimiser state": lambda b: b.build({n: d for n, d in b.members.items() if not n.startswith("opt/")}),
    "Adagrad and Adam state both": lambda b: b.build({**b.members, **{
        f"opt/{s}/{k}.npy": b.members[f"opt/memory/{k}.npy"] for s in ("m", "v") for k in rnn.PARAM_NAMES}}),
    "Adam's m without v": lambda b: b.build({**{n: d for n, d in b.members.items() if not n.startswith("opt/")},
                                             **{f"opt/m/{k}.npy": b.members[f"opt/memory/{k}.npy"]
                                                for k in rnn.PARAM_NAMES}}),
    "a weights slot with one array": lambda b: b.add("opt/weights/Wxh.npy", b.members["params/Wxh.npy"]),
    "a junk member": lambda b: b.add("junk.npy", npy(np.zeros(3))),
    "a text member": lambda b: b.add("notes.txt", b"hello"),
    "a member outside the folder": lambda b: b.add("../../params/Wxh.npy", b.members["params/Wxh.npy"]),
    "an extra parameter": lambda b: b.add("params/Wxx.npy", b.members["params/Whh.npy"]),
    "an unknown optimiser slot": lambda b: b.add("opt/sgd/Wxh.npy", b.members["params/Wxh.npy"]),
    "params/Wxh twice": lambda b: zip_bytes([{"name": n, "data": d} for n, d in b.members.items()]
                                            + [{"name": "params/Wxh.npy", "data": b.members["params/Wxh.npy"]}]),
    # --- zip members: flags, compression, sizes ---
    "params/Wxh encrypted flag": lambda b: b.build(params_Wxh={"flags": 1}),
    "meta encrypted flag": lambda b: b.build(meta={"flags": 1}),
    "params/Wxh bzip2": lambda b: b.build(params_Wxh={"method": 12}),
    "params/Wxh lzma": lambda b: b.build(params_Wxh={"method": 14}),
    "params/Wxh unknown compression 99": lambda b: b.build(params_Wxh={"method": 99}),
    "params/bh with trailing bytes": lambda b: b.replace("params/bh.npy", b.members["params/bh.npy"] + bytes(8)),
    "params/bh cut short": lambda b: b.replace("params/bh.npy", b.members["params/bh.npy"][:-8]),
    "params/Wxh declares a bigger size": lambda b: b.build(params_Wxh={
        "method": 8, "data": deflate(b.members["params/Wxh.npy"]), "size": len(b.members["params/Wxh.npy"]) + 80,
        "crc": zlib.crc32(b.members["params/Wxh.npy"])}),
    "params/Wxh: a 1 GiB deflate bomb behind a valid header": lambda b: b.build(params_Wxh={
        "method": 8, "data": deflate_bomb(b.members["params/Wxh.npy"], 1 << 30), "size": 1 << 30}),
    "params/bh bad CRC": lambda b: b.build(params_bh={"crc": 12345}),
    # --- .npy headers ---
    "params/Wxh declares (1e6, 1e6)": lambda b: b.replace("params/Wxh.npy", npy_header((10**6, 10**6))),
    "params/Wxh declares H over the limit": lambda b: b.replace("params/Wxh.npy", npy_header((200_000, V))),
    "params/Wxh declares a negative shape": lambda b: b.replace("params/Wxh.npy", npy_header((-1, V))),
    "params/Wxh declares 3 dimensions": lambda b: b.replace("params/Wxh.npy", npy_header((H, V, 1))),
    "hidden declares a million streams": lambda b: b.replace("hidden.npy", npy_header((H, 10**6))),
    "params/Wxh header length 4 GiB": lambda b: b.replace(
        "params/Wxh.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFFFFF0) + b"{" * 64),
    "params/Wxh .npy version 3": lambda b: b.replace(
        "params/Wxh.npy", b"\x93NUMPY\x03" + b.members["params/Wxh.npy"][7:]),
    "params/Wxh bad magic": lambda b: b.replace("params/Wxh.npy", b"\x93NUMPZ" + b.members["params/Wxh.npy"][6:]),
    "params/Wxh header not a dict": lambda b: b.replace(
        "params/Wxh.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", 118) + b"[1, 2]".ljust(117) + b"\n"),
    "params/Wxh header calls a function": lambda b: b.replace(
        "params/Wxh.npy", b"\x93NUMPY\x01\x00" + struct.pack("<H", 118)
        + b"{'descr': __import__('os').getcwd(), 'fortran_order': False, 'shape': (5, 6)}".ljust(117) + b"\n"),
    # --- dtypes ---
    **{f"params/Wxh of dtype {label}": (lambda dt: lambda b: b.with_array(
        "params/Wxh.npy", lambda a: np.zeros(a.shape, dtype=dt)))(dt)
       for label, dt in [("int64", np.int64), ("bool", bool), ("complex128", np.complex128), ("str", "<U3"),
                         ("bytes", "S4"), ("datetime64", "datetime64[s]"), ("timedelta64", "timedelta64[s]"),
                         ("float16", np.float16), ("longdouble", np.longdouble),
                         ("struct", [("a", "<f8")]), ("subarray", ("<f8", (2,)))]},
    "params/Wxh a pickled object array": lambda b: b.replace(
        "params/Wxh.npy", npy(np.array([[PICKLE_PAYLOAD()] * V] * H, dtype=object))),
    "hidden of dtype int32": lambda b: b.with_array("hidden.npy", lambda a: a.astype(np.int32)),
    "opt/memory/Whh complex": lambda b: b.with_array("opt/memory/Whh.npy", lambda a: a.astype(complex)),
    "vocab of dtype float": lambda b: b.with_array("vocab.npy", lambda a: a.astype(float)),
    "vocab of dtype bool": lambda b: b.with_array("vocab.npy", lambda a: np.ones(a.shape, bool)),
    "vocab of strings": lambda b: b.replace("vocab.npy", npy(np.array(CHARS))),
    # --- values ---
    "NaN in params/Wxh": lambda b: b.with_array("params/Wxh.npy", lambda a: np.where(a == a.flat[3], np.nan, a)),
    "inf in params/by": lambda b: b.with_array("params/by.npy", lambda a: a + np.inf),
    "NaN in hidden": lambda b: b.with_array("hidden.npy", lambda a: a * np.nan),
    "inf in opt/memory/Why": lambda b: b.with_array("opt/memory/Why.npy", lambda a: -a - np.inf),
    "negative opt/memory/bh": lambda b: b.with_array("opt/memory/bh.npy", lambda a: -a - 1),
    # --- shapes ---
    "params/Whh (H, H+1)": lambda b: b.replace("params/Whh.npy", npy(np.zeros((H, H + 1)))),
    "params/bh 1-D": lambda b: b.with_array("params/bh.npy", lambda a: a.ravel()),
    "params/by (V, 2)": lambda b: b.replace("params/by.npy", npy(np.zeros((V, 2)))),
    "params/Why transposed": lambda b: b.with_array("params/Why.npy", lambda a: a.T),
    "opt/memory/Why transposed": lambda b: b.with_array("opt/memory/Why.npy", lambda a: a.T),
    "hidden (H+1, B)": lambda b: b.replace("hidden.npy", npy(np.zeros((H + 1, B)))),
    "hidden 1-D": lambda b: b.with_array("hidden.npy", lambda a: a[:, 0]),
    "hidden with no streams": lambda b: b.replace("hidden.npy", npy(np.zeros((H, 0)))),
    "params/Wxh (0, V)": lambda b: b.replace("params/Wxh.npy", npy(np.zeros((0, V)))),
    # --- the vocabulary ---
    "vocab 2-D": lambda b: b.with_array("vocab.npy", lambda a: a[:, None]),
    "vocab one too long": lambda b: b.with_array("vocab.npy", lambda a: np.append(a, 200)),
    "vocab past 0x10FFFF": lambda b: b.with_array("vocab.npy", lambda a: np.append(a[:-1], 0x110000)),
    "vocab negative": lambda b: b.with_array("vocab.npy", lambda a: np.append(-1, a[1:])),
    "vocab uint64 past 2**63": lambda b: b.with_array("vocab.npy", lambda a: np.append(a[:-1].astype(np.uint64), np.uint64(2**63 + 5))),
    "vocab unsorted": lambda b: b.with_array("vocab.npy", lambda a: a[::-1]),
    "vocab with a repeat": lambda b: b.with_array("vocab.npy", lambda a: np.append(a[:-1], a[-2])),
    "vocab with a surrogate": lambda b: b.with_array("vocab.npy", lambda a: np.append(a[:-1], 0xD800)),
    # --- the archive ---
    "an empty file": lambda b: b"",
    "a text file": lambda b: b"step = 1\n",
    **{f"truncated to {f:.0%}": (lambda f: lambda b: b.raw[: int(len(b.raw) * f)])(f) for f in (0.1, 0.5, 0.9)},
    "last byte cut": lambda b: b.raw[:-1],
    "a flipped byte in params/Whh's data": lambda b: (lambda r, i: r[:i] + bytes([r[i] ^ 0xFF]) + r[i + 1:])(
        b.raw, b.raw.index(b"params/Whh") + 200),
    "end record claims a 1 GB index": lambda b: (lambda r, i: r[:i + 12] + struct.pack("<I", 10**9) + r[i + 16:])(
        b.raw, b.raw.rindex(b"PK\x05\x06")),
    "end record points past the file": lambda b: (lambda r, i: r[:i + 16] + struct.pack("<I", 2**31) + r[i + 20:])(
        b.raw, b.raw.rindex(b"PK\x05\x06")),
    "a zip64 locator": lambda b: (lambda r, i: r[:i] + b"PK\x06\x07" + bytes(16) + r[i:])(
        b.raw, b.raw.rindex(b"PK\x05\x06")),
}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return Base(save(tmp_path_factory.mktemp("base") / "ck.npz")[0])


@pytest.mark.parametrize("label", list(HOSTILE))
def test_hostile_checkpoint_is_refused_in_one_line(tmp_path, base, label, monkeypatch):
    path = tmp_path / "hostile.npz"
    path.write_bytes(HOSTILE[label](base))
    seeded = []
    monkeypatch.setattr(np.random, "seed", lambda *a, **k: seeded.append(a))
    before = np.random.get_state()[1].copy()
    with pytest.raises(checkpoints.CheckpointError) as info:
        checkpoints.load_checkpoint(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message and "\r" not in message, f"{label}: message spans lines: {message!r}"
    assert str(path) in message, f"{label}: the message should name the file: {message!r}"
    assert not seeded and (np.random.get_state()[1] == before).all(), f"{label}: the file called np.random"
    assert not hasattr(rnn, "UNPICKLED_CODE_RAN"), f"{label}: a pickle from the file was loaded"


def test_the_valid_base_loads(base, tmp_path):
    """The hostile variants differ from a checkpoint that loads: the refusals are theirs."""
    path = tmp_path / "base.npz"
    path.write_bytes(base.build())
    assert checkpoints.load_checkpoint(path)["chars"] == CHARS


def test_pickles_are_never_loaded(base, tmp_path):
    # the payload does run when unpickled, so the checks below can fail
    try:
        pickle.loads(pickle.dumps(PICKLE_PAYLOAD()))
        pickle_runs = hasattr(rnn, "UNPICKLED_CODE_RAN")
    finally:
        if hasattr(rnn, "UNPICKLED_CODE_RAN"):
            del rnn.UNPICKLED_CODE_RAN
    assert pickle_runs
    for label in ("params/Wxh a pickled object array", "meta is a pickled object"):
        path = tmp_path / "p.npz"
        path.write_bytes(HOSTILE[label](base))
        with pytest.raises(checkpoints.CheckpointError, match="dtype"):
            checkpoints.load_checkpoint(path)
        assert not hasattr(rnn, "UNPICKLED_CODE_RAN")


def test_rng_state_naming_a_function_is_not_called(base, tmp_path, monkeypatch):
    calls = []
    for name in ("seed", "default_rng"):
        monkeypatch.setattr(np.random, name, lambda *a, name=name, **k: calls.append(name))
    before = np.random.get_state()[1].copy()
    for name in ("seed", "default_rng"):
        path = tmp_path / f"{name}.npz"
        path.write_bytes(HOSTILE[f"rng_state names {name}"](base))
        with pytest.raises(checkpoints.CheckpointError, match=f"bit_generator must be one of .*got '{name}'"):
            checkpoints.load_checkpoint(path)
        with pytest.raises(checkpoints.CheckpointError, match="bit_generator must be one of"):
            checkpoints.rng_from_json(json.dumps({**PCG, "bit_generator": name}))
    assert calls == [] and (np.random.get_state()[1] == before).all()


def test_messages_say_what_is_wrong(base, tmp_path):
    """A few refusals read in full: the member, the field and what it must be."""
    want = {
        "step -1": r"meta: step must be an integer in \[0, 10\*\*12\), got -1",
        "step 2**63": r"meta: step must be an integer in \[0, 10\*\*12\), got 9223372036854775808",
        "elapsed 1e30": r"meta: elapsed must be a number of seconds in \[0, 1e9\), got 1e\+30",
        "learning_rate 0": r"meta\.config: learning_rate must be a finite number > 0, got 0",
        "meta without step": r"meta has no 'step'",
        "params/Wxh of dtype int64": r"params/Wxh has dtype 'int64', expected float32 or float64",
        "params/Wxh declares (1e6, 1e6)": r"params/Wxh has shape \(1000000, 1000000\): expected \(H, V\) "
                                          r"with 1 <= H, V <= 100,000",
        "params/Whh (H, H+1)": r"params/Whh has shape \(5, 6\), expected \(5, 5\)",
        "a junk member": r"member 'junk\.npy' is not part of the checkpoint format",
        "params/Wxh encrypted flag": r"params/Wxh\.npy is encrypted",
        "params/Wxh unknown compression 99": r"compression method 99",
        "vocab unsorted": r"strictly increasing",
        "NaN in params/Wxh": r"params/Wxh holds NaN or inf",
        "no opt/memory/bh": r"opt/memory has no bh",
        "config names adam, the arrays are adagrad's": r"meta\.config says optimizer 'adam', the arrays say adagrad",
        "params/Wxh: a 1 GiB deflate bomb behind a valid header": r"the archive says 1,073,741,824 bytes",
    }
    for label, pattern in want.items():
        path = tmp_path / "h.npz"
        path.write_bytes(HOSTILE[label](base))
        with pytest.raises(checkpoints.CheckpointError, match=pattern):
            checkpoints.load_checkpoint(path)


def test_byte_budget_is_checked_before_reading(base, tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    path.write_bytes(base.build())
    monkeypatch.setattr(checkpoints, "CHECKPOINT_MAX_BYTES", 1000)
    opened = []
    real_read_array = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: opened.append(1) or real_read_array(*a, **k))
    with pytest.raises(checkpoints.CheckpointError, match=r"over the limit of 1,000"):
        checkpoints.load_checkpoint(path)
    assert opened == [], "no array data may be read before the budget is checked"


def test_the_counts_in_meta_are_bounded_but_the_bounds_load(base, tmp_path):
    """Just below each stated bound loads; the bounds themselves are among HOSTILE."""
    below = checkpoints.META_MAX_COUNT - 1
    path = tmp_path / "edge.npz"
    path.write_bytes(base.with_meta(lambda m: m.update(
        step=below, epoch=below, window=below, best_step=below, evals_since_best=below,
        elapsed=checkpoints.META_MAX_SECONDS * 0.999, train_seconds=0.0)))
    assert checkpoints.load_checkpoint(path)["meta"]["step"] == below


def test_max_bytes_is_the_memory_of_the_arrays(base, tmp_path):
    """load_checkpoint(max_bytes=N) admits a checkpoint whose arrays take exactly N bytes, not N - 1."""
    path = tmp_path / "ck.npz"
    path.write_bytes(base.build())
    ck = checkpoints.load_checkpoint(path)
    arrays = [*ck["params"].values(), ck["hidden"], np.array([ord(c) for c in ck["chars"]]),
              *(a for slot in ck["opt_state"].values() if isinstance(slot, dict) for a in slot.values())]
    total = sum(a.nbytes for a in arrays) + base.array("meta.npy").nbytes
    assert checkpoints.load_checkpoint(path, max_bytes=total)["chars"] == CHARS
    with pytest.raises(checkpoints.CheckpointError, match=rf"would take {total:,} bytes of memory \(H {H}, "
                                                          rf"V {V}, B {B}\), over the limit of {total - 1:,}"):
        checkpoints.load_checkpoint(path, max_bytes=total - 1)


# ----------------------------------------------------------------------------- small on disk, huge in memory

_ZERO_CRCS = {}


def zeros_entry(name: str, shape, descr="<f8") -> dict:
    """A zip entry (for zip_bytes) of a .npy member holding zeros of `shape`, deflated
    without ever holding its bytes: a GB of zeros takes about a MB. Its CRC is right."""
    head = npy_header(shape, descr)
    n = math.prod(shape) * np.dtype(descr).itemsize
    if (head, n) not in _ZERO_CRCS:                                 # the same bytes for same-shaped members
        crc, block = zlib.crc32(head), bytes(1 << 24)
        for start in range(0, n, len(block)):
            crc = zlib.crc32(block[: min(len(block), n - start)], crc)
        _ZERO_CRCS[head, n] = crc
    return {"name": name, "data": deflate_bomb(head, len(head) + n), "method": 8, "size": len(head) + n,
            "crc": _ZERO_CRCS[head, n]}


def consistent_checkpoint(path: Path, H: int, V: int = 65) -> Path:
    """A checkpoint of zeros whose every shape, dtype, size and setting agrees: Adagrad in
    float64, one stream. It loads when H is small; H = 11,000 makes 1.96 GB of arrays."""
    shapes = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H, 1), "by": (V, 1)}
    meta = {"format": checkpoints.CHECKPOINT_FORMAT, "version": checkpoints.CHECKPOINT_VERSION, "step": 0,
            "epoch": 0, "window": 0, "smooth_loss": math.log(V), "opt_scalars": {}, "rng_state": None,
            "config": {**config_for(), "hidden_size": H, "vocab_size": V, "batch_size": 1}}
    entries = [zeros_entry(f"{slot}/{k}.npy", shape) for slot in ("params", "opt/memory")
               for k, shape in shapes.items()]
    entries += [zeros_entry("hidden.npy", (H, 1)),
                {"name": "vocab.npy", "data": npy(np.arange(32, 32 + V))},
                {"name": "meta.npy", "data": npy(np.array(json.dumps(meta)))}]
    path.write_bytes(zip_bytes(entries))
    return path


def run_bounded(code: str, *args, imports="checkpoints", extra_mib: int = 200) -> subprocess.CompletedProcess:
    """Run `code` in a fresh Python that, once it has imported NumPy and `imports`, may grow
    its address space by only extra_mib MiB (RLIMIT_AS): a larger allocation raises
    MemoryError. The timeout only stops a hung test; it measures nothing."""
    prologue = ("import resource, sys\n"
                f"import numpy, implementation, {imports}\n"
                "vm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmSize:'))\n"
                f"limit = vm * 1024 + {extra_mib << 20}\n"
                "resource.setrlimit(resource.RLIMIT_AS, (limit, limit))\n")
    return subprocess.run([sys.executable, "-c", prologue + code, *map(str, args)], capture_output=True,
                          text=True, cwd=os.path.dirname(rnn.__file__), timeout=300)


needs_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc: Linux")


def test_the_consistent_checkpoint_loads_when_small(tmp_path):
    """The huge checkpoint below differs from one that loads only in its size."""
    ck = checkpoints.load_checkpoint(consistent_checkpoint(tmp_path / "small.npz", H=7, V=5))
    assert ck["params"]["Whh"].shape == (7, 7) and ck["hidden"].shape == (7, 1) and len(ck["chars"]) == 5


def assert_too_big(line: str, H: int) -> None:
    found = re.search(rf"would take ([\d,]+) bytes of memory \(H {H:,}, V 65, B 1\), over the limit of ([\d,]+)",
                      line)
    assert found and found[2] == f"{checkpoints.CHECKPOINT_MAX_BYTES:,}", line
    assert int(found[1].replace(",", "")) > 2 * 8 * H**2, f"Whh and its Adagrad memory alone take more: {line}"


@pytest.fixture(scope="module")
def huge_checkpoint(tmp_path_factory):
    """The consistent checkpoint at H = 11,000: about 2 MB on disk, 1.96 GB of arrays."""
    path = consistent_checkpoint(tmp_path_factory.mktemp("huge") / "huge.npz", H=11_000)
    assert path.stat().st_size < 4 << 20, "the checkpoint should be small on disk"
    return path


@needs_linux
def test_a_checkpoint_huge_in_memory_is_refused_before_anything_is_allocated(huge_checkpoint):
    out = run_bounded("try:\n"
                      "    checkpoints.load_checkpoint(sys.argv[1])\n"
                      "except checkpoints.CheckpointError as e:\n"
                      "    print(e)\n"
                      "checkpoints.load_checkpoint(sys.argv[1], max_bytes=4 << 30)\n", huge_checkpoint)
    lines = out.stdout.splitlines()
    assert len(lines) == 1 and str(huge_checkpoint) in lines[0], (out.stdout, out.stderr[-2000:])
    assert_too_big(lines[0], 11_000)
    # the control: allowed 4 GiB, the same load does try to allocate, and the limit stops it
    assert out.returncode != 0 and "MemoryError" in out.stderr, "the memory limit did not bind"


@needs_linux
def test_sampling_from_a_checkpoint_huge_in_memory_is_one_line(huge_checkpoint):
    out = run_bounded("sys.exit(train_minimal.main(['--sample-only', '--checkpoint', sys.argv[1], "
                      "'--length', '5']))\n", huge_checkpoint, imports="train_minimal")
    assert out.returncode == 2, f"exit {out.returncode}; stderr: {out.stderr[-2000:]}"
    errors = out.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("error: "), out.stderr[-2000:]
    assert_too_big(errors[0], 11_000)


# ----------------------------------------------------------------------------- memory bombs

def bomb_checkpoint(base, path, size=1 << 30) -> Path:
    """The valid checkpoint plus a junk member of `size` zero bytes, deflated to ~1/1000."""
    data = deflate_bomb(b"", size)
    path.write_bytes(zip_bytes([{"name": n, "data": d} for n, d in base.members.items()]
                               + [{"name": "junk.npy", "data": data, "method": 8, "size": size,
                                   "crc": 0}]))
    return path


def test_a_junk_member_is_never_opened(base, tmp_path, monkeypatch):
    path = bomb_checkpoint(base, tmp_path / "bomb.npz")
    assert path.stat().st_size < 5 << 20, "the bomb should be small on disk"
    opened = []
    real_open = zipfile.ZipFile.open
    monkeypatch.setattr(zipfile.ZipFile, "open",
                        lambda self, name, *a, **k: opened.append(getattr(name, "filename", name))
                        or real_open(self, name, *a, **k))
    with pytest.raises(checkpoints.CheckpointError, match="junk.npy"):
        checkpoints.load_checkpoint(path)
    assert "junk.npy" not in opened, f"load_checkpoint opened the junk member (opened: {opened})"


def test_deflate_bombs_are_refused_without_inflating(base, tmp_path):
    """Peak memory of a fresh process loading 1 GiB bombs stays far below 1 GiB."""
    junk = bomb_checkpoint(base, tmp_path / "junk.npz")
    header_bomb = tmp_path / "header.npz"
    header_bomb.write_bytes(HOSTILE["params/Wxh: a 1 GiB deflate bomb behind a valid header"](base))
    code = ("import sys, checkpoints\n"
            "for p in sys.argv[1:]:\n"
            "    try:\n"
            "        checkpoints.load_checkpoint(p)\n"
            "    except checkpoints.CheckpointError as e:\n"
            "        print('refused', e)\n"
            "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))\n")
    out = subprocess.run([sys.executable, "-c", code, str(junk), str(header_bomb)], capture_output=True,
                         text=True, cwd=os.path.dirname(rnn.__file__))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("refused") for line in lines[:2]), out.stdout
    peak_mib = int(lines[-1]) / 1024                                # VmHWM, this process's own peak, in kB
    assert peak_mib < 300, f"peak memory {peak_mib:.0f} MiB: a 1 GiB member was inflated"


# ----------------------------------------------------------------------------- the RNG state

def test_rng_from_json_refuses_bad_states_with_checkpoint_error():
    good = checkpoints.rng_state_json(np.random.default_rng(1))
    assert checkpoints.rng_from_json(good).random() == np.random.default_rng(1).random()
    for bad in ("", "[]", "null", '{"bit_generator": "PCG64"}', json.dumps({**PCG, "state": None}),
                json.dumps({**MT, "state": {"key": [1] * 624, "pos": 625}}), "[" * 100_000):
        with pytest.raises(checkpoints.CheckpointError) as info:
            checkpoints.rng_from_json(bad)
        assert "\n" not in str(info.value)


# ----------------------------------------------------------------------------- saving

def test_save_refuses_a_state_that_would_not_load_and_keeps_the_old_file(tmp_path):
    path, tr = save(tmp_path / "ck.npz")
    before = path.read_bytes()
    params, opt = tr.checkpoint_arrays()
    with pytest.raises(ValueError, match=r"save_checkpoint: .*meta has no 'step'.*was left as it was"):
        checkpoints.save_checkpoint(path, params, opt, CHARS, tr.h, {"epoch": 0})
    bad = {k: v.copy() for k, v in params.items()}
    bad["Whh"][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"params/Whh holds NaN or inf"):
        checkpoints.save_checkpoint(path, bad, opt, CHARS, tr.h, tr.state())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"], "no temporary file may be left"


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path, tr = save(tmp_path / "ck.npz")
    before = path.read_bytes()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        checkpoints.save_checkpoint(path, *tr.checkpoint_arrays(), CHARS, tr.h, tr.state())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]


def test_adam_step_must_be_a_count(tmp_path):
    path, _ = save(tmp_path / "adam.npz", "adam")
    base = Base(path)
    for scalars, pattern in (({"step": -1}, r"meta\.opt_scalars: step must be an integer in \[0, 10\*\*12\), got -1"),
                             ({"step": 2**63}, r"meta\.opt_scalars: step must be an integer in \[0, 10\*\*12\)"),
                             ({"step": "3"}, r"step must be an integer in \[0, 10\*\*12\), got '3'"),
                             ({}, r"meta\.opt_scalars has keys \[\], adam keeps \['step'\]")):
        (tmp_path / "h.npz").write_bytes(base.with_meta(lambda m: m.update(opt_scalars=scalars)))
        with pytest.raises(checkpoints.CheckpointError, match=pattern):
            checkpoints.load_checkpoint(tmp_path / "h.npz")


# The steps of save_checkpoint, in order: (module, function) to interrupt.
SAVE_STAGES = {"write": (np, "savez"), "fsync": (os, "fsync"), "read back": (checkpoints, "_read_checkpoint"),
               "chmod": (os, "chmod"), "rename": (os, "replace")}


@pytest.mark.parametrize("stage", list(SAVE_STAGES))
def test_a_save_interrupted_at_any_stage_keeps_the_previous_checkpoint(tmp_path, monkeypatch, stage):
    path, tr = save(tmp_path / "ck.npz")
    before = path.read_bytes()

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(*SAVE_STAGES[stage], interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_checkpoint(path, *tr.checkpoint_arrays(), CHARS, tr.h, {**tr.state(), "step": 99})
    monkeypatch.undo()
    assert path.read_bytes() == before and checkpoints.load_checkpoint(path)["meta"]["step"] == tr.step_count
    assert [p.name for p in tmp_path.iterdir()] == ["ck.npz"]


def test_save_never_writes_the_checkpoint_in_place(tmp_path, monkeypatch):
    """The only change to the file at `path` is one atomic rename of a finished
    temporary file over it, so a SIGKILL at any moment leaves the old or the new file."""
    path, tr = save(tmp_path / "ck.npz")
    writes, renames = [], []
    real_open, real_os_open, real_replace = open, os.open, os.replace

    def spy_open(file, mode="r", *a, **k):
        if any(c in mode for c in "wax+"):
            writes.append(os.fspath(file) if isinstance(file, (str, os.PathLike)) else file)
        return real_open(file, mode, *a, **k)

    def spy_os_open(file, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR):
            writes.append(os.fspath(file))
        return real_os_open(file, flags, *a, **k)
    monkeypatch.setattr("builtins.open", spy_open)
    monkeypatch.setattr(os, "open", spy_os_open)
    monkeypatch.setattr(os, "replace", lambda src, dst: renames.append((str(src), str(dst))) or real_replace(src, dst))
    checkpoints.save_checkpoint(path, *tr.checkpoint_arrays(), CHARS, tr.h, tr.state())
    monkeypatch.undo()
    assert str(path) not in writes, f"save_checkpoint opened {path} for writing"
    assert len(renames) == 1 and renames[0][1] == str(path)
    assert Path(renames[0][0]).parent == path.parent, "the temporary file must be in the same folder"


# ----------------------------------------------------------------------------- read_text

def test_read_text_refuses_a_file_over_the_limit(tmp_path):
    f = tmp_path / "big.txt"
    f.write_text("abcdefghij\n", encoding="utf-8")                    # 11 bytes
    assert safeio.read_text(f, max_bytes=11) == "abcdefghij\n"
    with pytest.raises(ValueError, match=r"read_text: .*big\.txt is 11 bytes, over the limit of 10 bytes; "
                                         r".*max_bytes"):
        safeio.read_text(f, max_bytes=10)
    huge = tmp_path / "huge.txt"                                     # sparse: no disk space used
    with open(huge, "wb") as fh:
        fh.truncate(safeio.TEXT_MAX_BYTES + 1)
    with pytest.raises(ValueError, match=f"is {safeio.TEXT_MAX_BYTES + 1:,} bytes, over the limit of "
                                         f"{safeio.TEXT_MAX_BYTES:,} bytes"):
        safeio.read_text(huge)


def test_read_text_default_limit_is_far_above_the_corpora(shakespeare_path):
    assert safeio.TEXT_MAX_BYTES >= 10 * 3_300_000                      # War and Peace is ~3.2 MB
    assert len(safeio.read_text(shakespeare_path)) > 1_000_000


def test_read_text_refuses_folders_and_devices(tmp_path):
    with pytest.raises(ValueError, match=r"read_text: .* is a folder"):
        safeio.read_text(tmp_path)
    if os.path.exists("/dev/zero"):
        with pytest.raises(ValueError, match=r"read_text: /dev/zero is a device"):
            safeio.read_text("/dev/zero")
    with pytest.raises(FileNotFoundError):
        safeio.read_text(tmp_path / "missing.txt")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_read_text_and_load_checkpoint_refuse_a_fifo_without_blocking(tmp_path):
    """Run in a child process: if the FIFO were opened for reading the child would wait
    for a writer forever; the timeout only stops a hung test, it measures nothing."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code = ("import sys, checkpoints, safeio\n"
            "for f in (safeio.read_text, checkpoints.load_checkpoint):\n"
            "    try:\n"
            "        f(sys.argv[1])\n"
            "    except ValueError as e:\n"
            "        print(e)\n")
    out = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True,
                         cwd=os.path.dirname(rnn.__file__), timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2 and all("is a named pipe (FIFO)" in line for line in lines), out.stdout
    assert lines[0].startswith("read_text:") and lines[1].startswith("load_checkpoint:")


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="Unix sockets need POSIX")
def test_read_text_refuses_a_socket():
    folder = tempfile.mkdtemp(prefix="s")                             # short: socket paths are limited
    path = os.path.join(folder, "s")
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(path)
        with pytest.raises(ValueError, match=r"read_text: .* is a socket"):
            safeio.read_text(path)
        with pytest.raises(checkpoints.CheckpointError, match=r"is a socket"):
            checkpoints.load_checkpoint(path)
    finally:
        s.close()
        os.unlink(path)
        os.rmdir(folder)


def test_restore_refuses_a_window_outside_the_epoch(tmp_path):
    """A checkpoint whose window lies past the end of this run's epoch is refused before anything changes."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 5, size=300)
    params = rnn.init_params(5, 4, rng)
    tr = rnn.Trainer({k: v.copy() for k, v in params.items()}, data, 1, 8, 0.1)
    tr.step()
    path = checkpoints.save_checkpoint(tmp_path / "c.npz", params, tr.opt_state, list("abcde"), tr.h,
                               {**tr.state(), "window": len(tr.streams)}, None)
    fresh = rnn.Trainer({k: v.copy() for k, v in params.items()}, data, 1, 8, 0.1)
    before = {k: v.copy() for k, v in fresh.params.items()}
    with pytest.raises(ValueError, match="window"):
        fresh.restore(checkpoints.load_checkpoint(path))
    assert all(np.array_equal(before[k], fresh.params[k]) for k in before), "restore changed the weights before refusing"


# ----------------------------------------------------------------------------- a long prime

def prime_model(H=16):
    text = (FIXTURES / "v1_text.txt").read_text(encoding="utf-8")
    chars = rnn.build_vocab(text)
    return text, chars, rnn.init_params(len(chars), H, np.random.default_rng(4), init_scale=0.5)


def test_sample_text_primes_chunk_by_chunk_to_the_same_state_bit_for_bit(monkeypatch):
    """The state sample() starts from equals the last column of one forward pass over
    prime[:-1], exactly, for any chunk size and prime length (chunk edges included)."""
    text, chars, params = prime_model()
    starts, real_sample = [], rnn.sample
    monkeypatch.setattr(rnn, "sample", lambda p, h, ix, *a: starts.append((h.copy(), ix)) or real_sample(p, h, ix, *a))
    for n in (1, 2, 6, 7, 8, 100, len(text)):
        prime = text[:n]
        ids = rnn.encode(prime, chars)
        hs, _ = rnn.forward(params, ids[:-1], np.zeros((16, 1)))            # (n,16,1) one pass
        for chunk in (1, 3, 6, 7, 1024):
            starts.clear()
            a = rnn.sample_text(params, chars, prime, 20, 0.8, np.random.default_rng(5), chunk=chunk)
            (h, ix), = starts
            assert ix == ids[-1] and h.shape == (16, 1), f"prime of {n}, chunk {chunk}"
            assert np.array_equal(h, hs[-1]), f"prime of {n} chars in chunks of {chunk}: another state"
            assert a == rnn.sample_text(params, chars, prime, 20, 0.8, np.random.default_rng(5))
    with pytest.raises(ValueError, match=r"sample_text: prime\[6:\]: .*'Z' \(first at position 2\)"):
        rnn.sample_text(params, chars, text[:8] + "Z", 5, chunk=6)


@needs_linux
def test_sample_text_primes_on_a_megabyte_in_flat_memory():
    """A 1 MiB prime in a child allowed 100 MiB more than its imports take. One forward
    pass over all of it peaks near 1 GB (its (T,V) log-probabilities alone take 277 MB)."""
    code = ("text = open(sys.argv[1], encoding='utf-8').read()\n"
            "chars = implementation.build_vocab(text)\n"
            "params = implementation.init_params(len(chars), 16, numpy.random.default_rng(4), init_scale=0.5)\n"
            "prime = (text * (2**20 // len(text) + 1))[: 2**20]\n"
            "print(len(implementation.sample_text(params, chars, prime, 50, 1.0, numpy.random.default_rng(0))))\n")
    out = run_bounded(code, FIXTURES / "v1_text.txt", extra_mib=100)
    assert out.returncode == 0, f"priming on 1 MiB failed in bounded memory: {out.stderr[-2000:]}"
    assert out.stdout.split() == ["50"]


# ----------------------------------------------------------------------------- checkpoints of earlier code


def fixture_run(kind: str):
    """(text, chars, step-15 checkpoint, step-50 checkpoint) of tests/fixtures/README.md's run `kind`."""
    text = (FIXTURES / "v1_text.txt").read_text(encoding="utf-8")
    chars = rnn.build_vocab(text)
    return (text, chars, *(checkpoints.load_checkpoint(FIXTURES / f"v1_{kind}_step{n}.npz", expected_chars=chars)
                           for n in (15, 50)))


def assert_same_state(got: dict, want: dict, label: str) -> None:
    """Two load_checkpoint dicts (or a Trainer's arrays in that shape) hold identical arrays."""
    for k in rnn.PARAM_NAMES:
        assert got["params"][k].dtype == want["params"][k].dtype
        np.testing.assert_array_equal(got["params"][k], want["params"][k], err_msg=f"{label}: params[{k!r}]")
    assert set(got["opt_state"]) == set(want["opt_state"]), label
    for slot, value in want["opt_state"].items():
        if isinstance(value, dict):
            for k in rnn.PARAM_NAMES:
                np.testing.assert_array_equal(got["opt_state"][slot][k], value[k], err_msg=f"{label}: {slot}/{k}")
        else:
            assert got["opt_state"][slot] == value, f"{label}: opt_state[{slot!r}]"
    np.testing.assert_array_equal(got["hidden"], want["hidden"], err_msg=f"{label}: hidden")


@pytest.mark.parametrize("kind,optimizer,ema,dtype", [("adagrad", "adagrad", 0.0, np.float64),
                                                      ("adam_ema", "adam", 0.998, np.float32)])
def test_checkpoints_of_format_1_load(kind, optimizer, ema, dtype):
    text, chars, start, end = fixture_run(kind)
    assert len(chars) == 33 and chars == sorted(set(text))
    for ck, step in ((start, 15), (end, 50)):
        assert ck["meta"]["version"] == 1 and ck["meta"]["step"] == step
        c = ck["meta"]["config"]
        assert (c["optimizer"], c["ema"], c["hidden_size"], c["dtype"]) == (optimizer, ema, 8, dtype.__name__)
        assert ck["params"]["Wxh"].shape == (8, 33) and ck["params"]["Whh"].dtype == dtype
        assert ck["hidden"].shape == (8, c["batch_size"]) and ck["rng"] is not None
        assert ("weights" in ck["opt_state"]) == bool(ema)


@pytest.mark.parametrize("kind", ["adagrad", "adam_ema"])
def test_checkpoints_of_format_1_resume_to_the_same_numbers(kind):
    """Step 15 of the earlier code, resumed here by Trainer for 35 steps, is its step 50 exactly."""
    text, chars, start, end = fixture_run(kind)
    c = start["meta"]["config"]
    train_ids, _ = rnn.train_val_split(rnn.encode(text, chars), c["val_fraction"])
    params = {k: np.zeros_like(v) for k, v in start["params"].items()}
    tr = rnn.Trainer(params, train_ids, c["batch_size"], c["seq_length"], c["learning_rate"], c["optimizer"],
                     c["clip"], random_offsets=c["random_offsets"], seed=c["seed"], ema=c["ema"]).restore(start)
    while tr.step_count < end["meta"]["step"]:
        tr.step()
    params, opt_state = tr.checkpoint_arrays()
    assert_same_state({"params": params, "opt_state": opt_state, "hidden": tr.h}, end, kind)
    assert tr.state() == {k: end["meta"][k] for k in ("step", "epoch", "window", "smooth_loss")}


@pytest.mark.parametrize("kind", ["adagrad", "adam_ema"])
def test_train_minimal_resumes_a_checkpoint_of_format_1(tmp_path, kind):
    """The training script resumes step 15 to step 50 and writes what the earlier code wrote."""
    import train_minimal
    _, _, _, end = fixture_run(kind)
    (tmp_path / "run").mkdir()
    resume = tmp_path / "run" / "last.npz"
    resume.write_bytes((FIXTURES / f"v1_{kind}_step15.npz").read_bytes())
    status = train_minimal.main(["--resume", resume, "--data", FIXTURES / "v1_text.txt", "--max-steps", 50,
                                 "--quiet"])
    assert status == 0
    got = checkpoints.load_checkpoint(resume)
    assert_same_state(got, end, kind)
    assert {k: got["meta"][k] for k in ("step", "epoch", "window", "smooth_loss", "best_step")} == \
           {k: end["meta"][k] for k in ("step", "epoch", "window", "smooth_loss", "best_step")}
