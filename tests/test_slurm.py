"""The SLURM path for real: a throwaway single-node SLURM cluster on 127.0.0.1 (Debian's ``slurm-wlm`` and
``munge``), an ``mlflow server`` on SQLite, and ``hydra/launcher=submitit_slurm`` sweeps whose jobs sbatch runs
on that cluster and that log to the server over HTTP; one sweep ends with a job cancelled by ``scancel``.

Everything lives in a pytest tmp dir: its own munge key and ``munged``, ``slurm.conf``, ``slurmctld`` and
``slurmd``, run as the user running pytest (root or not: SlurmUser = SlurmdUser = that user, whose jobs they run)
and stopped at teardown even when a test fails. Without the binaries the tests fail, they do not skip. Run them
with ``pytest -m slow tests/test_slurm.py``.

The cluster has no accounting database (slurmdbd needs MySQL/MariaDB), so the real ``sacct`` only answers "Slurm
accounting storage is disabled". submitit needs ``sacct`` for one thing: the state of a job that left no result
file, i.e. a job killed from outside (a finished or failed job writes one); without an answer it waits forever on
a cancelled job. So the sweep's PATH starts with a ``sacct`` that answers submitit's query
(``sacct -o JobID,State,NodeList --parsable2 -j ID...``) from ``squeue --states=all`` (slurmctld keeps every
finished job ``MinJobAge`` seconds). Everything else is the real thing: sbatch, the job array, srun, scancel.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import free_port
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo", "srun")
PARTITION = "dbn"
KILL_WAIT = 30  # seconds between scancel's SIGTERM and SIGKILL: the job closes its MLflow run in between
EXPERIMENT = "dbn-complex-networks"
# A job of a few seconds: smoke-size data and model, one epoch per layer, no analysis, no read-out.
QUICK = ["experiment=smoke", "analysis=none", "readout.enabled=false"]

# submitit's only sacct query, answered from slurmctld (see the module docstring). squeue prints array tasks as
# <array id>_<task>, as sacct does, and the states by the same names (COMPLETED, CANCELLED, RUNNING, ...).
SACCT_FROM_SQUEUE = """\
#!/bin/sh
# sacct for a cluster without slurmdbd: `sacct ... -j ID [-j ID ...]` -> JobID|State|NodeList from squeue.
ids=""
while [ $# -gt 0 ]; do
  case "$1" in
    -j) ids="$ids${ids:+,}$2"; shift 2 ;;
    *) shift ;;
  esac
