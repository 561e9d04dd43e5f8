"""Speed and quality at a fixed budget: one run, ratios from the same machine.

    python tests/benchmarks/bench_speed.py                 # speed table, ~1 minute
    python tests/benchmarks/bench_speed.py --quick         # a few seconds (smaller sizes, noisier)
    python tests/benchmarks/bench_speed.py --quality       # + the fast preset's train_minimal.py runs

It measures, in this order and in one process, so every ratio compares numbers
taken on the same machine under the same load:

1. the matrix-multiply rate of NumPy's BLAS (float32 and float64), the ceiling
   for everything below;
2. the plain min-char-rnn loop (tests/textbook.py: one-hot inputs, per-step
   arrays, lossFun + clip + Adagrad) at the textbook settings, B=1, H=100,
   T=25, float64, and the project's Trainer at exactly the same settings, data
   and initial weights: chars/s, their ratio (target 1: >= 4x), and a check that
   the losses agree (the first ones to 1e-9);
3. the batched setting H=256, B=64, T=64, float32, Adam: chars/s and model-FLOP
   utilisation against the float32 matmul rate (target 2: >= 50%);
4. with --quality, train_minimal.py with a preset (the fast one by default; it
   ends after a fixed number of steps, so its loss is the same on any machine and
   only its time differs), its wall time, and the child's resident memory sampled
   every second (peak under 1 GB and not growing with steps).

Between 3 and 4 it also times each train_minimal.py preset's own setting (its
size, batch, unroll, dtype, optimiser and whatever regularisation it trains
with) and reports its utilisation the same way.

How FLOPs are counted (the usual "6 N" rule, N = weights touched per character):
a character costs 2(H*H + H*V) multiply-adds-times-two in the forward pass
(Whh h_{t-1} and Why h_t; Wxh x_t is a column lookup, so free) and twice that
in the backward pass (dWhh, Whh^T dhraw, dWhy, Why^T dy), so

    model FLOPs per character = 6 (H*H + H*V).

Work the implementation does beyond that (the one-hot product for dWxh, softmax,
tanh, the optimiser) is not counted: utilisation = model FLOP/s / matmul FLOP/s.

Speed is measured, never asserted: the script prints and saves numbers, it does
not fail when a target is missed. Only the loss-equality check is an assertion,
since it is about correctness. The machine may be busy: the load average is
printed next to the numbers, and only ratios within one run mean much.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]          # tests/benchmarks/bench_speed.py -> repo root
for _p in (REPO, REPO / "tests"):                    # implementation, data.download; textbook
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import implementation as rnn
import safeio                           # noqa: E402
from cli import setup_numpy                          # noqa: E402
from textbook import textbook_loss_fun, textbook_run   # noqa: E402

TEXTBOOK = dict(hidden_size=100, seq_length=25, learning_rate=0.1)   # min-char-rnn's settings
BATCHED = dict(hidden_size=256, batch_size=64, seq_length=64)         # target 2's setting
TARGETS = {"textbook_ratio": 4.0, "utilisation": 0.50, "val_nats": 1.60, "peak_rss_mb": 1024.0}


# -----------------------------------------------------------------------------
# Helpers
# -----------------------------------------------------------------------------

def load_text(data: str | None) -> tuple[str, str]:
    """(text, where it came from): --data if given, else tiny Shakespeare via data.download.

    Without any corpus (no data/ copy, no RNN_DATA_MIRROR, no network) the speed
    sections still run on a synthetic text with tiny Shakespeare's vocabulary size,
    which is all that speed depends on.
    """
    if data:
        return safeio.read_text(data), str(data)
    try:
        from data.download import ensure_corpus
        path = ensure_corpus("tiny_shakespeare", progress=False)
        return safeio.read_text(path), str(path)
    except Exception as exc:                           # DownloadError, no network, ...
        rng = np.random.default_rng(0)
        alphabet = [chr(c) for c in range(32, 32 + 64)] + ["\n"]          # V = 65 like tiny Shakespeare
        text = "".join(rng.choice(alphabet, size=300_000))
        return text, f"synthetic, 300k chars (no corpus: {str(exc).splitlines()[0]})"


def machine_info() -> dict:
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{cfg.get('name')} {cfg.get('version')}"
    except Exception:
        blas = "unknown"
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "blas": blas,
        "threads_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                    "MKL_NUM_THREADS") if k in os.environ},
        "load_before": list(os.getloadavg()),
    }


def timed(fn, min_seconds: float, warmup: int = 1) -> tuple[float, int]:
    """Call fn() repeatedly for at least min_seconds (after warm-up calls); (seconds per call, calls)."""
    for _ in range(warmup):
        fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return dt / n, n


# -----------------------------------------------------------------------------
# 1. Matrix-multiply rate
# -----------------------------------------------------------------------------

def matmul_rate(n: int, dtype, min_seconds: float, repeats: int = 3) -> float:
    """Best FLOP/s of an (n,n) @ (n,n) product written into a preallocated output (2 n^3 FLOPs)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    out = np.empty((n, n), dtype=dtype)
    best = min(timed(lambda: np.matmul(a, b, out=out), min_seconds / repeats)[0] for _ in range(repeats))
    return 2.0 * n ** 3 / best


