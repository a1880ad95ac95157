"""Output files appear whole or not at all; inputs are identified by content hash."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from agrideploy.errors import AgrideployError


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_output_path(path: str | os.PathLike, force: bool = False, inputs: Iterable[Any] = ()) -> Path:
    """Refuse, before any work is done, an output that exists (without force), is a folder, is one of
    the command's `inputs` (even with force), or cannot be written."""
    path = Path(path)
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise AgrideployError(f"{path} is also an input of this command; choose another output")
    if path.is_dir():
        raise AgrideployError(f"{path} is a folder; give a file name for the output")
    if path.exists() and not force:
        raise AgrideployError(f"{path} exists; pass --force to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AgrideployError(f"cannot create folder {parent}: {exc.strerror}") from None
    if not parent.is_dir():
        raise AgrideployError(f"cannot write to {parent}: not a folder")
    if not os.access(parent, os.W_OK):
        raise AgrideployError(f"cannot write to {parent}: permission denied")
    return path


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, force: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = check_output_path(path, force=force)
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".part", dir=str(path.parent or "."))
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; engines must be readable by Triton/DeepStream users
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | os.PathLike, data: bytes, force: bool = True) -> Path:
    with atomic_output(path, force=force) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, force: bool = True) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"), force=force)
