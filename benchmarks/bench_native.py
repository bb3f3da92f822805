"""What MLflow-native runs cost: the default run with this tree's code against the same run with the code of an
earlier commit (``--baseline``, default the commit before dataset inputs, system metrics, the pyfunc model, the
stepped images and ``config_hash`` came in), both tracked to a SQLite store.

The baseline runs from a ``git worktree`` of that commit (put first on ``PYTHONPATH``, its ``conf/`` linked as
``dbn_experiment/conf``, in this venv), so both see the same packages. ``before`` and ``after`` run back to back
in each round (the same machine load); the verdict is the median over rounds of ``after - before`` in seconds.
Target: <= 2 s.

Usage::

    python benchmarks/bench_native.py                     # the default run, 3 rounds
    python benchmarks/bench_native.py --rounds 2 -- experiment=smoke
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

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
BASELINE = "41def9f"  # main before issue 16's MLflow-native runs


def _wall(overrides: list[str], store: Path, code: Path | None) -> float:
    """Seconds of one ``python -m dbn_experiment`` run, with the code of ``code`` (a worktree) or this tree."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
        if code is not None:
            env["PYTHONPATH"] = os.pathsep.join([str(code), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        t0 = time.perf_counter()
        command = [sys.executable, "-m", "dbn_experiment", *overrides, f"hydra.run.dir={tmp}/out"]
        proc = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        return time.perf_counter() - t0


def _check_code(code: Path | None, store: Path) -> str:
    """The file ``dbn_experiment`` is imported from (shows which tree a run used)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    probe = "import dbn_experiment.conf as c, dbn_experiment.app as a; print(a.__file__, c.__file__)"
    return subprocess.run([sys.executable, "-c", probe], env=env, cwd=store, capture_output=True, text=True,
                          check=True).stdout.strip()  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline", default=BASELINE)
    ap.add_argument("--out", type=Path, default=RESULTS / "bench_native.json")
    ap.add_argument("overrides", nargs="*", help="extra overrides for every run (after --)")
    args = ap.parse_args()
    times: dict[str, list[float]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as work:
        tree = Path(work) / "baseline"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), args.baseline],
                       check=True, capture_output=True)  # fmt: skip
        try:
            (tree / "dbn_experiment" / "conf").symlink_to(tree / "conf", target_is_directory=True)
            store = Path(work) / "store"
            store.mkdir()
            used = {"before": _check_code(tree, store), "after": _check_code(None, store)}
            assert str(tree) in used["before"] and str(tree) not in used["after"], used
            warm = ["experiment=smoke", "analysis=none", "readout.enabled=false"]
            _wall(warm, store, tree)  # the store exists (as for every run after a user's first)
            for _ in range(args.rounds):
                times["before"].append(_wall(args.overrides, store, tree))
                times["after"].append(_wall(args.overrides, store, None))
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    added = [a - b for a, b in zip(times["after"], times["before"], strict=True)]
    verdict = statistics.median(added)
    lines = [
        f"run: dbn-experiment {' '.join(args.overrides) or '(defaults)'}; {args.rounds} paired rounds; "
        f"before = {args.baseline}, after = this tree",
        f"{'round':<6} {'before s':>9} {'after s':>9} {'added s':>8}",
        *(
            f"{i:<6} {b:9.2f} {a:9.2f} {d:+8.2f}"
            for i, (b, a, d) in enumerate(zip(times["before"], times["after"], added, strict=True), 1)
        ),  # fmt: skip
        f"added (median of the paired rounds) {verdict:+.2f} s, target <= 2 s: "
        f"{'PASS' if verdict <= 2 else 'FAIL'}",
    ]
    report = {
        "benchmark": "bench_native (dataset inputs, system metrics, pyfunc model, stepped images, config_hash)",
        "machine": machine_info(),
        "baseline": args.baseline,
        "overrides": args.overrides,
        "rounds": args.rounds,
        "times_s": times,
        "added_per_round_s": added,
        "added_median_s": verdict,
        "target_s": 2.0,
        "passed": verdict <= 2.0,
    }
    write_results(args.out, report, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