def recurrent_matmul_rate(H: int, B: int, dtype, min_seconds: float) -> float:
    """FLOP/s of the recurrent step's product Whh @ h, (H,H) @ (H,B): the per-step ceiling."""
    rng = np.random.default_rng(0)
    W, h = rng.standard_normal((H, H)).astype(dtype), rng.standard_normal((H, B)).astype(dtype)
    out = np.empty((H, B), dtype=dtype)

    def fifty():
        for _ in range(50):
            np.dot(W, h, out=out)
    return 50 * 2.0 * H * H * B / timed(fifty, min_seconds)[0]


# -----------------------------------------------------------------------------
# 2. Textbook settings: plain loop vs the project, same data, same weights
# -----------------------------------------------------------------------------

def project_run(p0, data_ids, num_iters, dtype=np.float64):
    """The project's Trainer at the textbook settings (B=1, Adagrad, clip 5): per-sequence losses."""
    params = {k: v.astype(dtype, copy=True) for k, v in p0.items()}
    trainer = rnn.Trainer(params, data_ids, batch_size=1, seq_length=TEXTBOOK["seq_length"],
                          learning_rate=TEXTBOOK["learning_rate"], optimizer="adagrad", clip=5.0)
    # Trainer.step returns the loss per character; the textbook's is summed over the T steps
    return [trainer.step() * TEXTBOOK["seq_length"] for _ in range(num_iters)]


