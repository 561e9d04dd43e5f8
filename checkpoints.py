"""Checkpoints: save and load everything a true resume needs, trusting nothing read back.

Used by the training script, the plots, the notebook and the exercises; the
model itself (implementation.py) knows nothing of files.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from implementation import PARAM_NAMES
from safeio import open_regular_file, write_atomically
from settings import config_schema, is_int as _is_int, is_number as _is_number

# A checkpoint is a .npz file: a zip archive of .npy arrays, never a pickle.
#
#     params/<name>       the model, <name> in PARAM_NAMES          (H,V) (H,H) (V,H) (H,1) (V,1)
#     opt/<slot>/<name>   optimiser state shaped like params/<name>: Adagrad's "memory",
#                         Adam's "m" and "v"; and "weights", the training weights, when
#                         the model saved is their running average (Trainer's ema)
#     hidden              the hidden state carried into the next window      (H,B)
#     vocab               the vocabulary as sorted Unicode code points       (V,)
#     meta                JSON text: counters, settings, the RNG state (META_SCHEMA)
#
# A checkpoint may come from anyone, so load_checkpoint trusts nothing in it. It
# opens only the members above; reads each .npy header before its data and checks
# its shape and dtype against H and V (from params/Wxh's header) and the memory
# the arrays would take against a budget (a few MB on disk can declare GBs: zeros
# deflate 1000 to 1); validates meta against the schema below, every count in a
# stated range; and only then reads the arrays and checks their values. Every
# problem is one line of CheckpointError. No pickle is ever loaded, and no name
# read from the file is ever looked up to be called.

CHECKPOINT_FORMAT = "numpy-char-rnn-checkpoint"
CHECKPOINT_VERSION = 1
CHECKPOINT_MAX_DIM = 100_000            # largest H, V or B a checkpoint may declare
# load_checkpoint's default memory budget: all the arrays together, once read, from
# their headers (the fast preset's take 3 MB; H=1024 with Adam and ema in float64,
# 38 MB; the budget admits H up to ~8,000 with Adagrad in float32).
CHECKPOINT_MAX_BYTES = 512 << 20
META_MAX_CHARS = 1 << 20                # the JSON text in meta
META_MAX_COUNT = 10**12                 # every count in meta (steps, epochs, windows) is below this
META_MAX_SECONDS = 1e9                  # elapsed and train_seconds (about 32 years)

# The arrays each optimiser keeps per parameter (opt/<slot>/<name>) and its scalars (in meta).
OPTIMIZER_SLOTS = {"adagrad": ("memory",), "adam": ("m", "v")}
OPTIMIZER_SCALARS = {"adagrad": (), "adam": ("step",)}
AVERAGE_SLOT = "weights"                # the training weights when params holds their average
CHECKPOINT_MEMBERS = frozenset(
    ["meta", "vocab", "hidden"] + [f"params/{k}" for k in PARAM_NAMES]
    + [f"opt/{slot}/{k}" for slots in OPTIMIZER_SLOTS.values() for slot in (*slots, AVERAGE_SLOT)
       for k in PARAM_NAMES])


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (missing, corrupted, wrong kind, other vocabulary).

    The message is always a single line.
    """

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))


def _show(value, width: int = 60) -> str:
    """A value from a file, for an error message: its repr, cut short."""
    r = repr(value)
    return r if len(r) <= width else r[: width - 3] + "..."


# --- The RNG state -----------------------------------------------------------

# The bit generators a checkpoint may name. A name read from a file is only ever a
# key into this dict: looking it up in np.random would let the file call
# np.random.seed or any other function there.
BIT_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM,
                  "MT19937": np.random.MT19937, "Philox": np.random.Philox, "SFC64": np.random.SFC64}
# Upper bounds (exclusive) of the integers in their states. NumPy does not check them
# all: an MT19937 "pos" past 624 crashes the interpreter.
_RNG_INT_LIMITS = {"state": 1 << 128, "inc": 1 << 128, "pos": 625, "buffer_pos": 5,
                   "has_uint32": 2, "uinteger": 1 << 32}