done
echo "JobID|State|NodeList"
exec squeue --noheader --states=all --jobs="$ids" --format="%i|%T|%N"
"""


def _find(name: str) -> str | None:
    """``name`` on PATH or in the sbin dirs (not on a normal user's PATH on Debian)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")


def _binaries() -> dict[str, str]:
    found = {name: _find(name) for name in (*DAEMONS, *CLIENTS)}
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        pytest.fail(
            f"SLURM/munge binaries not found: {', '.join(missing)}: install them, e.g. "
            "`apt-get install slurm-wlm munge` (CI does)",
            pytrace=False,
        )
    return found  # type: ignore[return-value]


@dataclass
class Cluster:
    conf: Path
    root: Path
    env: dict[str, str]  # SLURM_CONF and the PATH with the sacct shim: for the app and for the SLURM clients
    node: str

    def run(self, *cmd: str, check: bool = True) -> str:
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}\n{self.logs()}")
        return proc.stdout

    def jobs(self) -> dict[str, str]:
        """``{job id: state}`` of every job slurmctld knows, finished ones included (``<array>_<task>`` ids)."""
        out = self.run("squeue", "--noheader", "--states=all", "--format=%i|%T")
        return dict(line.split("|") for line in out.split())

    def final_states(self, ids: list[str], timeout: float = 60) -> list[str]:
        """The states of jobs ``ids`` once none is pending or running any more (a job's result file is written
        before its process exits, so the sweep can return while slurmctld still counts the job as running)."""
        deadline = time.time() + timeout
        while True:
            jobs = self.jobs()
            states = [jobs.get(i, "UNKNOWN") for i in ids]
            if not set(states) & {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING"} or time.time() > deadline:
                return states
            time.sleep(0.5)

    def logs(self) -> str:
        files = sorted((self.root / "log").glob("*"))
        return "\n".join(f"--- {p.name}:\n{p.read_text(errors='replace')[-3000:]}" for p in files)


def _write_conf(root: Path, node: str, user: str, munge_socket: Path) -> Path:
    ctld_port, slurmd_port = free_port(), free_port()
    conf = root / "slurm.conf"
    conf.write_text(
        textwrap.dedent(f"""\
        # A throwaway single-node cluster for tests/test_slurm.py.
        ClusterName=dbntest
        SlurmctldHost={node}(127.0.0.1)
        SlurmctldPort={ctld_port}
        SlurmdPort={slurmd_port}
        # Our own munged, with our own key, behind our own socket (used by auth/munge and cred/munge).
        AuthType=auth/munge
        CredType=cred/munge
        AuthInfo=socket={munge_socket}
        SlurmUser={user}
        SlurmdUser={user}
        StateSaveLocation={root}/state
        SlurmdSpoolDir={root}/spool
        SlurmctldPidFile={root}/slurmctld.pid
        SlurmdPidFile={root}/slurmd.pid
        SlurmctldLogFile={root}/log/slurmctld.log
        SlurmdLogFile={root}/log/slurmd.log
        # No cgroups: those plugins need root, a cgroup.conf and write into the machine's cgroup tree (which most
        # containers do not allow). Jobs are tracked by their process tree, not confined or bound to CPUs, and no
        # resource usage is gathered.
        ProctrackType=proctrack/linuxproc
        TaskPlugin=task/none
        JobAcctGatherType=jobacct_gather/none
        # No slurmdbd: sacct does not work (see the module docstring); jobs' states come from slurmctld, which
        # keeps finished jobs MinJobAge seconds.
        AccountingStorageType=accounting_storage/none
        JobCompType=jobcomp/none
        MinJobAge=3600
        # CPUs are the only consumable: jobs ask for none of the node's memory.
        SelectType=select/cons_tres
        SelectTypeParameters=CR_CPU
        SchedulerType=sched/builtin
        MpiDefault=none
        SwitchType=switch/none
        MailProg=/bin/true
        # A node that was DOWN (e.g. slurmd started after slurmctld) comes back as soon as it registers.
        ReturnToService=2
        # scancel: SIGTERM, then SIGKILL after KillWait seconds.
        KillWait={KILL_WAIT}
        InactiveLimit=0
        NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory=1000 State=UNKNOWN
        PartitionName={PARTITION} Nodes={node} Default=YES MaxTime=INFINITE State=UP
        """)
    )
    return conf


def _stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A single-node SLURM cluster on 127.0.0.1 with its own munged; yields a :class:`Cluster`."""
    binaries = _binaries()
    root = tmp_path_factory.mktemp("slurm")
    for d in ("state", "spool", "log", "munge", "bin"):
        (root / d).mkdir()
    munge_socket = root / "munge" / "munge.socket"
    assert len(str(munge_socket)) < 100, f"{munge_socket}: too long for a Unix socket path"
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    shim = root / "bin" / "sacct"
    shim.write_text(SACCT_FROM_SQUEUE)
    shim.chmod(0o755)
    node = socket.gethostname().split(".")[0]  # slurmctld only runs on a host named in SlurmctldHost
    conf = _write_conf(root, node, getpass.getuser(), munge_socket)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "SLURM_"))}
    env["SLURM_CONF"] = str(conf)
    env["PATH"] = os.pathsep.join([str(root / "bin"), env.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])

    procs: list[subprocess.Popen] = []

    def start(name: str, *args: str) -> None:
        with open(root / "log" / f"{name}.out", "w") as out:
            procs.append(subprocess.Popen([binaries[name], *args], env=env, cwd=root, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip

    cluster = Cluster(conf, root, env, node)
    try:
        # --force: munged refuses a socket in a dir that is not world-searchable (pytest's tmp dirs are 0700).
        # In the foreground it logs to stderr (log/munged.out).
        start("munged", "--foreground", "--force", f"--key-file={key}", f"--socket={munge_socket}",
              f"--pid-file={root}/munge/munged.pid", f"--seed-file={root}/munge/munged.seed")  # fmt: skip
        deadline = time.time() + 20
        while not munge_socket.exists():
            if time.time() > deadline or procs[0].poll() is not None:
                raise RuntimeError(f"munged did not start:\n{cluster.logs()}")
            time.sleep(0.2)
        start("slurmctld", "-D", "-f", str(conf))
        start("slurmd", "-D", "-f", str(conf), "-N", node)
        deadline = time.time() + 60
        while True:
            state = cluster.run("sinfo", "--noheader", "--Node", "--format=%T", check=False).strip()
            if state == "idle":
                break
            if time.time() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"the SLURM node is not idle (sinfo: {state!r}):\n{cluster.logs()}")
            time.sleep(0.5)
        yield cluster
    finally:
        # Jobs outlive slurmd (slurmstepd runs them): cancel them, give them KillWait to go, then stop the daemons.
        if len(procs) == 3 and procs[1].poll() is None:
            cluster.run("scancel", f"--partition={PARTITION}", check=False)
            deadline = time.time() + KILL_WAIT + 10
            while time.time() < deadline and cluster.run("squeue", "--noheader", check=False).strip():
                time.sleep(1)
        for proc in reversed(procs):
            _stop(proc)


def _sweep_command(overrides: list[str], url: str, sweep_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "dbn_experiment", "-m", *overrides, "hydra/launcher=submitit_slurm",
        f"tracking.uri={url}", f"hydra.sweep.dir={sweep_dir}", f"hydra.launcher.partition={PARTITION}",
        "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=10",
    ]  # fmt: skip


def _sweep_runs(client: MlflowClient, sweep_dir: Path):
    """(the parent run of the sweep in ``sweep_dir``, its children); the parent is None until it exists."""
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return None, []
    parents = client.search_runs(
        [exp.experiment_id], f"tags.role = 'sweep parent' and tags.sweep_dir = '{sweep_dir}'"
    )
    assert len(parents) <= 1, [p.info.run_id for p in parents]
    if not parents:
        return None, []
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'")
    return parents[0], children


def _assert_model_logged(client: MlflowClient, run, n_layers: int) -> None:
    """The trained network is among the run's artifacts: ``model/model.json`` and one ``layer_<l>.npz`` per layer
    (``dbn_jax.load_dbn`` reads them), and the run's pyfunc model ``network`` loads from the server and predicts
    the top layer's probabilities."""
    import mlflow
    import numpy as np
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    paths = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    expected = {"model/model.json", *(f"model/layer_{layer}.npz" for layer in range(1, n_layers + 1))}
    assert expected <= paths, (run.info.run_name, sorted(paths))
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(client.tracking_uri):
            model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/network")
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    probs = model.predict(np.full((2, 784), 0.5, dtype=np.float32))
    assert probs.shape == (2, 64) and np.all((probs > 0) & (probs < 1)), probs.shape


def _assert_ran_under_slurm(cluster: Cluster, sweep_dir: Path, n_jobs: int) -> dict[str, str]:
    """Every job of the sweep was a task of one SLURM job array that slurmd ran: slurmctld knows the tasks, and
    each wrote submitit's log in its ``<array>_<task>`` folder. Returns ``{job num: SLURM job id}``."""
    # .submitit/<array>/ holds the sbatch script, .submitit/<array>_<task>/ a task's pickles and logs
    folders = sorted(p.name for p in (sweep_dir / ".submitit").iterdir() if p.is_dir() and "_" in p.name)
    arrays = {f.split("_")[0] for f in folders}
    assert len(folders) == n_jobs and len(arrays) == 1, folders  # one array, one task per job
    array = arrays.pop()
    assert (sweep_dir / ".submitit" / array / f"{array}_submission.sh").is_file()
    known = cluster.jobs()
    ids = {}
    for folder in folders:
        assert folder in known, (folder, known)
        log = (sweep_dir / ".submitit" / folder / f"{folder}_0_log.out").read_text()
        assert f"Starting with JobEnvironment(job_id={folder}," in log, log[:2000]  # SLURM_ARRAY_* of the task
        ids[folder.split("_")[1]] = folder
    return ids


def test_slurm_sweep_logs_parent_and_children(slurm, mlflow_server, tmp_path, data_cache):
    sweep_dir = tmp_path / "sweep"
    env = {**slurm.env, "DBN_DATA_DIR": str(data_cache)}
    proc = subprocess.run(_sweep_command([*QUICK, "train.epochs=1", "seed=0,1,2"], mlflow_server, sweep_dir),
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\n{slurm.logs()}"
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to a local store

    ids = _assert_ran_under_slurm(slurm, sweep_dir, 3)
    assert slurm.final_states(list(ids.values())) == ["COMPLETED"] * 3

    client = MlflowClient(mlflow_server)
    parent, children = _sweep_runs(client, sweep_dir)
    assert parent is not None and parent.info.status == "FINISHED", parent
    assert parent.data.tags["n_finished"] == "3"
    assert sorted(c.data.params["seed"] for c in children) == ["0", "1", "2"]
    for c in children:
        assert c.info.status == "FINISHED", (c.info.run_name, c.data.tags.get("error"))
        assert c.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert Path(c.data.tags["output_dir"]).parent == sweep_dir
        for layer in (1, 2, 3):
            history = client.get_metric_history(c.info.run_id, f"train/h{layer}/recon_error")
            assert [m.step for m in history] == [0, 1]
            assert all(m.value == m.value and m.value > 0 for m in history)  # finite, not NaN
        _assert_model_logged(client, c, n_layers=3)


def test_scancel_kills_the_job_and_fails_the_sweep(slurm, mlflow_server, tmp_path, data_cache):
    """Job 0 trains 1 epoch per layer; job 1 trains until it is cancelled (scancel: SIGTERM, then SIGKILL after
    KillWait). Its run ends KILLED, the sweep exits non-zero, the parent ends FAILED."""
    sweep_dir = tmp_path / "sweep"
    env = {**slurm.env, "DBN_DATA_DIR": str(data_cache)}
    with open(tmp_path / "sweep.out", "w") as out:
        command = _sweep_command([*QUICK, "seed=0", "train.epochs=1,5000"], mlflow_server, sweep_dir)
        proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        client = MlflowClient(mlflow_server)
        deadline = time.time() + 120
        long_run = None
        while long_run is None:  # until job 1's run exists and is training (its first epoch is logged)
            assert proc.poll() is None and time.time() < deadline, (tmp_path / "sweep.out").read_text()[-3000:]
            time.sleep(1)
            _, children = _sweep_runs(client, sweep_dir)
            long_run = next(  # a train/ metric: it is in the training loop, where SIGTERM raises Terminated
                (c for c in children if c.data.params.get("train.epochs") == "5000"
                 and any(k.startswith("train/") for k in c.data.metrics)), None,
            )  # fmt: skip
        ids = _assert_ran_under_slurm(slurm, sweep_dir, 2)
        assert slurm.jobs()[ids["1"]] == "RUNNING"
        slurm.run("scancel", ids["1"])
        proc.wait(timeout=KILL_WAIT + 90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = (tmp_path / "sweep.out").read_text()
    assert proc.returncode != 0, output[-3000:]
    assert slurm.final_states([ids["0"], ids["1"]]) == ["COMPLETED", "CANCELLED"]

    parent, children = _sweep_runs(client, sweep_dir)
    status = {c.data.params["train.epochs"]: c for c in children}
    assert sorted(status) == ["1", "5000"]
    assert status["1"].info.status == "FINISHED"
    _assert_model_logged(client, status["1"], n_layers=3)
    killed = status["5000"]
    assert killed.info.status == "KILLED", (killed.info.status, killed.data.tags.get("error"), output[-3000:])
    assert "Terminated" in killed.data.tags["error"]
    assert parent.info.status == "FAILED"
    assert (parent.data.tags["n_finished"], parent.data.tags["n_killed"]) == ("1", "1")