def bench_textbook(ids, V, num_iters: int, rounds: int) -> dict:
    """Alternate the two loops `rounds` times (so a change in load hits both); keep each one's best."""
    p0 = rnn.init_params(V, TEXTBOOK["hidden_size"], np.random.default_rng(0))   # the textbook init
    T, lr = TEXTBOOK["seq_length"], TEXTBOOK["learning_rate"]
    ref_losses = losses = None
    t_ref, t_proj = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        _, _, ref_losses, _, _ = textbook_run(p0, ids, T, lr, num_iters)
        t_ref.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        losses = project_run(p0, ids, num_iters)
        t_proj.append(time.perf_counter() - t0)
    ref_losses, losses = np.asarray(ref_losses), np.asarray(losses)
    rel = np.abs(losses - ref_losses) / np.abs(ref_losses)
    first = min(5, num_iters)
    assert rel[:first].max() <= 1e-9, (
        f"bench_textbook: the project's Trainer (B=1, float64) and tests/textbook.py's loop disagree "
        f"on the first {first} losses by up to {rel[:first].max():.2e} (relative; tolerance 1e-9): "
        f"mine {losses[:first]} vs theirs {ref_losses[:first]}. Same data, same initial weights: "
        f"check the data walk (Streams) and the Adagrad/clip order in apply_update")
    chars = num_iters * T
    ref_cps, proj_cps = chars / min(t_ref), chars / min(t_proj)

    # forward + backward alone, one window, for the breakdown
    x, y = [int(i) for i in ids[:T]], [int(i) for i in ids[1:T + 1]]
    h1 = np.zeros((TEXTBOOK["hidden_size"], 1))
    t_ref_lg = timed(lambda: textbook_loss_fun(p0, x, y, h1), 0.1 * sum(t_ref) / rounds)[0]
    xa, ya = np.array(x), np.array(y)
    t_lg = timed(lambda: rnn.loss_and_grads(p0, xa, ya, h1), 0.1 * sum(t_proj) / rounds)[0]
    return {
        "settings": dict(TEXTBOOK, batch_size=1, dtype="float64", optimizer="adagrad", clip=5.0,
                         iterations=num_iters, rounds=rounds),
        "textbook_chars_per_s": ref_cps, "project_chars_per_s": proj_cps, "ratio": proj_cps / ref_cps,
        "loss_and_grads_ratio": t_ref_lg / t_lg,
        "first_losses": {"textbook": ref_losses[:first].tolist(), "project": losses[:first].tolist()},
        "max_rel_loss_diff_first": float(rel[:first].max()),
        # rounding differences (BLAS vs per-step products) grow about 10x per step in Adagrad's
        # first iterations, so after a dozen steps the two runs are different draws of the same loop
        "steps_agreeing_1e-9": int(np.argmax(rel > 1e-9)) if (rel > 1e-9).any() else num_iters,
        "max_rel_loss_diff_all": float(rel.max()),
    }


# -----------------------------------------------------------------------------
# 3. Batched throughput and model-FLOP utilisation
# -----------------------------------------------------------------------------

def bench_batched(ids, V, min_seconds: float, matmul32: float) -> dict:
    H, B, T = BATCHED["hidden_size"], BATCHED["batch_size"], BATCHED["seq_length"]
    params = rnn.init_params(V, H, np.random.default_rng(0), dtype=np.float32)
    trainer = rnn.Trainer(params, ids, batch_size=B, seq_length=T, learning_rate=2e-3,
                          optimizer="adam", clip=5.0)
    for _ in range(5):                                 # warm up, and leave the tiny init behind
        trainer.step()
    x, y = trainer.streams.window(0)
    h = np.zeros((H, B), dtype=np.float32)
    t_step, t_lg = [], []
    for _ in range(3):                                 # alternate, keep each one's best: load changes hit both
        t_step.append(timed(trainer.step, min_seconds / 3)[0])   # full iteration: forward, backward, clip, Adam
        t_lg.append(timed(lambda: rnn.loss_and_grads(trainer.params, x, y, h), min_seconds / 3)[0])
    t_step, t_lg = min(t_step), min(t_lg)
    flops_per_char = 6.0 * (H * H + H * V)
    cps_step, cps_lg = T * B / t_step, T * B / t_lg
    return {
        "settings": dict(BATCHED, dtype="float32", optimizer="adam", clip=5.0, vocab_size=V),
        "model_flops_per_char": flops_per_char,
        "step_ms": 1e3 * t_step, "loss_and_grads_ms": 1e3 * t_lg,
        "step_chars_per_s": cps_step, "loss_and_grads_chars_per_s": cps_lg,
        "step_utilisation": cps_step * flops_per_char / matmul32,
        "loss_and_grads_utilisation": cps_lg * flops_per_char / matmul32,
    }