def rng_state_json(rng: np.random.Generator) -> str:
    """A Generator's state as JSON (big integers survive JSON exactly; arrays become lists)."""
    return json.dumps(rng.bit_generator.state, default=lambda a: a.tolist())


def _check_rng_state(state, like: dict, where: str) -> None:
    """Raise CheckpointError unless `state` is built like `like`, a fresh generator's state:
    the same keys, lists of the same length where it has arrays, integers in range."""
    if not isinstance(state, dict) or set(state) != set(like):
        raise CheckpointError(f"{where} must be an object with the keys {sorted(like)}, got {_show(state)}")
    for key, want in like.items():
        v, at = state[key], f"{where}.{key}"
        if isinstance(want, dict):
            _check_rng_state(v, want, at)
        elif isinstance(want, np.ndarray):
            bits = 8 * want.dtype.itemsize
            if not (isinstance(v, list) and len(v) == want.size
                    and all(_is_int(x) and 0 <= x < 1 << bits for x in v)):
                raise CheckpointError(f"{at} must be a list of {want.size} integers in [0, 2**{bits}), "
                                      f"got {_show(v)}")
        elif isinstance(want, str):
            if v != want:
                raise CheckpointError(f"{at} must be {want!r}, got {_show(v)}")
        else:
            top = _RNG_INT_LIMITS.get(key, 1 << 64)
            if not (_is_int(v) and 0 <= v < top):
                shown = f"2**{top.bit_length() - 1}" if top > 1 << 32 else str(top)
                raise CheckpointError(f"{at} must be an integer in [0, {shown}), got {_show(v)}")


def rng_from_json(s: str) -> np.random.Generator:
    """The Generator whose state rng_state_json wrote.

    Accepts only the bit generators in BIT_GENERATORS, with a state built like a
    fresh one's; anything else raises CheckpointError.
    """
    try:
        state = json.loads(s)
    except (TypeError, ValueError, RecursionError):
        raise CheckpointError("rng_from_json: the RNG state is not valid JSON") from None
    name = state.get("bit_generator") if isinstance(state, dict) else None
    if not isinstance(name, str) or name not in BIT_GENERATORS:
        raise CheckpointError(f"rng_from_json: bit_generator must be one of {', '.join(BIT_GENERATORS)}, "
                              f"got {_show(name)}")
    bitgen = BIT_GENERATORS[name](0)
    _check_rng_state(state, bitgen.state, "rng_state")
    try:
        bitgen.state = state
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as e:
        raise CheckpointError(f"rng_from_json: NumPy refused the {name} state ({e})") from None
    return np.random.Generator(bitgen)


# --- The schema of meta ------------------------------------------------------

# Each check is (test, what the value must be); the error message quotes the second.
_STEPS = (lambda v: _is_int(v) and 0 <= v < META_MAX_COUNT, "an integer in [0, 10**12)")
_SECONDS = (lambda v: _is_number(v) and 0 <= v < META_MAX_SECONDS, "a number of seconds in [0, 1e9)")
_NUMBER = (_is_number, "a finite number")
_TEXT = (lambda v: isinstance(v, str), "a string")
_OBJECT = (lambda v: isinstance(v, dict), "a JSON object")


def _one_of(*choices):
    return (lambda v: any(type(v) is type(c) and v == c for c in choices),
            " or ".join(repr(c) for c in choices))


def _or_none(check):
    return (lambda v: v is None or check[0](v), check[1] + " or null")


# meta: what save_checkpoint adds, and the counters of Trainer.state(), all required;
# train_minimal.py's bookkeeping and settings ("config"), checked when present.
META_REQUIRED = ("format", "version", "step", "epoch", "window", "smooth_loss", "opt_scalars", "rng_state")
META_SCHEMA = {
    "format": _one_of(CHECKPOINT_FORMAT), "version": _one_of(CHECKPOINT_VERSION),
    "step": _STEPS, "epoch": _STEPS, "window": _STEPS, "smooth_loss": _NUMBER,
    "opt_scalars": _OBJECT, "rng_state": _or_none(_TEXT), "config": _OBJECT,
    "best_val_loss": _or_none(_NUMBER), "best_step": _or_none(_STEPS), "evals_since_best": _STEPS,
    "elapsed": _SECONDS, "train_seconds": _SECONDS,
}
# config: the run's settings and the data sizes train_minimal.py logs, each checked as
# settings.py declares it, and the preset's name; each checked when present
# (train_minimal.py writes them all); other keys are ignored.
CONFIG_SCHEMA = {**config_schema(), "preset": _TEXT}


