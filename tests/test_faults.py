"""Faults: an unreachable tracking server, divergence, an exception in an analysis callback, kill -9 and resume."""

from __future__ import annotations

import socket
import time

import pytest


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "multirun"])
def test_unreachable_tracking_server_fails_fast_with_one_line(tmp_path, data_cache, cli, multirun):
    uri = f"http://127.0.0.1:{_closed_port()}"
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
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    return runs[0]


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
        "class Boom:\n"
        "    every_n_epochs = 0\n"
        "    def __call__(self, event):\n"
        "        if type(event).__name__ == 'TrainEnd':\n"
        "            raise RuntimeError('statistic exploded')\n"
    )
    proc = cli(["experiment=smoke", "readout.enabled=false", f"hydra.run.dir={tmp_path}/out",
                "analysis=none", "analysis.callbacks=[{_target_: broken_callback.Boom}]"],
               tmp_path, {"DBN_DATA_DIR": str(data_cache), "PYTHONPATH": str(tmp_path)})  # fmt: skip
    assert proc.returncode != 0
    assert "statistic exploded" in proc.stderr
    run = _only_run(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "RuntimeError: statistic exploded"
    assert run.data.metrics["train/h1/recon_error"] > 0  # what was logged before the failure is kept


def _metric_histories(store: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    keys = client.get_run(run_id).data.metrics
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in keys}


@pytest.mark.parametrize("kill_layer", [pytest.param(1, marks=pytest.mark.slow), 3])
def test_kill_9_then_resume_is_bit_identical_and_linked_in_mlflow(tmp_path, data_cache, kill_layer):
    import json
    import os
    import signal
    import subprocess
    import sys

    import numpy as np
    from mlflow.tracking import MlflowClient

    from dbn_jax import load_dbn
    from dbn_jax.checkpoint import load_state

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["DBN_DATA_DIR"] = str(data_cache)
    common = ["experiment=smoke", "train.epochs=60", "analysis=none", "readout.enabled=false"]

    def app(args, cwd, **kw):
        cwd.mkdir(exist_ok=True)
        return subprocess.Popen([sys.executable, "-m", "dbn_experiment", *common, *args], cwd=cwd, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)  # fmt: skip

    ref = app([f"hydra.run.dir={tmp_path}/ref/out"], tmp_path / "ref")
    assert ref.wait(timeout=300) == 0, ref.stderr.read()[-3000:]

    work = tmp_path / "work"
    first = app([f"hydra.run.dir={work}/first"], work)
    state = work / "first" / "checkpoint" / "state.npz"
    deadline = time.time() + 240
    at = (0, 0)
    while at < (kill_layer, 5) and time.time() < deadline and first.poll() is None:
        time.sleep(0.02)
        if state.exists():
            try:
                meta = load_state(state)[0]
            except (OSError, ValueError, KeyError):  # replaced while being read: read again
                continue
            at = (meta["layer"], meta["epoch"])
    assert at >= (kill_layer, 5) and first.poll() is None, f"the process ended before layer {kill_layer}: {at}"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    killed_at = load_state(state)[0]
    assert (killed_at["layer"], killed_at["epoch"]) < (3, 60)  # killed before the end of training

    second = app([f"resume={work}/first", f"hydra.run.dir={work}/second"], work)
    assert second.wait(timeout=300) == 0, second.stderr.read()[-3000:]

    # The weights: bit-identical to the uninterrupted run.
    resumed, uninterrupted = load_dbn(work / "second" / "model"), load_dbn(tmp_path / "ref" / "out" / "model")
    for a, b in zip(resumed, uninterrupted, strict=True):
        for x, y in zip(a, b, strict=True):
            assert np.array_equal(np.asarray(x), np.asarray(y))

    # MLflow: the dead run KILLED and linked, the new one FINISHED with the whole record and no step twice.
    store = f"sqlite:///{work / 'mlflow.db'}"
    client = MlflowClient(store)
    runs = {r.info.run_id: r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])}
    assert len(runs) == 2
    dead_id = json.loads((work / "first" / "tracking.json").read_text())["run_id"]
    new_id = json.loads((work / "second" / "tracking.json").read_text())["run_id"]
    assert runs[dead_id].info.status == "KILLED" and runs[dead_id].data.tags["resumed_by"] == new_id
    assert runs[new_id].info.status == "FINISHED" and runs[new_id].data.tags["resumed_from_run"] == dead_id
    new = _metric_histories(store, new_id)
    ref_store = f"sqlite:///{tmp_path / 'ref' / 'mlflow.db'}"
    ref_client = MlflowClient(ref_store)
    ref_run = ref_client.search_runs([e.experiment_id for e in ref_client.search_experiments()])
    expected = _metric_histories(ref_store, ref_run[0].info.run_id)
    train_keys = sorted(k for k in expected if k.startswith("train/"))
    assert train_keys and train_keys == sorted(k for k in new if k.startswith("train/"))
    for key in train_keys:
        steps = [s for s, _ in new[key]]
        assert len(steps) == len(set(steps)), f"{key}: a step logged twice"
        assert new[key] == expected[key], key  # every epoch present, values equal to the uninterrupted run


def test_no_pickle_in_the_code_that_reads_data_checkpoints_or_caches():
    """Every ``np.load`` of the package passes ``allow_pickle=False``; nothing imports pickle to store data (the
    tracker's calls to its own writer process go through multiprocessing's pipe, which pickles them in memory)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    loads = 0
    for path in [*root.glob("dbn_jax/**/*.py"), *root.glob("analysis/**/*.py"), *root.glob("benchmarks/*.py")]:
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
    from mlflow.tracking import MlflowClient

    env = {"DBN_DATA_DIR": str(data_cache)}
    fast = ["experiment=smoke", "analysis=none", "readout.enabled=false"]
    done = cli([*fast, f"hydra.run.dir={tmp_path}/a"], tmp_path, env)
    assert done.returncode == 0, done.stderr[-2000:]
    again = cli([*fast, f"resume={tmp_path}/a", f"hydra.run.dir={tmp_path}/b"], tmp_path, env)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines()[-1].startswith(f"error: invalid config: resume='{tmp_path}/a': run ")
    assert "FINISHED: there is nothing to resume" in again.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(r.info.status for r in runs) == ["FAILED", "FINISHED"]
    assert not (tmp_path / "b" / "model").exists()