def bench_presets(ids, V, min_seconds: float, matmul: dict) -> dict:
    """Each train_minimal.py preset's own setting: chars/s of Trainer.step and its utilisation.

    The Trainer comes from train_minimal.build_trainer, the one every run starts from (hidden
    size, batch, unroll, optimiser, clipping, dtype, random offsets, weight average, dropout,
    weight decay), so whatever regularisation a preset trains with is inside the timed step. Evaluation, sampling and
    logging, which the script does every few thousand steps, are not. Utilisation is against
    the matmul rate of the preset's own dtype.
    """
    from train_minimal import PRESETS, build_trainer
    results = {}
    for name, c in PRESETS.items():
        H, B, T, dtype = c["hidden_size"], c["batch_size"], c["seq_length"], np.dtype(c["dtype"])
        trainer = build_trainer(c, ids, V, np.random.default_rng(c["seed"]))
        for _ in range(5):                             # warm up, and leave the tiny init behind
            trainer.step()
        t_step = min(timed(trainer.step, min_seconds / 3)[0] for _ in range(3))
        flops_per_char = 6.0 * (H * H + H * V)
        cps = T * B / t_step
        rate = matmul["float32" if dtype == np.float32 else "float64"]
        results[name] = {
            "settings": {k: c[k] for k in ("hidden_size", "batch_size", "seq_length", "dtype", "optimizer",
                                           "clip", "random_offsets", "ema", "dropout", "weight_decay")},
            "model_flops_per_char": flops_per_char, "step_ms": 1e3 * t_step,
            "step_chars_per_s": cps, "step_utilisation": cps * flops_per_char / rate,
        }
    return results


# -----------------------------------------------------------------------------
# 4. Quality at a fixed budget (train_minimal.py), with the child's memory
# -----------------------------------------------------------------------------

def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _find_val(metrics: dict) -> float | None:
    """The best validation loss in train_minimal's metrics.json ("best_val_loss", nats/char)."""
    if isinstance(metrics.get("best_val_loss"), (int, float)):
        return float(metrics["best_val_loss"])
    flat = {}                                          # otherwise: any numeric *val* field, best first

    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, prefix + k + ".")
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                flat[prefix + k] = float(v)
    walk(metrics)
    vals = {k: v for k, v in flat.items() if "val" in k.lower() and "bits" not in k.lower()
            and "every" not in k.lower() and "interval" not in k.lower()}
    for pick in ("best", "final", ""):
        cands = [v for k, v in vals.items() if pick in k.lower()]
        if cands:
            return min(cands)
    return None


