"""A plain (non-editable) `pip install .` into a fresh venv ships the config tree and the Hydra plugin."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # builds and installs a wheel into a fresh venv
def test_wheel_install_ships_conf_and_search_path_plugin(tmp_path):
    src = tmp_path / "src"
    skip = (".venv", ".git", "build", "outputs", "multirun", "*.egg-info", "__pycache__", "mlruns", "mlartifacts")
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(*skip))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # Dependencies come from this environment (a .pth line), the project itself from the fresh wheel.
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()  # fmt: skip
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    # Build the wheel with this environment's build backend (no network), install it into the fresh venv.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(src)],
        check=True, cwd=tmp_path, env=env, capture_output=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("dbn_complex_networks-*.whl")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, cwd=tmp_path, env=env, capture_output=True)  # fmt: skip
    app = tmp_path / "otherapp"
    app.mkdir()
    (app / "app.yaml").write_text("defaults:\n  - model: dbn_paper\n  - train: cd1\n  - _self_\n")
    probe = (
        "import dbn_jax, hydra_plugins.dbn_complex_networks.searchpath as p\n"
        "from hydra import compose, initialize_config_dir\n"
        f"with initialize_config_dir({str(app)!r}, version_base='1.3'):\n"
        "    cfg = compose('app')\n"
        "print(dbn_jax.__file__)\nprint(p.__file__)\nprint(list(cfg.model.hidden), cfg.train.learning_rate)\n"
    )
    out = subprocess.run([str(py), "-c", probe], cwd=app, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith(site) and lines[1].startswith(site)  # the installed copy, not the clone
    assert lines[2] == "[500, 500, 2000] 0.1"
    # The app itself composes its config from the installed package.
    job = subprocess.run([str(py), "-m", "dbn_experiment", "experiment=smoke", "--cfg", "job"], cwd=app, env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert job.returncode == 0, job.stderr[-3000:]
    assert "hidden:" in job.stdout and "- 64" in job.stdout
