"""The layers: dbn_jax (the model) and analysis (network science on arrays) know nothing of each other, of MLflow,
Hydra or the app; dbn_experiment wires them. The contracts live in pyproject.toml ([tool.importlinter]); this test
runs them, so `pytest` fails when an import crosses a layer (at any depth, inside functions too)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dbn_jax", "analysis", "dbn_experiment")
EVENT_NAMES = {"EpochEnd", "LayerEnd", "TrainEnd"}


def _lint(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the packages found first on the path at ``root`` (a copy of the tree in a test)."""
    code = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True))"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), "HOME": str(root)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_import_contracts_hold():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Contracts: 2 kept, 0 broken." in proc.stdout


def test_a_core_module_importing_the_model_or_mlflow_breaks_a_contract(tmp_path):
    """The contracts can fail: a copy of the tree where analysis imports dbn_jax inside a function, and where
    dbn_jax imports mlflow, breaks both."""
    for name in (*PACKAGES, "pyproject.toml"):
        src = ROOT / name
        if src.is_dir():
            (tmp_path / name).mkdir()
            for f in src.glob("*.py"):
                (tmp_path / name / f.name).write_text(f.read_text())
        else:
            (tmp_path / name).write_text(src.read_text())
    with open(tmp_path / "analysis" / "events.py", "a") as f:
        f.write("\n\ndef _probe():\n    from dbn_jax import rbm  # noqa: F401\n")
    with open(tmp_path / "dbn_jax" / "rbm.py", "a") as f:
        f.write("\nimport mlflow  # noqa: F401,E402\n")
    proc = _lint(tmp_path)
    assert proc.returncode != 0
    assert "analysis.events -> dbn_jax.rbm" in proc.stdout and "dbn_jax.rbm -> mlflow" in proc.stdout
    assert "Contracts: 0 kept, 2 broken." in proc.stdout


def _class_name_dispatch(source: str) -> list[str]:
    """Comparisons with an event's class name as a string (``type(event).__name__ == "TrainEnd"``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                if isinstance(operand, ast.Constant) and operand.value in EVENT_NAMES:
                    found.append(operand.value)
    return found


def test_the_dispatch_check_catches_what_it_looks_for():
    source = 'def f(e):\n    if type(e).__name__ != "TrainEnd":\n        return "EpochEnd" == type(e).__name__\n'
    assert sorted(_class_name_dispatch(source)) == ["EpochEnd", "TrainEnd"]


@pytest.mark.parametrize("path", sorted(p for d in PACKAGES for p in (ROOT / d).glob("*.py")), ids=str)
def test_no_dispatch_on_class_names(path):
    assert _class_name_dispatch(path.read_text(encoding="utf-8")) == [], f"{path} dispatches on a class name"
