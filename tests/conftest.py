"""Shared test helpers: where the third-party fixtures are, and how to run the CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("AGRIDEPLOY_FIXTURES", ROOT.parent / "shared" / "fixtures"))
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """../shared/fixtures (real third-party checkpoints); a user's clone does not have it."""
    if not (FIXTURES / "MANIFEST.md").is_file():
        pytest.skip(f"third-party fixtures not found at {FIXTURES} (they live beside the repository on CI machines)")
    return FIXTURES


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `agrideploy ARGS` in a child process, exactly as a user types it."""
    return subprocess.run(
        [sys.executable, "-m", "agrideploy", *map(str, args)],
        cwd=str(cwd) if cwd else None,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def cli():
    return run_cli
