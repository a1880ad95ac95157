"""Static bars: ruff clean, and the device side parses as Python 3.8 (JetPack 5 ships 3.8)."""

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

DEVICE_SIDE = ["agrideploy", "runtime", "kernels", "optimize", "benchmarks"]


def _tool(name):
    path = shutil.which(name) or str(ROOT / ".venv" / "bin" / name)
    if not shutil.which(path):
        pytest.skip(f"{name} is not installed (it comes with `pip install -e .[dev]`)")
    return path


def test_ruff_clean():
    out = subprocess.run([_tool("ruff"), "check", "--output-format", "concise", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_device_side_runs_on_python_38():
    out = subprocess.run(
        [_tool("vermin"), "--no-tips", "--violations", "--eval-annotations", "-t=3.8-", *DEVICE_SIDE],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_whole_tree_parses_as_python_38():
    """Models and export run on a workstation, but the same package is installed on the Jetson too."""
    out = subprocess.run(
        [_tool("vermin"), "--no-tips", "--violations", "--eval-annotations", "-t=3.8-", "models", "export", "setup.py"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert sys.version_info >= (3, 8)
