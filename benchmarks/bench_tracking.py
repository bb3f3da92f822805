"""Logging overhead: wall time of the same run with MLflow tracking on (SQLite store) and off (in-memory tracker).

Runs ``python -m dbn_experiment <overrides>`` as a user does, ``tracking=mlflow`` and ``tracking=off`` back to
back in each round (so both see the same machine load), each in a fresh folder, into an existing store (as every
run after a user's first). The verdict is the median over rounds of the per-round overhead ``(on - off) / off``.
Targets: <= 5% of the default run, <= 2% of the paper-scale run (``--paper DIR``: full MNIST in DIR, the paper's
784-500-500-2000 and analysis, ``train.epochs`` kept small: the per-epoch cost of logging is a smaller share of a
longer run, so few epochs bound the paper's 50 from above).

Usage::

    python benchmarks/bench_tracking.py                          # the default run, 3 rounds
    python benchmarks/bench_tracking.py --paper ../shared/data/mnist --rounds 2
    python benchmarks/bench_tracking.py --rounds 2 -- experiment=smoke
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, write_results  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MODES = {"mlflow": ["tracking=mlflow"], "off": ["tracking=off"]}


def _wall(overrides: list[str], mode: str, store: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
        t0 = time.perf_counter()
        command = [sys.executable, "-m", "dbn_experiment", *overrides, *MODES[mode], f"hydra.run.dir={tmp}/out"]
        proc = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        return time.perf_counter() - t0


def _stored_keys(store: Path) -> list[str]:
    """The metric keys of the newest tracked run (to show that no tracker bookkeeping is logged)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], order_by=["start_time DESC"])
    return sorted(runs[0].data.metrics)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--paper", type=Path, help="folder of the full MNIST IDX files: the paper-scale run")
    ap.add_argument("--epochs", type=int, default=2, help="train.epochs of the paper-scale run")
    ap.add_argument("--out", type=Path)
    ap.add_argument("overrides", nargs="*", help="extra overrides for every run (after --)")
    args = ap.parse_args()
    overrides = list(args.overrides)
    name, target = "default", 0.05
    if args.paper:
        name, target = "paper", 0.02
        overrides = ["experiment=testolin2018", "dataset=idx", f"dataset.path={args.paper.resolve()}",
                     f"train.epochs={args.epochs}", *overrides]  # fmt: skip
    times: dict[str, list[float]] = {m: [] for m in MODES}
    with tempfile.TemporaryDirectory() as store_dir:
        store = Path(store_dir)
        _wall(["experiment=smoke", "analysis=none", "readout.enabled=false"], "mlflow", store)  # the store exists
        for _ in range(args.rounds):
            for mode in MODES:
                times[mode].append(_wall(overrides, mode, store))
        keys = _stored_keys(store)
    per_round = [(a - b) / b for a, b in zip(times["mlflow"], times["off"], strict=True)]
    verdict = statistics.median(per_round)
    bookkeeping = [k for k in keys if k.startswith("time/tracking")]
    timing_keys = [k for k in keys if k.startswith("time/")]
    lines = [
        f"run: dbn-experiment {' '.join(overrides) or '(defaults)'}; {args.rounds} paired rounds",
        f"{'round':<6} {'tracking=mlflow s':>18} {'tracking=off s':>15} {'overhead':>9}",
        *(
            f"{i:<6} {a:18.2f} {b:15.2f} {r * 100:+8.1f}%"
            for i, (a, b, r) in enumerate(zip(times["mlflow"], times["off"], per_round, strict=True), 1)
        ),  # fmt: skip
        f"overhead (median of the paired rounds) {verdict * 100:+.1f}%, target <= {target * 100:.0f}%: "
        f"{'PASS' if verdict <= target else 'FAIL'}",
        f"metrics in the run: {len(keys)}; time/* keys {len(timing_keys)}; tracker bookkeeping keys "
        f"{len(bookkeeping)}",
    ]
    report = {
        "benchmark": f"bench_tracking ({name} run)",
        "machine": machine_info(),
        "overrides": overrides,
        "rounds": args.rounds,
        "times_s": times,
        "overhead_per_round": per_round,
        "overhead_median": verdict,
        "target": target,
        "passed": verdict <= target,
        "n_metrics": len(keys),
        "time_keys": timing_keys,
        "tracker_bookkeeping_keys": bookkeeping,
    }
    out = args.out or RESULTS / ("bench_tracking.json" if name == "default" else "bench_tracking_paper.json")
    write_results(out, report, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
