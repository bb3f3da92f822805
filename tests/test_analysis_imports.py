"""The package ``analysis`` (network science on arrays) stands alone: it never imports the model package
``dbn_jax`` (not even inside a function) and never dispatches on the class name of an event."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
EVENT_NAMES = {"EpochEnd", "LayerEnd", "TrainEnd"}


def _model_imports(source: str) -> list[str]:
    """Every ``import dbn_jax...`` / ``from dbn_jax... import`` anywhere in ``source`` (any depth)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "dbn_jax"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            if (node.module or "").split(".")[0] == "dbn_jax":
                found.append(node.module)
    return found


def _class_name_dispatch(source: str) -> list[str]:
    """Comparisons with an event's class name as a string (``type(event).__name__ == "TrainEnd"``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                if isinstance(operand, ast.Constant) and operand.value in EVENT_NAMES:
                    found.append(operand.value)
    return found


def test_the_checks_catch_what_they_look_for():
    source = """
import numpy
import dbn_jax
import dbn_jax.rbm as R
from dbn_jax.train import TrainEnd
def f(event):
    from dbn_jax import ais
    if type(event).__name__ != "TrainEnd":
        return "EpochEnd" == type(event).__name__
from .dbn_jax_like import x
import dbn_jaxx
"""
    assert _model_imports(source) == ["dbn_jax", "dbn_jax.rbm", "dbn_jax.train", "dbn_jax"]
    assert sorted(_class_name_dispatch(source)) == ["EpochEnd", "TrainEnd"]


@pytest.mark.parametrize("path", sorted(ANALYSIS.glob("*.py")), ids=lambda p: p.name)
def test_analysis_never_imports_the_model_nor_dispatches_on_class_names(path):
    source = path.read_text(encoding="utf-8")
    assert _model_imports(source) == [], f"{path.name} imports the model package"
    assert _class_name_dispatch(source) == [], f"{path.name} dispatches on an event's class name"


def test_every_analysis_module_is_checked():
    names = {p.name for p in ANALYSIS.glob("*.py")}
    assert {"callbacks.py", "beyond.py", "events.py"} <= names
