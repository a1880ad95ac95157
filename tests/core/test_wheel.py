"""The built wheel, installed into a fresh virtual environment, has every subpackage and data file."""

import subprocess
import sys
import venv
import zipfile

import pytest
from conftest import ROOT

STAGES = ["models", "export", "optimize", "kernels", "runtime", "benchmarks"]
DATA_SUFFIXES = {".yaml", ".cu", ".cuh", ".json"}


def _expected():
    packages, data = ["agrideploy"], []
    for p in sorted((ROOT / "agrideploy").rglob("__init__.py")):
        rel = p.parent.relative_to(ROOT / "agrideploy")
        packages.append(".".join(("agrideploy",) + rel.parts) if rel.parts else "agrideploy")
    for stage in STAGES:
        for p in sorted((ROOT / stage).rglob("*")):
            if "__pycache__" in p.parts:
                continue
            rel = p.relative_to(ROOT / stage)
            if p.name == "__init__.py":
                packages.append(".".join(("agrideploy", stage) + rel.parent.parts))
            elif p.suffix in DATA_SUFFIXES:
                data.append("/".join(("agrideploy", stage) + rel.parts))
    return sorted(set(packages)), data


@pytest.mark.slow
def test_wheel_installs_every_subpackage_and_data_file(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        check=True, capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("agrideploy-*.whl"))
    packages, data = _expected()
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [d for d in data if d not in names]
    assert not missing, f"data files missing from the wheel: {missing}"

    env = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env)
    py = env / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True)
    code = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)\nprint('ok')"
    out = subprocess.run([str(py), "-c", code, *packages], capture_output=True, text=True, cwd=str(tmp_path))
    assert out.stdout.strip() == "ok", out.stderr
    helped = subprocess.run([str(env / "bin" / "agrideploy"), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "export" in helped.stdout
