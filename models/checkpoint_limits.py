"""Checks of an untrusted checkpoint file before it is unpickled, and of what came out after.

A pickle is a tiny program: a 400-byte one can ask for a memo of 2e8 entries, a zip entry can claim
gigabytes, a tensor can view one float as a billion (zero strides) so that `.float()` materialises
it. The scan here reads the opcodes without running them and checks every claim against the file's
real size and agrideploy.limits, so nothing is allocated for a claim the file cannot back.
"""

from __future__ import annotations

import io
import os
import pickletools
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Union

from agrideploy import limits
from agrideploy.errors import AgrideployError

# a legacy (pre-zip) torch file is five pickles in a row: magic, protocol, sys info, the object, storage keys
LEGACY_PICKLES = 5
_MEMO_PUTS = ("PUT", "BINPUT", "LONG_BINPUT")


def scan_checkpoint(path: Union[str, os.PathLike]) -> None:
    """Refuse a checkpoint whose archive is corrupt (CRC-32) or whose pickles claim more than the file holds."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise AgrideployError(f"{path}: empty file")
    if zipfile.is_zipfile(path):
        _scan_zip(path, size)
    else:
        with open(path, "rb") as f:
            bounded = _Bounded(f, size)
            for _ in range(LEGACY_PICKLES):
                if bounded.tell() >= size:
                    break
                _scan_pickle(bounded, path)


def _scan_zip(path: Path, size: int) -> None:
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if info.file_size > size:
                    raise AgrideployError(f"{path}: archive entry {info.filename} claims {info.file_size} bytes, "
                                          f"more than the whole file ({size})")
            bad = z.testzip()
            if bad is not None:
                raise AgrideployError(f"{path}: archive entry {bad} fails its CRC-32 check (the file is corrupt)")
            for info in z.infolist():
                if info.filename.endswith(".pkl"):
                    _scan_pickle(io.BytesIO(z.read(info)), path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError) as exc:
        raise AgrideployError(f"{path}: corrupt checkpoint archive ({_first_line(exc)})") from None


class _Bounded:
    """A file reader that never asks for more than the file holds (a length field may claim gigabytes)."""

    def __init__(self, f: BinaryIO, size: int):
        self._f, self._size = f, size

    def read(self, n: int = -1) -> bytes:
        left = self._size - self._f.tell()
        return self._f.read(left if n < 0 else min(n, left))

    def readline(self) -> bytes:
        return self._f.readline(self._size - self._f.tell())

    def tell(self) -> int:
        return self._f.tell()


def _scan_pickle(f: Any, path: Path) -> None:
    """Walk one pickle's opcodes (nothing runs): memo indices must be ones the pickle itself could number."""
    puts = 0
    try:
        for count, (op, arg, _) in enumerate(pickletools.genops(f), 1):
            if op.name in _MEMO_PUTS or op.name == "MEMOIZE":
                puts += 1
                index = puts - 1 if op.name == "MEMOIZE" else int(arg)
                if index >= count:
                    raise AgrideployError(f"{path}: pickle memo index {index} at opcode {count} (a crafted pickle)")
        limits.check("max_pickle_memo", puts, f"{path}: pickle memo")
    except (ValueError, TypeError, EOFError, OverflowError) as exc:
        raise AgrideployError(f"{path}: not a checkpoint agrideploy can read ({_first_line(exc)})") from None


def check_tensors(obj: Any, where: str) -> None:
    """Refuse any tensor that claims more elements than its storage holds (zero-stride or overlapping views)."""
    import torch

    seen, stack = set(), [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            claimed = item.numel() * item.element_size()
            held = item.untyped_storage().nbytes()
            if claimed > held:
                raise AgrideployError(f"{where}: a tensor of shape {tuple(item.shape)} views only {held} bytes of storage "
                                      "(zero-stride or overlapping tensors are refused)")
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            stack.extend(vars(item).values())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_module_tree(stub: Any, where: str) -> None:
    """An unpickled module tree must be a tree of mappings: no cycles, `_parameters`/`_buffers`/`_modules` dicts."""
    from agrideploy.models.safe_pickle import ModuleStub

    stack = [(stub, "model", frozenset())]
    nodes = 0
    while stack:
        node, name, ancestors = stack.pop()
        nodes += 1
        limits.check("max_modules", nodes, f"{where}: modules")
        for attr in ("_parameters", "_buffers", "_modules"):
            value = getattr(node, attr, None)
            if value is not None and not isinstance(value, dict):
                raise AgrideployError(f"{where}: {name}.{attr} is a {type(value).__name__}, not a mapping")
        for key, child in (getattr(node, "_modules", None) or {}).items():
            if not isinstance(key, str):
                raise AgrideployError(f"{where}: {name} has a submodule named {key!r}, not text")
            if isinstance(child, ModuleStub):
                if id(child) in ancestors or child is node:
                    raise AgrideployError(f"{where}: {name}.{key} contains itself (a cycle in the module tree)")
                stack.append((child, f"{name}.{key}", ancestors | {id(node)}))


def check_yolov5_fields(stub: Any, where: str) -> None:
    """The attributes the YOLOv5 reader uses, type-checked: nc, names, the Detect layer's stride."""
    import torch

    check_module_tree(stub, where)
    nc = getattr(stub, "nc", None)
    if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or not 1 <= nc):
        raise AgrideployError(f"{where}: the model's nc is {nc!r}, not a positive integer")
    if nc is not None:
        limits.check("max_classes", nc, f"{where}: nc")
    layers = getattr(getattr(stub, "_modules", {}).get("model"), "_modules", None) or {}
    head = list(layers.values())[-1] if layers else None
    stride = getattr(head, "stride", None)
    if stride is not None:
        try:
            values = torch.as_tensor(stride, dtype=torch.float64).view(-1)
        except (TypeError, ValueError, RuntimeError):
            raise AgrideployError(f"{where}: the Detect layer's stride is {type(stride).__name__}, not numbers") from None
        if values.numel() > limits.get("max_layers") or not bool(torch.isfinite(values).all() and (values > 0).all()):
            raise AgrideployError(f"{where}: the Detect layer's stride must be finite positive numbers")
