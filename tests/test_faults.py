"""Faults: an unreachable tracking server, divergence, an exception in an analysis callback, kill -9 and resume."""

from __future__ import annotations

import time

import pytest
from conftest import free_port, metric_histories, store_runs


@pytest.mark.parametrize("multirun", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["run", "multirun"])
def test_unreachable_tracking_server_fails_fast_with_one_line(tmp_path, data_cache, cli, multirun):
    uri = f"http://127.0.0.1:{free_port()}"
    secret_uri = uri.replace("http://", "http://alice:hunter2@")
    args = ["experiment=smoke", f"tracking.uri={secret_uri}", f"hydra.run.dir={tmp_path}/out",
            f"hydra.sweep.dir={tmp_path}/sw"]  # fmt: skip
    if multirun:
        args = ["-m", *args, "seed=0,1"]
    start = time.monotonic()
    proc = cli(args, tmp_path, {"DBN_DATA_DIR": str(data_cache)}, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert elapsed < 30
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    masked = uri.replace("http://", "http://alice:***@")
    assert lines[-1].startswith(f"error: tracking.uri={masked} is not reachable"), proc.stderr[-2000:]
    assert "hunter2" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("state.npz")) and not list(tmp_path.rglob("mlflow.db"))  # nothing trained


def _only_run(store: str):
    (run,) = store_runs(store)
    return run