def _check_fields(d, schema: dict, required, where: str) -> None:
    """Raise CheckpointError for the first required key missing from d or value that fails its check."""
    if not isinstance(d, dict):
        raise CheckpointError(f"{where} must be a JSON object, got {_show(d)}")
    for key in required:
        if key not in d:
            raise CheckpointError(f"{where} has no {key!r}")
    for key, (ok, what) in schema.items():
        if key in d and not ok(d[key]):
            raise CheckpointError(f"{where}: {key} must be {what}, got {_show(d[key])}")


def _check_meta(meta) -> None:
    _check_fields(meta, META_SCHEMA, META_REQUIRED, "meta")
    if "config" in meta:
        _check_fields(meta["config"], CONFIG_SCHEMA, (), "meta.config")


# --- Writing -----------------------------------------------------------------

def _flatten_opt(opt_state: dict) -> tuple[dict, dict]:
    """Optimiser state -> ({"opt/<slot>/<name>": array}, {scalar fields})."""
    arrays, scalars = {}, {}
    for slot, v in opt_state.items():
        if isinstance(v, dict):
            for k, a in v.items():
                arrays[f"opt/{slot}/{k}"] = a
        else:
            scalars[slot] = v
    return arrays, scalars


def save_checkpoint(path, params: dict, opt_state: dict, chars, hidden: np.ndarray,
                    meta: dict, rng: np.random.Generator | None = None) -> Path:
    """Save everything a true resume needs to a .npz file, atomically.

    Arrays: params/<name>, opt/<slot>/<name>, hidden, vocab (code points).
    meta (JSON, stored as a string): step, epoch, window, smooth_loss (Trainer.state()),
    hyperparameters and anything else the caller puts in, plus the RNG state.
    No pickles: the file loads with np.load(path, allow_pickle=False).
    Written to a temporary file in the same folder, checked by reading it back as
    load_checkpoint does, then renamed over `path`: a crash, a full disk or a
    state that could not be loaded (ValueError) leaves the previous checkpoint intact.
    """
    path = Path(path)
    opt_arrays, opt_scalars = _flatten_opt(opt_state)
    meta = dict(meta)
    meta.update(format=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION, opt_scalars=opt_scalars,
                rng_state=rng_state_json(rng) if rng is not None else None)
    arrays = {f"params/{k}": v for k, v in params.items()}
    arrays.update(opt_arrays)
    arrays["hidden"] = np.asarray(hidden)
    arrays["vocab"] = np.array([ord(c) for c in chars], dtype=np.int64)
    arrays["meta"] = np.array(json.dumps(meta))                       # a 0-d unicode array, not a pickle
    path.parent.mkdir(parents=True, exist_ok=True)

    def load_back(f):                                                  # what load_checkpoint will see
        try:
            _read_checkpoint(f, os.fstat(f.fileno()).st_size, CHECKPOINT_MAX_BYTES)
        except CheckpointError as e:
            raise ValueError(f"save_checkpoint: this state would not load back ({e}); "
                             f"{path} was left as it was") from None

    return write_atomically(path, lambda f: np.savez(f, **arrays), check=load_back)


# --- Reading -----------------------------------------------------------------

_NPY_HEADER_MAX = 10_000                # NumPy's own limit on a .npy header, in characters
_ZIP_INDEX_MAX = 1 << 16                # a checkpoint's zip index (central directory) takes ~2 KB


