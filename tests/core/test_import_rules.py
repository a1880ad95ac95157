"""DESIGN.md's import rules, checked by reading every module's imports (nothing is imported to check them).

Imports run one way, with the data: models/ and kernels/ import no other stage, export/ never imports
optimize/, nothing but the CLI imports benchmarks/; models/ never imports onnx, onnxruntime or
tensorrt, export/ never TensorRT, kernels/ never torch; and the device side imports torch,
onnxruntime, tensorrt and matplotlib only inside the functions that need them.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("models", "export", "optimize", "kernels", "runtime", "benchmarks")
CORE = "agrideploy"  # the CLI and the shared vocabulary
CLI = "agrideploy/commands"
DEVICE_SIDE = ("agrideploy", "optimize", "runtime", "kernels", "benchmarks")
HEAVY = ("torch", "onnxruntime", "tensorrt", "matplotlib")
FORBIDDEN_STAGES = {"models": set(STAGES), "kernels": set(STAGES), "export": {"optimize", "benchmarks"}}
FORBIDDEN_PACKAGES = {"models": ("onnx", "onnxruntime", "tensorrt"), "export": ("tensorrt",), "kernels": ("torch",)}


def _modules(root: Path) -> Iterator[Tuple[str, Path]]:
    """(folder, file) of every project module: the stage folders and agrideploy/."""
    for folder in STAGES + (CORE,):
        for path in sorted((root / folder).rglob("*.py")) if (root / folder).is_dir() else []:
            yield folder, path


def imports_of(path: Path) -> List[Tuple[str, bool]]:
    """(imported module, at module level?) for every import statement in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in ast.walk(f)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) not in nested) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.module, id(node) not in nested))
    return found


def stage_of(module: str) -> str:
    """The stage folder an `agrideploy.<stage>...` import lands in ("" outside the project)."""
    parts = module.split(".")
    if parts[0] != "agrideploy":
        return ""
    return parts[1] if len(parts) > 1 and parts[1] in STAGES else CORE


def test_the_reader_sees_nested_and_top_level_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import numpy as np\nfrom agrideploy.models import zoo\n\ndef f():\n    import torch\n")
    assert sorted(imports_of(source)) == [("agrideploy.models", True), ("numpy", True), ("torch", False)]
    assert (stage_of("agrideploy.models.zoo"), stage_of("agrideploy.errors"), stage_of("numpy")) == ("models", CORE, "")


def violations(root: Path) -> List[str]:
    """One line per import that breaks a rule, in the project at `root`."""
    bad = []
    for folder, path in _modules(root):
        where = path.relative_to(root).as_posix()
        for module, top_level in imports_of(path):
            stage, package = stage_of(module), module.split(".")[0]
            if stage == folder or (stage == "" and package == "agrideploy"):
                continue
            if stage in FORBIDDEN_STAGES.get(folder, ()):
                bad.append(f"{where}: {folder}/ imports {module}")
            if stage == "benchmarks" and folder != "benchmarks" and not where.startswith(CLI):
                bad.append(f"{where}: only the CLI imports benchmarks/, not {module}")
            if package in FORBIDDEN_PACKAGES.get(folder, ()):
                bad.append(f"{where}: {folder}/ imports {package}")
            if top_level and folder in DEVICE_SIDE and package in HEAVY:
                bad.append(f"{where}: {package} imported at module level (import it inside the function that needs it)")
    return bad


def test_design_import_rules_hold():
    assert violations(ROOT) == []


@pytest.mark.parametrize("folder, text, rule", [
    ("models", "from agrideploy.optimize import artefacts\n", "models/ imports agrideploy.optimize"),
    ("kernels", "import torch\n", "kernels/ imports torch"),
    ("export", "from agrideploy.optimize.trt_build import BuildConfig\n", "export/ imports agrideploy.optimize"),
    ("runtime", "from agrideploy.benchmarks import bench\n", "only the CLI imports benchmarks/"),
    ("runtime", "import onnxruntime\n", "onnxruntime imported at module level"),
])
def test_a_broken_rule_is_reported(tmp_path, folder, text, rule):
    fake = tmp_path / folder / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(text)
    found = violations(tmp_path)
    assert any(line.startswith(f"{folder}/bad.py: ") and rule in line for line in found), found
