"""Does the approximate EMD change the answer? Cluster-level correlations from ``pooled`` vs ``exact`` partitions.

Usage::

    python benchmarks/bench_emd_structure.py --model RUN/model --tracking-uri sqlite:///mlflow.db \
        --parent <sweep parent run id> [--layers 1 2] [--cache DIR] [--out FILE]

On one trained model (the default run's): the receptive fields of each layer are clustered twice, from all-pairs
``pooled`` EMD and from all-pairs ``exact`` EMD (20 clusters, average linkage, as the default run), and every
cluster-level Pearson r of :mod:`analysis.structure` (all sides, all three pairs, unweighted and size-weighted) is
computed on the same thresholded graph for both partitions. The difference ``Δr = r(pooled) - r(exact)`` is printed
beside the seed-to-seed sd of the same statistic, read from the FINISHED children of a five-seed sweep of the same
configuration in an MLflow store (``clusters/h<l>/<side>/<stat>``). Target: every ``|Δr|`` below its seed sd,
i.e. the method's error is smaller than what changing the seed does. The exact distances are cached (``--cache``),
being the slow part (~5 ms per 784-bin pair).
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
from analysis.communities import partition_agreement
from analysis.receptive_fields import receptive_fields
from dbn_jax.checkpoint import load_dbn

STATS = [f"{k}{w}" for k in S.PAIRS for w in ("", "_weighted")]


def partition_stats(weights: list[np.ndarray], masks: list[np.ndarray], layer: int, labels: np.ndarray) -> dict:
    """``{"<side>/<stat>": r}`` for one partition of one layer."""
    out = {}
    for side in S.layer_sides(layer, len(weights)):
        u = S.unit_structure(weights, masks, layer, side)
        st = S.structure_function_stats(S.cluster_structure(labels, u["degree"], u["strength"], u["knn"]))
        out.update({f"{side}/{k}": st[k] for k in STATS})
    return out


def seed_sd(uri: str, parent: str, keys: list[str]) -> tuple[dict[str, float], int]:
    """sd (ddof=1) over the FINISHED children of ``parent`` of each metric key, and the number of runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    run = client.get_run(parent)
    runs = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{parent}' and attributes.status = 'FINISHED'"
    )
    out = {}
    for key in keys:
        values = [r.data.metrics[key] for r in runs if key in r.data.metrics]
        out[key] = float(np.std(values, ddof=1)) if len(values) >= 2 else float("nan")
    return out, len(runs)


def distances(fields: np.ndarray, method: str, cache: Path | None, tag: str, n_jobs: int | None) -> tuple:
    path = cache / f"{tag}_{method}.npy" if cache else None
    if path is not None and path.is_file():
        return np.load(path, allow_pickle=False), 0.0
    t = time.perf_counter()
    d = E.pairwise_emd(fields, method=method, n_jobs=n_jobs)
    seconds = time.perf_counter() - t
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, d)
    return d, seconds


def run(args: argparse.Namespace) -> dict:
    weights = [np.asarray(p.w, dtype=np.float64) for p in load_dbn(args.model)]
    masks, _ = G.threshold_masks(weights, G.Threshold(sign="positive", quantile=0.9, scope="global"))
    rows, seconds, shapes = [], {}, {}
    for layer in args.layers:
        fields = receptive_fields(weights, layer)
        tag = f"{args.model.resolve().parent.name}_h{layer}"
        per_method = {}
        for method in ("pooled", "exact"):
            d, s = distances(fields, method, args.cache, tag, args.n_jobs)
            seconds[f"h{layer}/{method}"] = s
            cl = C.cluster_fields(d, args.n_clusters, method="average")
            shapes[f"h{layer}/{method}"] = {
                "largest_fraction": float(cl.sizes.max() / cl.sizes.sum()),
                "n_singletons": int(np.sum(cl.sizes == 1)),
            }
            per_method[method] = (cl.labels, partition_stats(weights, masks, layer, cl.labels))
        nmi, ari = partition_agreement(per_method["pooled"][0], per_method["exact"][0])
        shapes[f"h{layer}/pooled_vs_exact"] = {"nmi": nmi, "ari": ari}
        for key, r_exact in per_method["exact"][1].items():
            rows.append(
                {
                    "layer": f"h{layer}",
                    "stat": key,
                    "exact": r_exact,
                    "pooled": per_method["pooled"][1][key],
                    "metric": f"clusters/h{layer}/{key}",
                }
            )
    sd, n_runs = seed_sd(args.tracking_uri, args.parent, [r["metric"] for r in rows])
    for r in rows:
        r["delta"] = r["pooled"] - r["exact"]
        r["seed_sd"] = sd[r["metric"]]
        r["pass"] = bool(np.isfinite(r["delta"]) and np.isfinite(r["seed_sd"]) and abs(r["delta"]) < r["seed_sd"])
    return {
        "model": str(args.model),
        "seed_sweep": {"tracking_uri": args.tracking_uri, "parent": args.parent, "n_runs": n_runs},
        "settings": {"n_clusters": args.n_clusters, "linkage": "average", "threshold": "positive, q=0.9, global"},
        "seconds": seconds,
        "cluster_shapes": shapes,
        "rows": rows,
        "n_pass": sum(r["pass"] for r in rows),
        "n_rows": len(rows),
        "machine": machine_info(),
    }


def table(report: dict) -> str:
    lines = [f"{'statistic':<44} {'exact':>8} {'pooled':>8} {'Δr':>8} {'seed sd':>8}  verdict", "-" * 90]
    for r in report["rows"]:
        verdict = "PASS" if r["pass"] else "FAIL"
        lines.append(
            f"{r['metric']:<44} {r['exact']:>8.3f} {r['pooled']:>8.3f} {r['delta']:>+8.3f} "
            f"{r['seed_sd']:>8.3f}  {verdict}"
        )
    lines.append("-" * 90)
    lines.append(
        f"{report['n_pass']} of {report['n_rows']} with |Δr| < seed sd (sd over "
        f"{report['seed_sweep']['n_runs']} seeds); cluster shapes: {report['cluster_shapes']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="model folder (model.json, layer_<l>.npz)")
    p.add_argument("--tracking-uri", required=True, help="MLflow store of the five-seed sweep")
    p.add_argument("--parent", required=True, help="the sweep's parent run id")
    p.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--n-clusters", type=int, default=20)
    p.add_argument("--n-jobs", type=int, default=None)
    p.add_argument("--cache", type=Path, default=None, help="folder for the distance matrices (.npy)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_emd_structure.json"))
    args = p.parse_args(argv)
    report = run(args)
    write_results(args.out, report, table(report))
    return 0 if report["n_pass"] == report["n_rows"] else 1


if __name__ == "__main__":
    sys.exit(main())