def _check_zip_index(f, size: int) -> None:
    """Refuse a file that is not a zip archive, or whose index is bigger than a
    checkpoint's could be, before zipfile reads the whole index into memory.

    The index's size is in the end record, the last 22 bytes of the archive
    (followed by a comment of up to 64 KiB); a zip64 archive (> 4 GiB) has a
    locator just before it.
    """
    tail_len = min(size, 20 + 22 + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    i = tail.rfind(b"PK\x05\x06")                                     # the end-of-archive record
    if i < 0 or len(tail) - i < 22:
        raise CheckpointError("not a .npz checkpoint (not a zip archive; truncated or another kind of file)")
    if tail[max(i - 20, 0) : i].startswith(b"PK\x06\x07"):
        raise CheckpointError("a zip64 archive (for files over 4 GiB); a checkpoint is far smaller")
    index_size = struct.unpack("<I", tail[i + 12 : i + 16])[0]
    if index_size > _ZIP_INDEX_MAX:
        raise CheckpointError(f"the zip index takes {index_size:,} bytes; a checkpoint's takes a few thousand")


def _checked_members(zf: zipfile.ZipFile) -> dict:
    """{member name without .npy: ZipInfo}, refusing names outside the format,
    repeated names, encryption, and compression other than np.savez's."""
    infos = {}
    if "meta.npy" not in zf.namelist():
        raise CheckpointError("a zip archive, but not a char-rnn checkpoint (no meta)")
    for info in zf.infolist():
        name = info.filename.removesuffix(".npy")
        if not info.filename.endswith(".npy") or name not in CHECKPOINT_MEMBERS:
            raise CheckpointError(f"member {_show(info.filename)} is not part of the checkpoint format")
        if name in infos:
            raise CheckpointError(f"member {info.filename} appears twice")
        if info.flag_bits & 0x1:
            raise CheckpointError(f"member {info.filename} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(f"member {info.filename} uses compression method {info.compress_type}; "
                                  "a checkpoint is stored or deflated")
        infos[name] = info
    missing = [n for n in ("vocab", "hidden", *(f"params/{k}" for k in PARAM_NAMES)) if n not in infos]
    if missing:
        raise CheckpointError(f"missing member(s) {', '.join(missing)}")
    return infos


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple:
    """(shape, dtype, header length) of a .npy member, from its first bytes alone."""
    with zf.open(info) as member:
        head = io.BytesIO(member.read(min(info.file_size, 12 + _NPY_HEADER_MAX)))
    try:
        version = np.lib.format.read_magic(head)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(head, _NPY_HEADER_MAX)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(head, _NPY_HEADER_MAX)
        else:
            raise ValueError(f".npy format version {version} (a checkpoint uses 1.0 or 2.0)")
    except ValueError as e:
        raise CheckpointError(f"{info.filename}: not a valid .npy header ({e})") from None
    return shape, dtype, head.tell()


# The dtypes a member may have: (test, description).
_FLOAT = (lambda d: d.kind == "f" and d.itemsize in (4, 8), "float32 or float64")
_INTEGER = (lambda d: d.kind in "iu" and d.itemsize <= 8, "an integer type")
_UNICODE = (lambda d: d.kind == "U" and d.itemsize <= 4 * META_MAX_CHARS,
            f"a unicode string of at most {META_MAX_CHARS:,} characters")


def _check_layout(headers: dict, infos: dict, max_bytes: int) -> tuple[int, int, int]:
    """Check every member's declared dtype, shape and size, and that all the arrays
    together would take at most max_bytes of memory, before reading any data.

    H and V come from params/Wxh's header (H,V), B from hidden's (H,B); every
    other shape follows from them. Returns (H, V, B).
    """
    wxh, hidden = headers["params/Wxh"][0], headers["hidden"][0]
    if len(wxh) != 2 or not all(1 <= n <= CHECKPOINT_MAX_DIM for n in wxh):
        raise CheckpointError(f"params/Wxh has shape {_show(wxh)}: expected (H, V) with 1 <= H, V <= "
                              f"{CHECKPOINT_MAX_DIM:,}")
    H, V = wxh
    if len(hidden) != 2 or hidden[0] != H or not 1 <= hidden[1] <= CHECKPOINT_MAX_DIM:
        raise CheckpointError(f"hidden has shape {_show(hidden)}: expected (H, B) = ({H}, B) with "
                              f"1 <= B <= {CHECKPOINT_MAX_DIM:,}")
    B = hidden[1]
    shapes = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H, 1), "by": (V, 1)}
    expected = {"meta": ((), _UNICODE), "vocab": ((V,), _INTEGER), "hidden": ((H, B), _FLOAT)}
    for name in headers:
        if name.startswith(("params/", "opt/")):
            expected[name] = (shapes[name.rsplit("/", 1)[1]], _FLOAT)
    total = 0
    for name, (shape, dtype, header_len) in headers.items():
        want_shape, (dtype_ok, dtype_what) = expected[name]
        if dtype.fields is not None or dtype.subdtype is not None or not dtype_ok(dtype):
            raise CheckpointError(f"{name} has dtype {_show(str(dtype))}, expected {dtype_what}")
        if shape != want_shape:
            raise CheckpointError(f"{name} has shape {_show(shape)}, expected {want_shape}")
        nbytes = math.prod(shape) * dtype.itemsize
        if infos[name].file_size != header_len + nbytes:
            raise CheckpointError(f"{name}: the archive says {infos[name].file_size:,} bytes, its header "
                                  f"implies {header_len + nbytes:,}")
        total += nbytes
    if total > max_bytes:
        raise CheckpointError(f"its arrays would take {total:,} bytes of memory (H {H:,}, V {V:,}, B {B:,}), "
                              f"over the limit of {max_bytes:,} (load_checkpoint's max_bytes)")
    return H, V, B


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One member's array (its size already checked); the zip's CRC check runs at its end."""
    with zf.open(info) as member:
        a = np.lib.format.read_array(member, allow_pickle=False, max_header_size=_NPY_HEADER_MAX)
        member.read(1)                                                 # reach the end: CRC check
    return a


def _check_optimizer(meta: dict, infos: dict) -> tuple[str, bool]:
    """(optimiser name, whether the weights slot is there), from the members and meta."""
    slots = {name.split("/")[1] for name in infos if name.startswith("opt/")}
    averaged = AVERAGE_SLOT in slots
    found = [name for name, s in OPTIMIZER_SLOTS.items() if set(s) == slots - {AVERAGE_SLOT}]
    if not found:
        raise CheckpointError(f"optimiser state must be Adagrad's opt/memory/<name> or Adam's opt/m/<name> "
                              f"and opt/v/<name>, found slots {sorted(slots)}")
    optimizer = found[0]
    for slot in OPTIMIZER_SLOTS[optimizer] + ((AVERAGE_SLOT,) if averaged else ()):
        missing = [k for k in PARAM_NAMES if f"opt/{slot}/{k}" not in infos]
        if missing:
            raise CheckpointError(f"opt/{slot} has no {', '.join(missing)}")
    scalars, want = meta["opt_scalars"], OPTIMIZER_SCALARS[optimizer]
    if set(scalars) != set(want):
        raise CheckpointError(f"meta.opt_scalars has keys {_show(sorted(scalars))}, {optimizer} keeps {list(want)}")
    _check_fields(scalars, {k: _STEPS for k in want}, (), "meta.opt_scalars")       # Adam's step
    return optimizer, averaged


def _check_config_matches(config: dict, H: int, V: int, B: int, dtype, optimizer: str, averaged: bool) -> None:
    """The settings in meta.config must describe the arrays saved with them."""
    facts = {"hidden_size": H, "vocab_size": V, "batch_size": B, "dtype": dtype.name, "optimizer": optimizer}
    for key, value in facts.items():
        if key in config and config[key] != value:
            raise CheckpointError(f"meta.config says {key} {_show(config[key])}, the arrays say {value}")
    if "ema" in config and (config["ema"] > 0) != averaged:
        raise CheckpointError(f"meta.config says ema {config['ema']}, but the weights slot is "
                              + ("missing" if config["ema"] > 0 else "there"))


def _check_values(arrays: dict) -> None:
    """Finite weights and state, non-negative running sums of squares, a valid vocabulary."""
    for name, a in arrays.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise CheckpointError(f"{name} holds NaN or inf")
        if name.startswith(("opt/memory/", "opt/v/")) and (a < 0).any():
            raise CheckpointError(f"{name} is a running sum of squares but holds negative values")
    cp = arrays["vocab"]
    if cp.dtype.kind == "u":
        cp = np.minimum(cp, 0x110000).astype(np.int64)                 # beyond range either way
    if cp.min() < 0 or cp.max() > 0x10FFFF:
        raise CheckpointError("vocab holds values outside the Unicode range 0..0x10FFFF")
    if ((cp >= 0xD800) & (cp <= 0xDFFF)).any():
        raise CheckpointError("vocab holds UTF-16 surrogates (0xD800..0xDFFF), which are not characters")
    if (np.diff(cp) <= 0).any():
        raise CheckpointError("vocab must be strictly increasing code points (sorted, no repeats)")


def _read_checkpoint(f, size: int, max_bytes: int) -> dict:
    """Everything load_checkpoint returns but the path checks, from an open file.
    Raises CheckpointError (without the path) for anything a checkpoint cannot be."""
    _check_zip_index(f, size)
    with zipfile.ZipFile(f) as zf:
        infos = _checked_members(zf)
        headers = {name: _npy_header(zf, info) for name, info in infos.items()}
        H, V, B = _check_layout(headers, infos, max_bytes)             # before reading any data
        try:
            meta = json.loads(str(_read_member(zf, infos["meta"])))
        except (ValueError, RecursionError):
            raise CheckpointError("checkpoint metadata is not valid JSON") from None
        if not isinstance(meta, dict):
            raise CheckpointError(f"meta must be a JSON object, got {_show(meta)}")
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise CheckpointError(f"not a char-rnn checkpoint (format {_show(meta.get('format'))})")
        _check_meta(meta)
        rng = rng_from_json(meta["rng_state"]) if meta["rng_state"] is not None else None
        optimizer, averaged = _check_optimizer(meta, infos)
        _check_config_matches(meta.get("config", {}), H, V, B, headers["params/Wxh"][1],
                              optimizer, averaged)
        arrays = {name: _read_member(zf, info) for name, info in infos.items() if name != "meta"}
    _check_values(arrays)
    opt_state = dict(meta["opt_scalars"])
    for name, a in arrays.items():
        if name.startswith("opt/"):
            _, slot, k = name.split("/")
            opt_state.setdefault(slot, {})[k] = a
    return {"params": {k: arrays[f"params/{k}"] for k in PARAM_NAMES}, "opt_state": opt_state,
            "chars": [chr(c) for c in arrays["vocab"].tolist()], "hidden": arrays["hidden"],
            "meta": meta, "rng": rng}


def load_checkpoint(path, expected_chars=None, max_bytes: int | None = None) -> dict:
    """Load a checkpoint written by save_checkpoint, checking everything in it first.

    Returns {"params", "opt_state", "chars", "hidden", "meta", "rng"}.
    Raises CheckpointError with a one-line reason for a missing, truncated,
    corrupted or foreign file, for anything outside the format (see the top of
    this module), for arrays that would take more than max_bytes of memory
    (default CHECKPOINT_MAX_BYTES, 512 MiB; checked from the headers, before
    any array is read), and, if expected_chars is given, for a checkpoint
    trained on another vocabulary.
    """
    path, max_bytes = Path(path), CHECKPOINT_MAX_BYTES if max_bytes is None else int(max_bytes)
    try:
        f, size = open_regular_file(path, "load_checkpoint")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except ValueError as e:                                            # a folder, a FIFO, a device
        raise CheckpointError(str(e)) from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror})") from None
    try:
        with f:
            ck = _read_checkpoint(f, size, max_bytes)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, OverflowError, RuntimeError,
            NotImplementedError, zipfile.BadZipFile, zlib.error, struct.error) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupted file: {e})") from None
    chars = ck["chars"]
    if expected_chars is not None and list(expected_chars) != chars:
        only_data = sorted(set(expected_chars) - set(chars))
        only_ckpt = sorted(set(chars) - set(expected_chars))
        raise CheckpointError(
            f"{path}: checkpoint vocabulary ({len(chars)} chars) does not match the data's "
            f"({len(expected_chars)} chars); only in the data: {''.join(only_data)!r}, "
            f"only in the checkpoint: {''.join(only_ckpt)!r}")
    return ck
