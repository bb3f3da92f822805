"""The multi-machine setup for real: a throwaway PostgreSQL cluster as the backend store of an `mlflow server`,
and a submitit_local sweep whose jobs (separate processes) log to that server over HTTP.

Needs the PostgreSQL server binaries (Debian: ``apt-get install postgresql``); without them the test fails.
Run it with ``pytest -m slow tests/test_postgres.py``.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from conftest import free_port, start_mlflow_server, stop_mlflow_server
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

PG_USER = "postgres"  # the cluster's superuser (initdb -U), whoever runs the test


def _pg_bindir() -> Path:
    """The newest /usr/lib/postgresql/<ver>/bin (Debian), else the directory of `pg_ctl` on PATH."""
    dirs = sorted(
        (Path(d) for d in glob.glob("/usr/lib/postgresql/*/bin") if (Path(d) / "initdb").exists()),
        key=lambda d: [int(p) if p.isdigit() else 0 for p in d.parent.name.split(".")],
    )
    if dirs:
        return dirs[-1]
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and shutil.which("initdb"):
        return Path(pg_ctl).parent
    pytest.fail(
        "PostgreSQL server binaries not found (no /usr/lib/postgresql/*/bin/initdb, no pg_ctl/initdb on PATH): "
        "install them, e.g. `apt-get install postgresql` (CI does)",
        pytrace=False,
    )


def _as_owner(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the `postgres` system user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], cwd: Path, what: str, log: Path | None = None) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        server_log = f"\n{log}: {log.read_text()[-2000:]}" if log is not None and log.exists() else ""
        raise RuntimeError(
            f"{what} failed ({proc.returncode}): {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}{server_log}"
        )


@pytest.fixture(scope="module")
def postgres():
    """A fresh cluster on 127.0.0.1:<free port> with a database `mlflow`; yields its libpq URI."""
    bindir = _pg_bindir()
    # Not under pytest's tmp dir: that is private to the invoking user (0700), and as root the cluster belongs
    # to `postgres`, which must be able to reach its data, socket and log.
    root = Path(tempfile.mkdtemp(prefix="dbn-pg-"))
    root.chmod(0o755)
    data, sockets, log = root / "data", root / "sockets", root / "postgres.log"
    sockets.mkdir()
    log.touch()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(sockets, "postgres", "postgres")
        shutil.chown(log, "postgres", "postgres")
    port = free_port()
    pg_ctl = str(bindir / "pg_ctl")
    started = False
    try:
        _run(_as_owner([str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust",
                        "--encoding=UTF8", "--no-sync"]), root, "initdb")  # fmt: skip
        started = True  # from here on, stop it (harmless if it never came up)
        _run(_as_owner([pg_ctl, "start", "-w", "-t", "60", "-D", str(data), "-l", str(log),
                        "-o", f"-k {sockets} -p {port} -h 127.0.0.1 -c fsync=off"]), root,
             "pg_ctl start", log)  # fmt: skip
        _run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER, "mlflow"], root,
             "createdb")  # fmt: skip
        yield f"postgresql://{PG_USER}@127.0.0.1:{port}/mlflow"
    finally:
        if started:
            subprocess.run(_as_owner([pg_ctl, "stop", "-m", "fast", "-w", "-D", str(data)]), cwd=root,
                           capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    """`mlflow server` with the PostgreSQL backend store and a local artifact destination; yields (url, root).

    The driver is named (psycopg2, from the dev extra): SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3.
    """
    backend = postgres.replace("postgresql://", "postgresql+psycopg2://", 1)
    root = tmp_path_factory.mktemp("pg-server")
    # 120 s: the first start creates the schema in PostgreSQL (migrations).
    url, proc = start_mlflow_server(backend, root / "artifacts", root / "server.log", 120)
    try:
        yield url, root
    finally:
        stop_mlflow_server(proc)  # the server and the workers it spawned (its own session) together


def test_submitit_sweep_logs_to_a_postgres_backed_server(mlflow_server, postgres, tmp_path, data_cache, cli):
    url, server_root = mlflow_server
    proc = cli(
        ["-m", "experiment=smoke", "analysis=none", "readout.enabled=false", "train.epochs=1", "seed=0,1",
         "hydra/launcher=submitit_local", f"tracking.uri={url}", f"hydra.sweep.dir={tmp_path}/sweep"],
        tmp_path, {"DBN_DATA_DIR": str(data_cache)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()  # nothing local

    client = MlflowClient(url)
    exp = client.get_experiment_by_name("dbn-complex-networks")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2, [(r.info.run_name, r.data.tags) for r in runs]
    (parent,) = parents
    assert parent.info.status == "FINISHED"
    assert sorted(c.data.params["seed"] for c in children) == ["0", "1"]
    for c in children:
        assert c.info.status == "FINISHED"
        assert c.data.tags["mlflow.parentRunId"] == parent.info.run_id
        for layer in (1, 2):
            history = client.get_metric_history(c.info.run_id, f"train/h{layer}/recon_error")
            assert [m.step for m in history] == [0, 1]
            assert all(m.value == m.value and m.value > 0 for m in history)  # finite, not NaN
        assert "model/model.json" in {a.path for a in client.list_artifacts(c.info.run_id, "model")}
        local = client.download_artifacts(c.info.run_id, "model/model.json", str(tmp_path / c.info.run_id))
        assert '"format": "dbn-complex-networks/model"' in Path(local).read_text()
        # proxied artifacts land under the server's --artifacts-destination
        assert list((server_root / "artifacts").rglob(f"{c.info.run_id}/artifacts/model/model.json"))

    # The runs, params and metrics really are rows in PostgreSQL (not some other store).
    import psycopg2

    with psycopg2.connect(postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT run_uuid, status FROM runs WHERE experiment_id = %s", (int(exp.experiment_id),))
        assert dict(cur.fetchall()) == {r.info.run_id: "FINISHED" for r in runs}
        cur.execute(
            "SELECT run_uuid, value FROM params WHERE key = 'seed' AND run_uuid = ANY(%s)",
            ([c.info.run_id for c in children],),
        )
        assert sorted(v for _, v in cur.fetchall()) == ["0", "1"]
        cur.execute(
            "SELECT count(*) FROM metrics WHERE key = 'train/h1/recon_error' AND run_uuid = ANY(%s)",
            ([c.info.run_id for c in children],),
        )
        assert cur.fetchone()[0] == 4  # two steps per child
    conn.close()
    assert os.path.isdir(tmp_path / "sweep" / "0") and os.path.isdir(tmp_path / "sweep" / "1")
