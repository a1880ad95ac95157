"""Hostile inputs, each refused in one line: exit 2, no traceback, nothing run, nothing written, bounded memory.

The inputs are made by hostile_cases.py from fixed seeds; each group runs in one child process under
RLIMIT_AS (address space), so a reader that allocates what a tiny file claims fails the test instead
of the machine. Stderr is checked for MemoryError too: a limit hit must not hide as a one-line error.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ADDRESS_SPACE = 2 << 30  # bytes: imports of torch/onnx/onnxruntime take ~0.7 GB of it


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run_group(group: str, work: Path) -> list:
    proc = subprocess.run([sys.executable, str(HERE / "hostile_cases.py"), str(work), group], capture_output=True,
                          text=True, timeout=900, preexec_fn=_limit_memory)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def problems(result: dict, work: Path) -> list:
    found = []
    lines = result["stderr"].splitlines()
    if result["escaped"]:
        found.append("an exception escaped main(): " + result["escaped"].strip().splitlines()[-1])
    if result["rc"] != 2:
        found.append(f"exit code {result['rc']}")
    if len(lines) != 1:
        found.append(f"{len(lines)} stderr lines: {result['stderr'][-600:]!r}")
    if "Traceback" in result["stderr"] or "MemoryError" in result["stderr"]:
        found.append("traceback or MemoryError on stderr")
    if (work / "CANARY").exists():
        found.append("the canary appeared: code from the input ran")
    written = [str(p.relative_to(work)) for p in (work / "out").rglob("*")]
    if written:
        found.append(f"wrote {written}")
    return found


def check_group(group: str, tmp_path: Path) -> list:
    results = run_group(group, tmp_path)
    assert results, "no case ran"
    failures = [f"{r['name']}: {'; '.join(p)}" for r in results for p in [problems(r, tmp_path)] if p]
    assert not failures, "\n".join(failures)
    return results


def test_hostile_files_are_refused_in_one_line(tmp_path):
    results = check_group("light", tmp_path)
    assert len(results) >= 20


@pytest.mark.slow
def test_hostile_checkpoints_and_yaml_are_refused_in_one_line(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("rasterio")
    check_group("heavy", tmp_path)


def test_argument_errors_come_before_torch_is_imported(tmp_path):
    results = check_group("args", tmp_path)
    imported = [r["name"] for r in results if r["torch"]]
    assert not imported, f"torch was imported before refusing: {imported}"
