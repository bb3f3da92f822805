"""Benchmark the network statistics of ``analysis.graph`` / ``analysis.distributions`` on DBN-sized weights.

On weights of the paper's shapes (784×500, 500×500, 500×2000 — 1.64 M edges), from ``--model PATH`` (a folder
with ``model.json`` and ``layer_<l>.npz`` holding ``w``) or else N(−0.01, 0.1²) random float64, times:

* strengths + weight / strength stats on the full weighted graph;
* thresholding (positive, quantile 0.9), degrees, k_nn, assortativity, connected components, graph_stats;

against a 10 s target for all of them together, and, for comparison, networkx's own
``degree_assortativity_coefficient`` and ``average_neighbor_degree`` on the thresholded graph (on a random edge
subsample when the graph is larger than ``--nx-max-edges``; the output says so). The vectorised results are
checked equal to networkx's on the same graph.

Usage::

    python benchmarks/bench_graph.py [--model PATH] [--quick] [--out benchmarks/results/bench_graph.json]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import scipy
from scipy.sparse import csgraph

from analysis.distributions import strength_stats, weight_stats
from analysis.graph import (
    Threshold,
    block_adjacency,
    degree_assortativity,
    degrees,
    graph_stats,
    neighbour_degrees,
    strengths,
    threshold_masks,
    to_networkx,
)

SHAPES = [(784, 500), (500, 500), (500, 2000)]
TARGET_S = 10.0
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_graph.json"


def load_weights(model: str | None, seed: int) -> tuple[list[np.ndarray], str]:
    """The weight matrices (float64) and a description of where they came from."""
    if model is None:
        rng = np.random.default_rng(seed)
        return [rng.normal(-0.01, 0.1, s) for s in SHAPES], f"random N(-0.01, 0.1^2), seed {seed}"
    path = Path(model)
    if not (path / "model.json").exists() and (path / "model" / "model.json").exists():
        path = path / "model"
    doc = json.loads((path / "model.json").read_text())
    ws = []
    for entry in doc["layers"]:
        with np.load(path / entry["file"], allow_pickle=False) as z:
            ws.append(np.asarray(z["w"], dtype=np.float64))
    return ws, str(path)


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls and the last result."""
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder (model.json + layer_<l>.npz); default random")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results file")
    ap.add_argument("--quick", action="store_true", help="one repeat; networkx on at most 20k edges")
    ap.add_argument("--repeat", type=int, default=3, help="repeats per stage (best is reported)")
    ap.add_argument("--nx-max-edges", type=int, default=400_000, help="subsample the networkx graph above this")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    repeat = 1 if args.quick else max(1, args.repeat)
    nx_max_edges = min(args.nx_max_edges, 20_000) if args.quick else args.nx_max_edges

    ws, source = load_weights(args.model, args.seed)
    n_weights = sum(w.size for w in ws)
    threshold = Threshold(sign="positive", quantile=0.9)

    rows: list[tuple[str, float, str]] = []
    t, s = timed(lambda: strengths(ws), repeat)
    rows.append(("strengths", t, f"{n_weights:,} weighted edges"))
    t, wst = timed(lambda: weight_stats(ws), repeat)
    rows.append(("weight_stats", t, f"{len(wst)} values"))
    t, sst = timed(lambda: strength_stats(ws), repeat)
    rows.append(("strength_stats", t, f"{len(sst)} values"))
    t, (masks, thetas) = timed(lambda: threshold_masks(ws, threshold), repeat)
    n_edges = int(sum(int(m.sum()) for m in masks))
    rows.append(("threshold_masks", t, f"positive q=0.9: θ={thetas[0]:.4g}, {n_edges:,} edges"))
    t, degs = timed(lambda: degrees(masks), repeat)
    rows.append(("degrees", t, ""))
    t, knn = timed(lambda: neighbour_degrees(masks, degs, isolated=0.0), repeat)
    rows.append(("neighbour_degrees", t, ""))
    t, r = timed(lambda: degree_assortativity(masks, degs), repeat)
    rows.append(("degree_assortativity", t, f"r={r:.6f}"))
    t, (n_comp, _) = timed(lambda: csgraph.connected_components(block_adjacency(masks), directed=False), repeat)
    rows.append(("components", t, f"{n_comp} components"))
    t, gst = timed(lambda: graph_stats(masks, degs), repeat)
    rows.append(("graph_stats", t, f"{len(gst)} values"))
    total = sum(t for _, t, _ in rows)
    passed = total <= TARGET_S

    # networkx on the same thresholded graph, for comparison (and as a check of the vectorised values)
    sub_masks, subsampled = masks, False
    if n_edges > nx_max_edges:
        rng = np.random.default_rng(args.seed)
        keep = nx_max_edges / n_edges
        sub_masks = [m & (rng.random(m.shape) < keep) for m in masks]
        subsampled = True
    nx_edges = int(sum(int(m.sum()) for m in sub_masks))
    nx_rows: list[tuple[str, float, str]] = []
    t, g = timed(lambda: to_networkx(ws, sub_masks), 1)
    nx_rows.append(("to_networkx", t, f"{nx_edges:,} edges" + (" (random subsample)" if subsampled else "")))
    t_nx_r, r_nx = timed(lambda: nx.degree_assortativity_coefficient(g), 1)
    t_nx_knn, knn_nx = timed(lambda: nx.average_neighbor_degree(g), 1)
    t_us_r, r_us = timed(lambda: degree_assortativity(sub_masks), repeat)
    t_us_knn, knn_us = timed(lambda: neighbour_degrees(sub_masks, isolated=0.0), repeat)
    knn_us_flat = np.concatenate(knn_us)
    knn_nx_flat = np.array([knn_nx[i] for i in range(knn_us_flat.size)])
    r_ok = math.isclose(r_us, r_nx, abs_tol=1e-9)
    knn_ok = bool(np.allclose(knn_us_flat, knn_nx_flat, rtol=1e-12, atol=0))
    nx_rows.append(("nx.degree_assortativity_coefficient", t_nx_r, f"r={r_nx:.6f}; ours {t_us_r:.4f} s"))
    nx_rows.append(("nx.average_neighbor_degree", t_nx_knn, f"ours {t_us_knn:.4f} s"))

    width = max(len(n) for n, _, _ in rows + nx_rows)
    print(f"weights: {source}; shapes {[w.shape for w in ws]}; repeat {repeat} (best)")
    print(f"{'stage':<{width}}  {'seconds':>9}  note")
    for name, t, note in rows:
        print(f"{name:<{width}}  {t:9.4f}  {note}")
    print(f"{'TOTAL':<{width}}  {total:9.4f}  target <= {TARGET_S:g} s: {'PASS' if passed else 'FAIL'}")
    print(f"-- networkx on the thresholded graph{' (random edge subsample)' if subsampled else ''}")
    for name, t, note in nx_rows:
        print(f"{name:<{width}}  {t:9.4f}  {note}")
    speed_r = t_nx_r / max(t_us_r, 1e-9)
    speed_knn = t_nx_knn / max(t_us_knn, 1e-9)
    print(f"speed-up vs networkx: assortativity x{speed_r:,.1f}, k_nn x{speed_knn:,.1f}")
    print(f"equal to networkx: assortativity {'yes' if r_ok else 'NO'}, k_nn {'yes' if knn_ok else 'NO'}")
    print("PASS" if passed and r_ok and knn_ok else "FAIL")

    doc = {
        "source": source,
        "shapes": [list(w.shape) for w in ws],
        "n_weights": n_weights,
        "threshold": {"sign": threshold.sign, "quantile": threshold.quantile, "theta": thetas},
        "n_edges_thresholded": n_edges,
        "repeat": repeat,
        "timings_s": {name: t for name, t, _ in rows},
        "total_s": total,
        "target_s": TARGET_S,
        "pass": passed,
        "networkx": {
            "n_edges": nx_edges,
            "subsampled": subsampled,
            "timings_s": {name: t for name, t, _ in nx_rows},
            "ours_s": {"degree_assortativity": t_us_r, "neighbour_degrees": t_us_knn},
            "assortativity": {"networkx": r_nx, "ours": r_us, "equal": r_ok},
            "knn_equal": knn_ok,
        },
        "graph_stats": gst,
        "env": {
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "networkx": nx.__version__,
            "machine": platform.machine(),
            "processor": platform.processor(),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    print(f"wrote {out}")
    return 0 if passed and r_ok and knn_ok else 1


if __name__ == "__main__":
    sys.exit(main())