def test_divergence_fails_the_run_naming_layer_epoch_and_cause_and_keeps_the_good_checkpoint(
    tmp_path, data_cache, cli
):
    import numpy as np

    from dbn_jax.checkpoint import load_state

    out = tmp_path / "out"
    proc = cli(["experiment=smoke", "train.learning_rate=1e38", "analysis=none", f"hydra.run.dir={out}"],
               tmp_path, {"DBN_DATA_DIR": str(data_cache)})  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: layer h1 diverged in epoch 1: non-finite w"), line
    assert "train.learning_rate=1e+38 is too large" in line and "Traceback" not in proc.stderr
    run = _only_run(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("Diverged: layer h1 diverged in epoch 1")
    meta, done, leaves = load_state(out / "checkpoint" / "state.npz")
    assert (meta["layer"], meta["epoch"]) == (1, 0)  # the last good state, not the diverged one
    assert all(np.isfinite(leaf).all() for leaf in leaves if np.issubdtype(leaf.dtype, np.floating))
    assert not (out / "model").exists()


def test_an_exception_in_an_analysis_callback_fails_the_run_with_its_message(tmp_path, data_cache, cli):
    (tmp_path / "broken_callback.py").write_text(
        "from analysis.events import TrainEnd\n"
        "class Boom:\n"
        "    every_n_epochs = 0\n"
        "    def __call__(self, event):\n"
        "        if isinstance(event, TrainEnd):\n"
        "            raise RuntimeError('statistic exploded')\n"
    )
    proc = cli(["experiment=smoke", "readout.enabled=false", f"hydra.run.dir={tmp_path}/out",
                "analysis=none", "+analysis.callbacks.boom={_target_: broken_callback.Boom}"],
               tmp_path, {"DBN_DATA_DIR": str(data_cache), "PYTHONPATH": str(tmp_path)})  # fmt: skip
    assert proc.returncode != 0
    assert "statistic exploded" in proc.stderr
    run = _only_run(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "RuntimeError: statistic exploded"
    assert run.data.metrics["train/h1/recon_error"] > 0  # what was logged before the failure is kept


# Trackers whose store is slow (each batch of metrics takes it 1 s) or that hang in start-up, for the kill tests:
# progress must not depend on them. Test code, imported by the app through `tracking._target_`.
SLOW_TRACKERS = """
import pathlib, time
from dbn_experiment.tracking import MlflowTracker


class SlowStore(MlflowTracker):
    def _connect(self):
        super()._connect()
        real = self.client.log_batch

        def slow(*args, **kwargs):
            if kwargs.get("metrics"):
                time.sleep(1.0)
            return real(*args, **kwargs)

        self.client.log_batch = slow


class HangsInStartUp(MlflowTracker):
    def start_run(self, *args, **kwargs):
        super().start_run(*args, **kwargs)
        self.wait()
        pathlib.Path("run_started").write_text(self.run_id)
        time.sleep(600)
"""
# With the weight statistics every 5 epochs: a run killed in a later layer must not log a layer's final
# statistics twice when the resumed process logs them again at the end.
WEIGHTS = "+analysis.callbacks.weights={_target_: analysis.callbacks.WeightStatsCallback, every_n_epochs: 5}"
COMMON = ["experiment=smoke", "train.epochs=8", "analysis=none", "readout.enabled=false", WEIGHTS]


def _app(args, cwd, env, **kw):
    import subprocess
    import sys

    cwd.mkdir(parents=True, exist_ok=True)
    kw.setdefault("stdout", subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-m", "dbn_experiment", *COMMON, *args], cwd=cwd, env=env,
                            stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip


@pytest.fixture(scope="module")
def kill_env(tmp_path_factory, data_cache):
    """The environment of the kill tests (the slow trackers importable) and an uninterrupted reference run."""
    import os

    root = tmp_path_factory.mktemp("kill")
    (root / "slow_trackers.py").write_text(SLOW_TRACKERS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(DBN_DATA_DIR=str(data_cache), PYTHONPATH=os.pathsep.join([str(root), env.get("PYTHONPATH", "")]))
    ref = _app([f"hydra.run.dir={root}/ref/out"], root / "ref", env)
    assert ref.wait(timeout=300) == 0, ref.stderr.read()[-3000:]
    return env, root / "ref"


def _wait_for_checkpoint(proc, state, at_least):
    from dbn_jax.checkpoint import load_state

    deadline, at = time.time() + 240, (0, -1)
    while at < at_least and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
        if state.exists():
            try:
                meta = load_state(state)[0]
            except (OSError, ValueError, KeyError):  # replaced while being read: read again
                continue
            at = (meta["layer"], meta["epoch"])
    assert at >= at_least and proc.poll() is None, f"the process ended before {at_least}: {at}"
    return at


def _check_resumed(work, ref, first, second):
    """Weights bit-identical to the uninterrupted run; the dead run KILLED and linked; the new run FINISHED with
    every metric history of the uninterrupted run, no step twice."""
    import json

    import numpy as np

    from dbn_jax import load_dbn

    for a, b in zip(load_dbn(work / second / "model"), load_dbn(ref / "out" / "model"), strict=True):
        for x, y in zip(a, b, strict=True):
            assert np.array_equal(np.asarray(x), np.asarray(y))
    store = f"sqlite:///{work / 'mlflow.db'}"
    runs = {r.info.run_id: r for r in store_runs(store)}
    assert len(runs) == 2
    new_id = json.loads((work / second / "tracking.json").read_text())["run_id"]
    (dead_id,) = set(runs) - {new_id}
    assert runs[dead_id].info.status == "KILLED" and runs[dead_id].data.tags["resumed_by"] == new_id
    assert runs[dead_id].data.tags["output_dir"] == str(work / first)
    assert runs[new_id].info.status == "FINISHED" and runs[new_id].data.tags["resumed_from_run"] == dead_id
    # system/* are samples of the machine while a process ran (MLflow's monitor), not part of the run's record.
    new = {k: v for k, v in metric_histories(store, new_id).items() if not k.startswith("system/")}
    ref_store = f"sqlite:///{ref / 'mlflow.db'}"
    (ref_run,) = store_runs(ref_store)
    expected = {k: v for k, v in metric_histories(ref_store, ref_run.info.run_id).items()
                if not k.startswith("system/")}  # fmt: skip
    assert sorted(expected) == sorted(new)  # every key, the timings included
    for key in expected:
        steps = [s for s, _ in new[key]]
        assert len(steps) == len(set(steps)), f"{key}: a step logged twice"
        assert steps == [s for s, _ in expected[key]], key  # every step present
        if not key.startswith("time/"):
            assert new[key] == expected[key], key  # values equal to the uninterrupted run
    return runs[dead_id], dead_id


@pytest.mark.parametrize(
    ("tracker", "kill_at"),
    [("slow_trackers.SlowStore", (1, 1)), pytest.param("dbn_experiment.tracking.MlflowTracker", (3, 5),
                                                       marks=pytest.mark.slow)],
    ids=["slow-store-after-first-epoch", "layer-3"],
)  # fmt: skip
def test_kill_9_then_resume_is_bit_identical_with_the_whole_record(kill_env, tmp_path, tracker, kill_at):
    """kill -9 once an epoch has ended, whatever the tracker is doing (here: a store that has not written the
    epochs yet), then resume=<run dir>: the job's own checkpoint carries the weights and the metric record."""
    import signal

    from mlflow.tracking import MlflowClient

    from dbn_jax.checkpoint import load_state

    env, ref = kill_env
    work = tmp_path / "work"
    work.mkdir()
    # An existing store (as for every run after a user's first): creating one takes the writer seconds, in which
    # this small run could finish training before its run exists.
    MlflowClient(f"sqlite:///{work / 'mlflow.db'}").search_experiments()
    first = _app([f"tracking._target_={tracker}", f"hydra.run.dir={work}/first"], work, env)
    state = work / "first" / "checkpoint" / "state.npz"
    _wait_for_checkpoint(first, state, kill_at)
    deadline = time.time() + 60  # the run exists in the store (the job notes it at a checkpoint)
    while not (work / "first" / "tracking.json").exists() and time.time() < deadline:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    killed_at = load_state(state)[0]
    assert (killed_at["layer"], killed_at["epoch"]) < (3, 8)  # killed before the end of training
    client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
    (dead,) = store_runs(f"sqlite:///{work / 'mlflow.db'}")
    stored = len(client.get_metric_history(dead.info.run_id, "train/h1/recon_error"))
    if tracker.startswith("slow"):  # the store was behind the checkpoint: the record fills the gap
        assert stored < killed_at["epoch"] + 1

    second = _app([f"resume={work}/first", f"hydra.run.dir={work}/second"], work, env)
    assert second.wait(timeout=300) == 0, second.stderr.read()[-3000:]
    _check_resumed(work, ref, "first", "second")


def test_kill_9_during_start_up_then_resume_starts_the_run_from_scratch(kill_env, tmp_path):
    """A job killed after its run exists but before any epoch ended, requeued with its command line unchanged
    (resume= its own dir): it starts from scratch in the same dir with one warning, the dead run KILLED."""
    import signal

    env, ref = kill_env
    work = tmp_path / "work"
    args = [f"resume={work}/job", f"hydra.run.dir={work}/job"]  # the requeue: the same line both times
    first = _app(["tracking._target_=slow_trackers.HangsInStartUp", *args], work, env)
    deadline = time.time() + 120
    while not (work / "run_started").exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert (work / "run_started").exists(), first.stderr.read()[-3000:] if first.poll() is not None else "hung"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert not (work / "job" / "checkpoint").exists()
    import subprocess

    second = _app(args, work, env, stdout=subprocess.PIPE)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]
    warned = [line for line in out.splitlines() if "holds no checkpoint yet" in line]
    assert len(warned) == 1 and "[WARNING]" in warned[0] and "starting it from scratch" in warned[0]
    _check_resumed(work, ref, "job", "job")


def test_resume_of_a_folder_without_a_run_is_a_clear_error(tmp_path, data_cache, cli):
    (tmp_path / "empty").mkdir()
    proc = cli(["experiment=smoke", f"resume={tmp_path}/empty", f"hydra.run.dir={tmp_path}/out"], tmp_path,
               {"DBN_DATA_DIR": str(data_cache)})  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: invalid config: resume='{tmp_path}/empty'")


def test_no_pickle_in_the_code_that_reads_data_checkpoints_or_caches():
    """Every ``np.load`` of the package passes ``allow_pickle=False``; nothing imports pickle to store data."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    loads = 0
    packages = ("dbn_jax", "analysis", "dbn_experiment")
    for path in [*(p for d in packages for p in root.glob(f"{d}/**/*.py")), *root.glob("benchmarks/*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] in {"pickle", "cloudpickle", "dill"} for n in names), path
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
                if getattr(node.func.value, "id", "") == "np":
                    loads += 1
                    flags = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
                    assert flags.get("allow_pickle") is False, f"{path}:{node.lineno}: allow_pickle not False"
    assert loads >= 4  # data cache, model, training state, benchmark model reader


def test_resuming_a_finished_run_is_refused_and_leaves_one_finished_run(tmp_path, data_cache, cli):

    env = {"DBN_DATA_DIR": str(data_cache)}
    fast = ["experiment=smoke", "analysis=none", "readout.enabled=false"]
    done = cli([*fast, f"hydra.run.dir={tmp_path}/a"], tmp_path, env)
    assert done.returncode == 0, done.stderr[-2000:]
    again = cli([*fast, f"resume={tmp_path}/a", f"hydra.run.dir={tmp_path}/b"], tmp_path, env)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1].startswith(f"error: invalid config: resume='{tmp_path}/a': run ")
    assert "FINISHED: there is nothing to resume" in again.stderr
    runs = store_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    assert not (tmp_path / "b" / "model").exists()
