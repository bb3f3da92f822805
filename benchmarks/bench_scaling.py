"""Scaling curves: training time vs data size and hidden size, EMD time vs number of fields (log-log fits).

Measures, in one process:

(a) **CD-1 epoch time vs number of training images** (default 5k, 15k, 60k) for the 784-500 layer, batch 100,
    Hinton's optimizer settings, built from the project's own ``make_train_epoch`` + ``_settings_optimizer`` as in
    ``bench_train.py``. Data: the first ``n`` Fashion-MNIST training images read with
    ``dbn_jax.data.load("idx", path=/usr/share/datasets/fashion-mnist)``; when that folder is missing, synthetic
    Bernoulli(0.5) pixels (the JSON says which). Every size is a fresh jit (the data shape changes): one warm-up
    epoch (trace + compile + run) first, then the epoch time is the minimum over ``--repeats`` timed epochs
    (``block_until_ready``), compilation excluded.
(b) **CD-1 epoch time vs hidden size** (default 125, 250, 500, 1000, 2000) at 15k images, same protocol.
(c) **EMD time vs number of receptive fields**, per method of :func:`analysis.emd.pairwise_emd` (exact, pooled,
    sliced with ``--sliced-projections`` directions), wall time of one ``pairwise_emd`` call with
    ``n_jobs=--n-jobs`` (default 2; the loky worker pool is started before the timings). Fields: the h1 fields
    (columns of ``w1``) of a trained model with ``--model DIR`` (read with ``dbn_jax.load_dbn``), topped up with
    synthetic fields when the model has fewer; else synthetic smooth signed fields (2-5 Gaussian blobs of random
    sign plus 2% pixel noise, the generator of ``bench_emd.py``).

For every curve ``log(time) = a + b·log(size)`` is fitted by least squares (``numpy.polyfit``, natural logs) and
the exponent ``b`` reported (expected: ~1 for (a) and (b), ~2 for exact/pooled EMD, which solve all n(n-1)/2
pairs; sliced is ~1 in the sorting part and ~2 in the pairwise part). After each scale the peak RSS of this
process so far is recorded (``resource.getrusage(RUSAGE_SELF).ru_maxrss``): it is a running maximum, never a
per-scale figure, and it excludes the EMD worker processes.

Output: a table, a JSON file and one PNG with three log-log panels (points, fitted line, exponent in the legend).

Usage::

    python benchmarks/bench_scaling.py                        # full run: results/bench_scaling.json and
                                                              # docs/figures/scaling.png
    python benchmarks/bench_scaling.py --model runs/x/model   # (c) on the h1 fields of a trained model
    python benchmarks/bench_scaling.py --quick --out /tmp/s.json   # < 60 s smoke run; figure /tmp/s.png
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from bench_emd import synthetic_fields  # the same field generator; benchmarks/ is on sys.path
from common import machine_info, time_epochs

from dbn_jax.train import TrainSettings, _settings_optimizer, init_layer_state, make_train_epoch

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "bench_scaling.json"
DEFAULT_FIG = ROOT / "docs" / "figures" / "scaling.png"
DATASET_DIR = Path("/usr/share/datasets/fashion-mnist")
N_VISIBLE = 784
METHODS = ("exact", "pooled", "sliced")
FLOP_FORMULA = "10*B*V*H per CD-1 step (as bench_train.py), x floor(n_images / B) steps per epoch"

FULL: dict[str, Any] = {
    "train_images": [5000, 15000, 60000],
    "train_hidden": 500,
    "hidden_sizes": [125, 250, 500, 1000, 2000],
    "hidden_images": 15000,
    "emd_fields": {"exact": [16, 32, 64], "pooled": [50, 100, 200], "sliced": [250, 500, 1000, 2000]},
    "batch_size": 100,
    "repeats": 2,
}
QUICK: dict[str, Any] = {
    "train_images": [500, 1000, 2000],
    "train_hidden": 64,
    "hidden_sizes": [16, 32, 64],
    "hidden_images": 1000,
    "emd_fields": {"exact": [4, 6, 8], "pooled": [8, 12, 16], "sliced": [20, 40, 80]},
    "batch_size": 100,
    "repeats": 1,
}


# ------------------------------------------------------------------------------------------------------ helpers


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def load_images(n: int) -> tuple[np.ndarray, str]:
    """``(n, 784)`` float32 images: Fashion-MNIST training images if the IDX folder exists, else Bernoulli(0.5)."""
    if DATASET_DIR.is_dir():
        from dbn_jax.data import DataError, load

        try:
            x = load("idx", path=str(DATASET_DIR)).x_train
        except DataError as exc:
            note = f"synthetic Bernoulli(0.5) pixels ({DATASET_DIR} unreadable: {exc})"
        else:
            if x.shape[0] >= n:
                return np.ascontiguousarray(x[:n], dtype=np.float32), f"fashion-mnist train images ({DATASET_DIR})"
            note = f"synthetic Bernoulli(0.5) pixels ({DATASET_DIR} has only {x.shape[0]} < {n} images)"
    else:
        note = f"synthetic Bernoulli(0.5) pixels ({DATASET_DIR} missing)"
    rng = np.random.default_rng(0)
    return (rng.random((n, N_VISIBLE)) < 0.5).astype(np.float32), note


def load_fields(model: Path | None, need: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """``need`` fields: h1 fields (columns of ``w1``) of ``model``, topped up with synthetic ones, or synthetic."""
    if model is None:
        what = "2-5 Gaussian blobs, random signs, 2% pixel noise, 28x28 (bench_emd generator)"
        return synthetic_fields(need, seed), {"kind": "synthetic", "what": what}
    from dbn_jax import load_dbn

    w1 = np.asarray(load_dbn(model)[0].w, dtype=np.float64)
    fields = w1.T
    source: dict[str, Any] = {"kind": "model", "path": str(model), "layer": "h1"}
    source["n_model_fields"] = int(fields.shape[0])
    if fields.shape[0] < need:
        source["n_synthetic_fields"] = need - fields.shape[0]
        fields = np.concatenate([fields, synthetic_fields(need - fields.shape[0], seed)])
    return fields[:need], source


def fit_power(sizes: list[int], times: list[float]) -> dict[str, float]:
    """Least-squares fit of ``log t = a + b log n``; ``b`` is the exponent."""
    b, a = np.polyfit(np.log(np.asarray(sizes, float)), np.log(np.asarray(times, float)), 1)
    return {"exponent_b": float(b), "intercept_a": float(a)}


def epoch_flops(n_images: int, batch: int, n_visible: int, n_hidden: int) -> int:
    return 10 * batch * n_visible * n_hidden * (n_images // batch)


# ------------------------------------------------------------------------------------------------ measurements


def time_epoch(x: jax.Array, n_hidden: int, batch: int, repeats: int) -> dict[str, Any]:
    """One fresh jitted CD-1 epoch on ``x``: warm-up call (compile + one epoch), then ``repeats`` timed epochs."""
    settings = TrainSettings(batch_size=batch)
    optimizer = _settings_optimizer(settings, x.shape[0] // batch)
    epoch = make_train_epoch(optimizer, settings.cd_steps, batch)
    state = init_layer_state(jax.random.key(0), x.shape[1], n_hidden, settings, optimizer, x)
    _, compile_and_first, times = time_epochs(epoch, state, x, jax.random.key(1), repeats)
    best = min(times)
    flops = epoch_flops(x.shape[0], batch, x.shape[1], n_hidden)
    return {
        "seconds": best,
        "times_s": times,
        "compile_and_first_epoch_s": compile_and_first,
        "gflops": flops / best / 1e9,
        "peak_rss_mib_so_far": peak_rss_mib(),
    }


def curve(points: list[dict[str, Any]], size_key: str) -> dict[str, Any]:
    sizes = [p[size_key] for p in points]
    return {"points": points, **fit_power(sizes, [p["seconds"] for p in points])}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from analysis.emd import pairwise_emd

    sz = json.loads(json.dumps(QUICK if args.quick else FULL))
    if args.repeats is not None:
        sz["repeats"] = args.repeats
    B, reps = sz["batch_size"], sz["repeats"]
    x_all, data_source = load_images(max(max(sz["train_images"]), sz["hidden_images"]))
    print(f"data: {data_source}; backend {jax.default_backend()}", flush=True)

    # (a) epoch time vs number of images
    pts_a = []
    for n in sz["train_images"]:
        x = jnp.asarray(x_all[:n])
        r = time_epoch(x, sz["train_hidden"], B, reps)
        pts_a.append({"n_images": n, "n_hidden": sz["train_hidden"], **r})
        print(f"  (a) {n:>6} images, 784-{sz['train_hidden']}: {r['seconds']:.3f} s/epoch", flush=True)
        del x

    # (b) epoch time vs hidden size
    pts_b = []
    x = jnp.asarray(x_all[: sz["hidden_images"]])
    for h in sz["hidden_sizes"]:
        r = time_epoch(x, h, B, reps)
        pts_b.append({"n_hidden": h, "n_images": sz["hidden_images"], **r})
        print(f"  (b) 784-{h:<5} {sz['hidden_images']} images: {r['seconds']:.3f} s/epoch", flush=True)
    del x, x_all

    # (c) EMD time vs number of fields
    need = max(max(v) for v in sz["emd_fields"].values())
    fields, field_source = load_fields(args.model, need, args.seed)
    pairwise_emd(fields[:4], "pooled", n_jobs=args.n_jobs)  # start the worker pool outside the timings
    emd: dict[str, Any] = {}
    for method in METHODS:
        pts = []
        for n in sz["emd_fields"][method]:
            load = os.getloadavg()[0]
            t = time.perf_counter()
            pairwise_emd(fields[:n], method, n_jobs=args.n_jobs, n_projections=args.sliced_projections)
            wall = time.perf_counter() - t
            pts.append(
                {
                    "n_fields": n,
                    "n_pairs": n * (n - 1) // 2,
                    "seconds": wall,
                    "loadavg_1min_before": load,
                    "peak_rss_mib_so_far": peak_rss_mib(),
                }
            )
            print(f"  (c) {method:<6} {n:>5} fields: {wall:.3f} s", flush=True)
        emd[method] = curve(pts, "n_fields")

    import ot
    import scipy

    return {
        "benchmark": "bench_scaling",
        "quick": bool(args.quick),
        "machine": {**machine_info(), "device_kind": jax.devices()[0].device_kind},
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "pot": ot.__version__,
        },
        "config": {
            **sz,
            "data": data_source,
            "fields": field_source,
            "n_jobs": args.n_jobs,
            "sliced_projections": args.sliced_projections,
            "train_settings": "TrainSettings defaults (Hinton: lr 0.1, momentum 0.5 -> 0.9, weight decay 2e-4, "
            "CD-1)",
        },
        "flop_formula": FLOP_FORMULA,
        "fit": "numpy.polyfit(log(size), log(seconds), 1): log t = a + b log n (natural logs); b = exponent",
        "train_vs_images": curve(pts_a, "n_images"),
        "train_vs_hidden": curve(pts_b, "n_hidden"),
        "emd_vs_fields": emd,
        "notes": [
            "Epoch times: minimum over config.repeats timed epochs after one warm-up epoch per (size) jit; "
            "compile_and_first_epoch_s is the warm-up call.",
            "peak_rss_mib_so_far is resource.getrusage(RUSAGE_SELF).ru_maxrss after that point: the peak of this "
            "process so far (a running maximum, so it only grows with the run), excluding EMD worker processes.",
            "EMD seconds: wall time of one pairwise_emd call; other processes may share the cores (see "
            "loadavg_1min_before).",
            "With --quick the sizes are tiny and dominated by fixed overheads: the exponents are not meaningful.",
        ],
    }


# ------------------------------------------------------------------------------------------------ output


def table(res: dict[str, Any]) -> str:
    lines = [f"{'curve':<28} {'size':>7} {'seconds':>10} {'GFLOP/s':>9} {'peak RSS MiB':>13}", "-" * 72]

    def block(name: str, cur: dict[str, Any], key: str) -> None:
        for p in cur["points"]:
            g = f"{p['gflops']:.1f}" if "gflops" in p else ""
            lines.append(f"{name:<28} {p[key]:>7} {p['seconds']:>10.4f} {g:>9} {p['peak_rss_mib_so_far']:>13.0f}")
        lines.append(f"{'':<28} exponent b = {cur['exponent_b']:.2f}")

    cfg = res["config"]
    block(f"(a) epoch vs images, H={cfg['train_hidden']}", res["train_vs_images"], "n_images")
    block(f"(b) epoch vs H, {cfg['hidden_images']} imgs", res["train_vs_hidden"], "n_hidden")
    for method, cur in res["emd_vs_fields"].items():
        block(f"(c) EMD {method} vs fields", cur, "n_fields")
    lines.append("-" * 72)
    lines.append(
        f"backend {res['machine']['jax_backend']}; data: {cfg['data']}; fields: {cfg['fields']['kind']}; "
        f"n_jobs={cfg['n_jobs']}; peak RSS = process peak so far"
    )
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig = Figure(figsize=(15, 4.6), layout="constrained")
    axes = fig.subplots(1, 3)
    legends: dict[int, tuple[list, list[str]]] = {i: ([], []) for i in range(3)}

    def draw(i: int, cur: dict[str, Any], key: str, label: str, color: str) -> None:
        ax = axes[i]
        x = np.array([p[key] for p in cur["points"]], float)
        y = np.array([p["seconds"] for p in cur["points"]], float)
        (pts,) = ax.plot(x, y, "o", color=color)
        xs = np.geomspace(x.min(), x.max(), 50)
        (line,) = ax.plot(xs, np.exp(cur["intercept_a"]) * xs ** cur["exponent_b"], "-", color=color, alpha=0.7)
        legends[i][0].append((pts, line))
        legends[i][1].append(f"{label + ': ' if label else ''}exponent b = {cur['exponent_b']:.2f}")

    cfg = res["config"]
    titles = [
        (f"(a) CD-1 epoch, 784-{cfg['train_hidden']}", "training images", "seconds per epoch"),
        (f"(b) CD-1 epoch, {cfg['hidden_images']} images", "hidden units", "seconds per epoch"),
        (f"(c) pairwise EMD, n_jobs={cfg['n_jobs']}", "receptive fields", "seconds (wall)"),
    ]
    draw(0, res["train_vs_images"], "n_images", "", "C0")
    draw(1, res["train_vs_hidden"], "n_hidden", "", "C1")
    for j, (method, cur) in enumerate(res["emd_vs_fields"].items()):
        draw(2, cur, "n_fields", method, f"C{j + 2}")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    for i, (ax, (title, xlabel, ylabel)) in enumerate(zip(axes, titles, strict=True)):
        ax.set_xscale("log")
        ax.set_yscale("log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(plain)
            axis.set_minor_formatter(NullFormatter())
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(*legends[i], fontsize="small")
    quick = " (--quick: tiny sizes, exponents not meaningful)" if res["quick"] else ""
    fig.suptitle(f"Scaling on {res['machine']['jax_backend']} ({res['machine']['cpu_count']} cores){quick}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON output path (default {DEFAULT_OUT})")
    ap.add_argument(
        "--fig",
        type=Path,
        default=None,
        help=f"PNG output path (default {DEFAULT_FIG}; with --quick, the --out path with .png)",
    )
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a < 60 s smoke run")
    ap.add_argument("--model", type=Path, default=None, help="model folder (model.json + layer_<l>.npz) for (c)")
    ap.add_argument("--n-jobs", type=int, default=2, help="EMD worker processes (default 2)")
    ap.add_argument("--sliced-projections", type=int, default=64, help="directions of the sliced method")
    ap.add_argument("--repeats", type=int, default=None, help="timed epochs per size (default 2, quick 1)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic fields")
    args = ap.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        ap.error("--repeats must be >= 1")
    fig_path = args.fig or (args.out.with_suffix(".png") if args.quick else DEFAULT_FIG)
    res = run(args)
    res["figure"] = str(fig_path)
    print(table(res))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, allow_nan=False) + "\n")
    plot(res, fig_path)
    print(f"wrote {args.out} and {fig_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