def bench_quality(data_path: str, preset: str, budget: float, seed: int, out_dir: Path,
                  extra: list[str]) -> dict:
    script = REPO / "train_minimal.py"
    if not script.exists():
        return {"seed": seed, "error": f"{script} not found"}
    out = out_dir / f"quality-{preset}-seed{seed}"
    budget_args = ["--time-budget", str(budget)] if budget else []   # default: the preset's own length
    cmd = [sys.executable, str(script), "--preset", preset, *budget_args, "--overwrite",
           "--data", str(data_path), "--out", str(out), "--seed", str(seed), *extra]
    print("  $", " ".join(cmd), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    console = out.parent / f"{out.name}.console.txt"   # the child's stdout and stderr
    t0 = time.perf_counter()
    with open(console, "w") as sink:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
        rss, usage = [], None                          # (seconds, MB), sampled about once a second
        while True:
            if hasattr(os, "wait4"):                   # POSIX: reap the child and get its own rusage
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    returncode = os.waitstatus_to_exitcode(status)
                    break
            elif proc.poll() is not None:
                returncode = proc.returncode
                break
            r = _rss_mb(proc.pid)
            if r is not None:
                rss.append((time.perf_counter() - t0, r))
            time.sleep(1.0)
    wall = time.perf_counter() - t0
    if usage is not None:                              # ru_maxrss is in KB on Linux
        peak = usage.ru_maxrss / 1024.0
    else:
        peak = max((r for _, r in rss), default=float("nan"))
    res = {"seed": seed, "returncode": returncode, "wall_s": wall, "peak_rss_mb": peak,
           "out": str(out), "console": str(console), "load_after": list(os.getloadavg())}
    if rss:                                            # growth: RSS late in the run vs a quarter in
        late = [r for t, r in rss if t >= 0.75 * wall]
        early = [r for t, r in rss if 0.25 * wall <= t < 0.5 * wall]
        if late and early:
            res["rss_growth_mb"] = max(late) - max(early)
        res["rss_samples_mb"] = [round(r, 1) for _, r in rss[::10]]
    if returncode != 0:
        res["error"] = console.read_text(errors="replace")[-2000:]
        return res
    metrics_file = out / "metrics.json"
    if metrics_file.exists():
        metrics = json.loads(metrics_file.read_text())
        res["metrics"] = metrics
        res["val_nats"] = _find_val(metrics)
    return res


# -----------------------------------------------------------------------------
# Report
# -----------------------------------------------------------------------------

def fmt_table(r: dict) -> str:
    rows = [("what", "value", "target")]
    m = r["matmul"]
    rows.append((f"matmul float32 ({m['n']}x{m['n']})", f"{m['float32'] / 1e9:.0f} GFLOP/s", ""))
    rows.append((f"matmul float64 ({m['n']}x{m['n']})", f"{m['float64'] / 1e9:.0f} GFLOP/s", ""))
    rows.append(("recurrent step (256,256)@(256,64) f32", f"{m['recurrent_float32'] / 1e9:.0f} GFLOP/s", ""))
    t = r["textbook"]
    rows.append(("textbook loop, B=1 H=100 T=25 f64", f"{t['textbook_chars_per_s']:,.0f} chars/s", ""))
    rows.append(("project Trainer, same settings", f"{t['project_chars_per_s']:,.0f} chars/s", ""))
    ok = "yes" if t["ratio"] >= TARGETS["textbook_ratio"] else "no"
    rows.append(("  ratio (full iteration)", f"{t['ratio']:.2f}x", f">= 4x: {ok}"))
    rows.append(("  ratio (loss and grads only)", f"{t['loss_and_grads_ratio']:.2f}x", ""))
    rows.append(("  max rel. loss diff, first 5 losses", f"{t['max_rel_loss_diff_first']:.0e}",
                 f"<= 1e-9 (first {t['steps_agreeing_1e-9']} agree)"))
    b = r["batched"]
    rows.append(("batched H=256 B=64 T=64 f32 Adam", f"{b['step_chars_per_s']:,.0f} chars/s", ""))
    ok = "yes" if b["step_utilisation"] >= TARGETS["utilisation"] else "no"
    rows.append(("  utilisation (full step)", f"{100 * b['step_utilisation']:.0f}%", f">= 50%: {ok}"))
    rows.append(("  utilisation (loss and grads only)", f"{100 * b['loss_and_grads_utilisation']:.0f}%", ""))
    for name, pr in r.get("presets", {}).items():
        st = pr["settings"]
        extras = [k for k in ("random_offsets", "ema", "dropout", "weight_decay") if st.get(k)]
        extras = f", {'+'.join(extras)}" if extras else ""
        rows.append((f"preset {name}: H={st['hidden_size']} B={st['batch_size']} T={st['seq_length']} "
                     f"{st['dtype'][:1]}{st['dtype'][-2:]} {st['optimizer']}{extras}",
                     f"{pr['step_chars_per_s']:,.0f} chars/s", ""))
        rows.append(("  utilisation (full step)", f"{100 * pr['step_utilisation']:.0f}%", ""))
    for q in r.get("quality", []):
        v = q.get("val_nats")
        if v is None:
            rows.append((f"quality seed {q['seed']}", "failed", q.get("error", "")[-60:].replace("\n", " ")))
            continue
        ok = "yes" if v <= TARGETS["val_nats"] else "no"
        cps = (q.get("metrics") or {}).get("chars_per_sec")
        cps = f", {cps / 1000:.0f}k chars/s" if cps else ""
        rows.append((f"quality seed {q['seed']} ({q['wall_s']:.0f} s wall{cps})", f"val {v:.3f} nats/char",
                     f"<= 1.60: {ok}"))
        ok = "yes" if q["peak_rss_mb"] < TARGETS["peak_rss_mb"] else "no"
        growth = q.get("rss_growth_mb")
        g = f", +{growth:.0f} MB late" if growth is not None else ""
        rows.append(("  peak RSS", f"{q['peak_rss_mb']:.0f} MB{g}", f"< 1 GB: {ok}"))
    w = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Speed benchmark: matmul rate, textbook-loop ratio, batched utilisation, "
                    "and (with --quality) quality runs of a preset. Prints a table, writes JSON.")
    g = p.add_argument_group("what to run")
    g.add_argument("--quick", action="store_true",
                   help="small sizes and short timings: a few seconds, noisier numbers (for tests)")
    g.add_argument("--seconds", type=float, default=None,
                   help="seconds spent timing each measurement (default: 3, or 0.3 with --quick)")
    g.add_argument("--quality", action="store_true",
                   help="also run train_minimal.py --preset PRESET once per seed: loss, time, peak memory")
    q = p.add_argument_group("quality run (--quality)")
    q.add_argument("--preset", default="fast", help="train_minimal.py --preset to run (default: %(default)s)")
    q.add_argument("--time-budget", type=float, default=None,
                   help="stop each quality run after this many seconds instead of the preset's own "
                        "length (a time-bounded run is not the same on every machine; default: none)")
    q.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="seeds for the quality runs, one run each (default: 0)")
    q.add_argument("--train-arg", action="append", default=[], metavar="ARG",
                   help="extra argument passed through to train_minimal.py (repeatable)")
    io = p.add_argument_group("input and output")
    io.add_argument("--data", default=None,
                    help="text file to use (default: tiny Shakespeare via data.download.ensure_corpus, "
                         "which honours RNN_DATA_MIRROR)")
    io.add_argument("--json", default=str(REPO / "out" / "bench.json"),
                    help="where to write the results as JSON (default: %(default)s, an ignored folder)")
    return p


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    threads = setup_numpy()                    # one BLAS thread and memory reuse, like every script
    seconds = args.seconds if args.seconds is not None else (0.3 if args.quick else 3.0)
    info = machine_info()
    info["blas_threads"] = threads
    print("settings:", vars(args))
    print(f"machine: {info['cpu_count']} cores, numpy {info['numpy']}, {info['blas']}, {threads} BLAS thread(s), "
          f"load average {info['load_before'][0]:.2f} (the machine may be shared: compare ratios)",
          flush=True)
    text, source = load_text(args.data)
    chars = rnn.build_vocab(text)
    ids = rnn.encode(text, chars)
    train_ids, _ = rnn.train_val_split(ids)
    V = len(chars)
    print(f"data: {source}, {len(text):,} chars, V={V}", flush=True)

    n = 512 if args.quick else 1024
    print("matmul rate ...", flush=True)
    matmul = {"n": n, "float32": matmul_rate(n, np.float32, seconds),
              "float64": matmul_rate(n, np.float64, seconds),
              "recurrent_float32": recurrent_matmul_rate(BATCHED["hidden_size"], BATCHED["batch_size"],
                                                         np.float32, seconds / 3)}
    print("textbook loop vs project ...", flush=True)
    iters = 100 if args.quick else int(1000 * seconds)
    textbook = bench_textbook(train_ids, V, iters, rounds=1 if args.quick else 3)
    print("batched ...", flush=True)
    batched = bench_batched(train_ids, V, seconds, matmul["float32"])
    print("presets ...", flush=True)
    presets = bench_presets(train_ids, V, seconds, matmul)
    results = {"machine": info, "data": source, "matmul": matmul, "textbook": textbook,
               "batched": batched, "presets": presets, "flop_count": "model FLOPs per char = 6 (H*H + H*V)"}
    if args.quality:
        data_path = args.data
        if data_path is None:
            from data.download import ensure_corpus
            data_path = ensure_corpus("tiny_shakespeare", progress=False)
        out_dir = Path(args.json).resolve().parent
        results["quality"] = []
        for seed in args.seeds:
            length = f"{args.time_budget:.0f} s" if args.time_budget else f"the {args.preset} preset's length"
            print(f"quality run, seed {seed}, {length} ...", flush=True)
            results["quality"].append(bench_quality(data_path, args.preset, args.time_budget, seed,
                                                    out_dir, args.train_arg))
    info["load_after"] = list(os.getloadavg())
    print()
    print(fmt_table(results))
    print(f"load average before/after: {info['load_before'][0]:.2f} / {info['load_after'][0]:.2f}")
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
