"""Per-device timings: CD-1 epoch of each layer of the paper's DBN on whatever device JAX sees, and EMD times.

Runs unchanged on CPU and on a CUDA GPU (``pip install -e ".[cuda]"``): the only device-specific thing it does is
read the device's name. Measures:

1. **One CD-1 epoch of each layer** of the 784-500-500-2000 DBN (784-500, 500-500, 500-2000), batch 100, Hinton's
   settings (``TrainSettings`` defaults), built from the project's ``make_train_epoch`` + ``_settings_optimizer``
   as in ``bench_train.py``. Layer 1 trains on ``N`` images (default 60,000: the Fashion-MNIST training images
   when ``/usr/share/datasets/fashion-mnist`` exists, else synthetic Bernoulli(0.5) pixels; ``--data`` chooses);
   layer ``l + 1`` on layer ``l``'s hidden probabilities of them under its *initial* weights (``propagate``; the
   epoch time does not depend on the values). Each layer: one warm-up epoch (trace + compile + run), then the
   minimum over ``--repeats`` timed epochs with ``block_until_ready`` (compilation excluded). GFLOP/s use
   ``10·B·V·H`` FLOPs per CD-1 step (bench_train.py's count) x ``floor(N / B)`` steps.
2. **EMD time of each method** of :func:`analysis.emd.pairwise_emd` on a fixed set of fields (exact: 32 fields,
   pooled: 100, sliced: 500 with 64 directions), wall time of one call with ``--n-jobs`` worker processes (default:
   all cores). Synthetic smooth signed fields (bench_emd.py's generator) or, with ``--model``, the h1 fields of a
   trained model. EMD is numpy/POT code: it runs on the host CPUs whatever JAX's device is.

Output: a table and ``benchmarks/results/bench_device_<backend>.json`` (device name included).

Usage::

    python benchmarks/bench_device.py                          # full run
    python benchmarks/bench_device.py --quick --out /tmp/d.json   # seconds-long smoke run (N = 2,000)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from bench_emd import synthetic_fields  # the same field generator; benchmarks/ is on sys.path
from common import time_epochs

from dbn_jax.train import TrainSettings, _settings_optimizer, init_layer_state, make_train_epoch, propagate

RESULTS = Path(__file__).resolve().parent / "results"
DATASET_DIR = Path("/usr/share/datasets/fashion-mnist")
LAYERS = ((784, 500), (500, 500), (500, 2000))
FLOP_FORMULA = "10*B*V*H per CD-1 step (as bench_train.py), x floor(N / B) steps per epoch"
FULL = {"n_images": 60000, "repeats": 3, "emd_fields": {"exact": 32, "pooled": 100, "sliced": 500}}
QUICK = {"n_images": 2000, "repeats": 1, "emd_fields": {"exact": 8, "pooled": 20, "sliced": 100}}


def load_images(n: int, which: str) -> tuple[np.ndarray, str]:
    """``(n, 784)`` float32: Fashion-MNIST training images (``idx``/``auto``) or Bernoulli(0.5) pixels."""
    note = ""
    if which != "synthetic":
        from dbn_jax.data import DataError, load

        try:
            x = load("idx", path=str(DATASET_DIR)).x_train
        except DataError as exc:
            if which == "idx":
                raise
            note = f" ({exc})"
        else:
            if x.shape[0] >= n:
                return np.ascontiguousarray(x[:n], dtype=np.float32), f"fashion-mnist train images ({DATASET_DIR})"
            if which == "idx":
                raise SystemExit(f"--data idx: {DATASET_DIR} has {x.shape[0]} < {n} training images")
            note = f" ({DATASET_DIR} has only {x.shape[0]} images)"
    rng = np.random.default_rng(0)
    return (rng.random((n, 784)) < 0.5).astype(np.float32), "synthetic Bernoulli(0.5) pixels" + note


def load_fields(model: Path | None, need: int, seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    if model is None:
        return synthetic_fields(need, seed), {"kind": "synthetic", "what": "bench_emd generator, 28x28"}
    from dbn_jax import load_dbn

    fields = np.asarray(load_dbn(model)[0].w, dtype=np.float64).T  # h1 fields: columns of w1
    source: dict[str, Any] = {"kind": "model", "path": str(model), "layer": "h1"}
    source["n_model_fields"] = int(fields.shape[0])
    if fields.shape[0] < need:
        source["n_synthetic_fields"] = need - fields.shape[0]
        fields = np.concatenate([fields, synthetic_fields(need - fields.shape[0], seed)])
    return fields[:need], source


def time_layer(x: jax.Array, n_hidden: int, batch: int, repeats: int, layer: int):
    """``(result, initial params)`` of one layer: warm-up epoch, then the best of ``repeats`` timed epochs."""
    settings = TrainSettings(batch_size=batch)
    optimizer = _settings_optimizer(settings, x.shape[0] // batch)
    epoch = make_train_epoch(optimizer, settings.cd_steps, batch)
    k_init = jax.random.fold_in(jax.random.key(0), layer)
    state = init_layer_state(k_init, x.shape[1], n_hidden, settings, optimizer, x)
    root = jax.random.fold_in(jax.random.key(1), layer)
    (_, err), compile_and_first, times = time_epochs(epoch, state, x, root, repeats)
    best = min(times)
    flops = 10 * batch * x.shape[1] * n_hidden * (x.shape[0] // batch)
    return {
        "layer": f"{x.shape[1]}-{n_hidden}",
        "n_visible": int(x.shape[1]),
        "n_hidden": n_hidden,
        "seconds": best,
        "times_s": times,
        "compile_and_first_epoch_s": compile_and_first,
        "flops_per_epoch": flops,
        "gflops": flops / best / 1e9,
        "first_epoch_recon_error": float(err),
    }, state.params


def run(args: argparse.Namespace) -> dict[str, Any]:
    import jaxlib
    import joblib
    import ot
    import scipy

    from analysis.emd import pairwise_emd

    sz = json.loads(json.dumps(QUICK if args.quick else FULL))
    if args.n_images is not None:
        sz["n_images"] = args.n_images
    if args.repeats is not None:
        sz["repeats"] = args.repeats
    dev = jax.devices()[0]
    print(f"backend {jax.default_backend()}, device {dev.device_kind} ({dev}); {len(jax.devices())} device(s)")
    x_np, data_source = load_images(sz["n_images"], args.data)
    x = jnp.asarray(x_np)
    del x_np
    layers = []
    for layer, (n_visible, n_hidden) in enumerate(LAYERS, start=1):
        assert x.shape[1] == n_visible
        r, params = time_layer(x, n_hidden, args.batch_size, sz["repeats"], layer)
        layers.append(r)
        print(f"  epoch {r['layer']:>9}: {r['seconds']:.4f} s, {r['gflops']:.1f} GFLOP/s", flush=True)
        if layer < len(LAYERS):
            x = jax.block_until_ready(propagate(params, x))
    del x

    n_jobs = args.n_jobs or joblib.cpu_count()
    fields, field_source = load_fields(args.model, max(sz["emd_fields"].values()), args.seed)
    pairwise_emd(fields[:4], "pooled", n_jobs=n_jobs)  # start the worker pool outside the timings
    emd = {}
    for method, n in sz["emd_fields"].items():
        t = time.perf_counter()
        pairwise_emd(fields[:n], method, n_jobs=n_jobs, n_projections=args.sliced_projections)
        wall = time.perf_counter() - t
        emd[method] = {"n_fields": n, "n_pairs": n * (n - 1) // 2, "seconds": wall}
        print(f"  emd {method:<6} {n:>5} fields: {wall:.3f} s", flush=True)

    total_s = sum(r["seconds"] for r in layers)
    return {
        "benchmark": "bench_device",
        "quick": bool(args.quick),
        "device": {
            "backend": jax.default_backend(),
            "device_kind": dev.device_kind,
            "platform": dev.platform,
            "devices": [str(d) for d in jax.devices()],
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "pot": ot.__version__,
            "joblib": joblib.__version__,
        },
        "config": {
            "n_images": sz["n_images"],
            "batch_size": args.batch_size,
            "repeats": sz["repeats"],
            "data": data_source,
            "layers": ["-".join(map(str, lv)) for lv in LAYERS],
            "fields": field_source,
            "emd_n_jobs": n_jobs,
            "sliced_projections": args.sliced_projections,
        },
        "flop_formula": FLOP_FORMULA,
        "train_epochs": layers,
        "train_epoch_all_layers_s": total_s,
        "emd": emd,
        "notes": [
            "Epoch time: minimum over config.repeats timed epochs after one warm-up epoch (compile excluded), "
            "block_until_ready; includes the per-epoch shuffle and per-step batch gather.",
            "Layers 2 and 3 train on hidden probabilities of the layer below under its initial weights.",
            "EMD runs on the host CPUs (numpy/POT, joblib loky workers) whatever the JAX device is.",
        ]
        + (["--quick: small sizes for a smoke test."] if args.quick else []),
    }


def table(res: dict[str, Any]) -> str:
    d, cfg = res["device"], res["config"]
    lines = [
        f"device: {d['device_kind']} (backend {d['backend']}, {', '.join(d['devices'])})",
        f"CD-1 epoch, {cfg['n_images']} images, batch {cfg['batch_size']}, best of {cfg['repeats']}; "
        f"data: {cfg['data']}",
        f"{'quantity':<28} {'size':>10} {'seconds':>10} {'GFLOP/s':>9} {'compile+1st s':>14}",
        "-" * 76,
    ]
    for r in res["train_epochs"]:
        lines.append(
            f"{'epoch ' + r['layer']:<28} {cfg['n_images']:>10} {r['seconds']:>10.4f} {r['gflops']:>9.1f} "
            f"{r['compile_and_first_epoch_s']:>14.2f}"
        )
    lines.append(f"{'epoch, all 3 layers':<28} {'':>10} {res['train_epoch_all_layers_s']:>10.4f}")
    for method, e in res["emd"].items():
        lines.append(f"{'EMD ' + method + ' (fields)':<28} {e['n_fields']:>10} {e['seconds']:>10.4f}")
    lines.append("-" * 76)
    lines.append(f"EMD on host CPUs: n_jobs={cfg['emd_n_jobs']}, fields {cfg['fields']['kind']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--out", type=Path, default=None, help="JSON path (default results/bench_device_<backend>.json)"
    )
    ap.add_argument("--quick", action="store_true", help="N = 2,000 images and few fields: a smoke run")
    ap.add_argument("--n-images", type=int, default=None, help="training images N (default 60000, quick 2000)")
    ap.add_argument("--data", choices=("auto", "idx", "synthetic"), default="auto", help="layer-1 data")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=None, help="timed epochs per layer (default 3, quick 1)")
    ap.add_argument("--model", type=Path, default=None, help="model folder: EMD on its h1 fields")
    ap.add_argument("--n-jobs", type=int, default=None, help="EMD worker processes (default: all cores)")
    ap.add_argument("--sliced-projections", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic fields")
    args = ap.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.n_images is not None and args.n_images < args.batch_size:
        ap.error("--n-images must be >= --batch-size")
    res = run(args)
    out = args.out or RESULTS / f"bench_device_{res['device']['backend']}.json"
    print(table(res))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2, allow_nan=False) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
