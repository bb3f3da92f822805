"""What the structure-vs-function statistics cost on a trained model: matched sides, unit-level r, label null.

Usage::

    python benchmarks/bench_structure.py --model RUN/model [--n-permutations 1000] [--repeats 5] [--out FILE]

For each clustered layer (h1, h2) of the model, with a fixed partition into 20 clusters (average linkage on the
``sliced`` EMD, which is quick; the cost measured here does not depend on how the labels were made): the seconds of

* ``one side, as before``: degree and k_nn of the whole graph, out-strength, per-cluster means and the three
  Pearson r (what the analysis computed before the sides were matched);
* ``three sides``: per side (out, in, total) degree, strength and k_nn from that side's edges, per-cluster means,
  unweighted and size-weighted r, and the same r across units;
* ``label null``: ``n_permutations`` random partitions of the same sizes for every side and statistic.

The target: the new statistics (three sides + label null - one side) add <= 2 s per clustered layer and <= 3 s to
the default run. Best of ``--repeats`` runs, side by side in one process.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from common import machine_info, write_results

from analysis import clustering as C
from analysis import emd as E
from analysis import graph as G
from analysis import structure as S
from analysis.receptive_fields import receptive_fields
from dbn_jax.checkpoint import load_dbn


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run(args: argparse.Namespace) -> dict:
    weights = [np.asarray(p.w, dtype=np.float64) for p in load_dbn(args.model)]
    masks, _ = G.threshold_masks(weights, G.Threshold(sign="positive", quantile=0.9))
    rows = {}
    for layer in args.layers:
        fields = receptive_fields(weights, layer)
        labels = C.cluster_fields(E.pairwise_emd(fields, method="sliced", n_jobs=1), 20).labels

        def one_side(layer=layer, labels=labels):
            degs = G.degrees(masks)
            knn = G.neighbour_degrees(masks, degs)
            s = G.strengths(weights)[layer]["out"]
            S.structure_function_stats(S.cluster_structure(labels, degs[layer], s, knn[layer]))

        state = {}

        def three_sides(layer=layer, labels=labels, state=state):
            units, observed = {}, {}
            for side in S.layer_sides(layer, len(weights)):
                units[side] = u = S.unit_structure(weights, masks, layer, side)
                observed[side] = S.structure_function_stats(S.cluster_structure(labels, **u))
                S.unit_stats(u)
            state["units"], state["observed"] = units, observed

        def label_null(labels=labels, state=state):
            S.label_permutation_null(labels, state["units"], state["observed"], args.n_permutations, [0, 1])

        before = best(one_side, args.repeats)
        sides = best(three_sides, args.repeats)
        null = best(label_null, args.repeats)
        rows[f"h{layer}"] = {
            "one_side_seconds": before,
            "three_sides_seconds": sides,
            "label_null_seconds": null,
            "added_seconds": sides + null - before,
            "n_units": int(labels.size),
        }
    added = sum(r["added_seconds"] for r in rows.values())
    return {
        "model": str(args.model),
        "n_permutations": args.n_permutations,
        "layers": rows,
        "added_seconds_total": added,
        "checks": {
            "per_layer_le_2s": all(r["added_seconds"] <= 2.0 for r in rows.values()),
            "total_le_3s": added <= 3.0,
        },
        "machine": machine_info(),
    }


def table(report: dict) -> str:
    head = f"{'layer':<6} {'one side (s)':>13} {'3 sides (s)':>12} {'label null (s)':>15} {'added (s)':>10}"
    lines = [head, "-" * len(head)]
    for name, r in report["layers"].items():
        lines.append(f"{name:<6} {r['one_side_seconds']:>13.3f} {r['three_sides_seconds']:>12.3f} "
                     f"{r['label_null_seconds']:>15.3f} {r['added_seconds']:>10.3f}")  # fmt: skip
    lines.append("-" * len(head))
    checks = report["checks"]
    lines.append(f"added in all: {report['added_seconds_total']:.3f} s ({report['n_permutations']} permutations); "
                 f"<= 2 s per layer: {'PASS' if checks['per_layer_le_2s'] else 'FAIL'}; "
                 f"<= 3 s in all: {'PASS' if checks['total_le_3s'] else 'FAIL'}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="model folder (model.json, layer_<l>.npz)")
    p.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--n-permutations", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_structure.json"))
    args = p.parse_args(argv)
    report = run(args)
    write_results(args.out, report, table(report))
    return 0 if all(report["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
