"""Read torch checkpoints without running code from them.

A training checkpoint (YOLOv5 `.pt`, DeepLab `.pth.tar`) is a pickle, and a pickle can call any
importable function. This unpickler allows only the globals that rebuild data: tensors and storages,
OrderedDict, sets, numpy arrays and scalars, and paths (kept as plain strings). Every module class
(torch.nn.* and the upstream `models.*` classes) becomes an inert `ModuleStub` that only keeps its
pickled state, so no module code runs. Anything else is refused before it can be called.
"""

from __future__ import annotations

import importlib
import io
import ntpath
import pickle
import posixpath
import types
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Mapping, Optional, Tuple, Union

from agrideploy.errors import AgrideployError
from agrideploy.lazy import require

# module prefixes whose classes become inert stand-ins (torch layers, upstream YOLOv5 and its forks)
STUB_PREFIXES = ("torch.nn.modules.", "models.")

_TORCH_REBUILDERS = (
    "_rebuild_tensor",
    "_rebuild_tensor_v2",
    "_rebuild_parameter",
    "_rebuild_parameter_with_state",
)
_NUMPY_MULTIARRAY = ("_reconstruct", "scalar")
# what a crafted pickle can make the unpickler or torch's rebuild functions raise
UNREADABLE = (pickle.UnpicklingError, EOFError, RuntimeError, ValueError, TypeError, AttributeError, OSError,
              LookupError, AssertionError, RecursionError, MemoryError, OverflowError, UnicodeDecodeError)


class ModuleStub:
    """An unpickled module reduced to its state: `_parameters`, `_buffers`, `_modules` and attributes."""

    _stub_class = "?"

    def __init__(self, *args: Any, **kwargs: Any):
        self._stub_args = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) form
            state = dict(state[0] or {}, **(state[1] or {}))
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<stub {self._stub_class}>"


_stub_types: Dict[str, type] = {}


def stub_class(path: str) -> type:
    """One stand-in type per dotted class path, so `class_path(obj)` still names the original class."""
    if path not in _stub_types:
        _stub_types[path] = type(path.rsplit(".", 1)[-1], (ModuleStub,), {"_stub_class": path})
    return _stub_types[path]


def class_path(obj: Any) -> str:
    """'models.yolo.DetectionModel' for a stub; the real dotted path for anything else."""
    if isinstance(obj, ModuleStub):
        return obj._stub_class
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def children(stub: ModuleStub) -> "OrderedDict[str, Any]":
    return getattr(stub, "_modules", None) or OrderedDict()


def stub_state_dict(stub: ModuleStub, prefix: str = "") -> "OrderedDict[str, Any]":
    """The state dict nn.Module.state_dict() would give: parameters, then persistent buffers, then children."""
    out: "OrderedDict[str, Any]" = OrderedDict()
    for key, value in _own_tensors(stub):
        out[prefix + key] = value
    for name, child in children(stub).items():
        if isinstance(child, ModuleStub):
            out.update(stub_state_dict(child, f"{prefix}{name}."))
    return out


def _own_tensors(stub: ModuleStub) -> Iterator[Tuple[str, Any]]:
    for name, value in (getattr(stub, "_parameters", None) or {}).items():
        if value is not None:
            yield name, value
    skip = getattr(stub, "_non_persistent_buffers_set", None) or set()
    for name, value in (getattr(stub, "_buffers", None) or {}).items():
        if value is not None and name not in skip:
            yield name, value


def _path_as_text(flavour: Any) -> Callable[..., str]:
    def rebuild(*parts: Any) -> str:
        return flavour.join(*[str(p) for p in parts]) if parts else ""

    return rebuild


def _allowed_global(module: str, name: str) -> Any:
    """The object a permitted global resolves to, or None when it is not permitted."""
    import builtins
    import codecs

    dotted = f"{module}.{name}"
    if module in ("builtins", "__builtin__") and name in ("set", "frozenset"):
        return getattr(builtins, name)
    if dotted == "collections.OrderedDict":
        return OrderedDict
    if dotted == "_codecs.encode":
        return codecs.encode
    if module == "pathlib" and name in ("PosixPath", "PurePosixPath"):
        return _path_as_text(posixpath)
    if module == "pathlib" and name in ("WindowsPath", "PureWindowsPath"):
        return _path_as_text(ntpath)
    if module == "torch._utils" and name in _TORCH_REBUILDERS:
        return getattr(require("torch")._utils, name)
    if module == "torch" and name in ("Size", "device"):
        return getattr(require("torch"), name)
    if module == "torch" and isinstance(getattr(require("torch"), name, None), require("torch").dtype):
        return getattr(require("torch"), name)
    if module == "torch.nn.parameter" and name == "Parameter":
        return require("torch").nn.Parameter
    return _numpy_global(module, name)


def _numpy_global(module: str, name: str) -> Any:
    """Arrays, dtypes and scalars, named under numpy._core (numpy 2) or numpy.core (numpy 1)."""
    numpy = require("numpy")
    if module in ("numpy._core.multiarray", "numpy.core.multiarray") and name in _NUMPY_MULTIARRAY:
        return getattr(_multiarray(), name)
    if module == "numpy" and name in ("dtype", "ndarray"):
        return getattr(numpy, name)
    if module == "numpy.dtypes" and name.endswith("DType"):
        return getattr(numpy.dtypes, name, None)
    return None


def _multiarray() -> types.ModuleType:
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy 1.x
        return importlib.import_module("numpy.core.multiarray")


def _storage_bytes(saved_id: Any) -> int:
    """Bytes a torch persistent id ('storage', type, key, location, numel, ...) asks to allocate."""
    if not (isinstance(saved_id, tuple) and len(saved_id) >= 5 and saved_id[0] == "storage"):
        return 0
    numel, dtype = saved_id[4], getattr(saved_id[1], "dtype", saved_id[1])
    if not isinstance(numel, int) or numel < 0:
        raise AgrideployError(f"checkpoint storage {saved_id[2]!r} has a bad element count {numel!r}")
    torch = require("torch")
    return numel * (torch._utils._element_size(dtype) if isinstance(dtype, torch.dtype) else 1)


def _make_unpickler(extra: Mapping[str, Any], budget: Optional[int]) -> type:
    class RestrictedUnpickler(pickle.Unpickler):
        def _bounded(self, load: Callable[[Any], Any]) -> Callable[[Any], Any]:
            """torch's persistent_load, refusing storages larger than the file before they are allocated."""
            def persistent_load(saved_id: Any) -> Any:
                if budget is not None and _storage_bytes(saved_id) > budget:
                    raise AgrideployError(f"checkpoint storage {saved_id[2]!r} claims {_storage_bytes(saved_id)} bytes, "
                                          f"more than the whole file ({budget})")
                return load(saved_id)

            return persistent_load

        def _set_persistent_load(self, load: Callable[[Any], Any]) -> None:
            pickle.Unpickler.persistent_load.__set__(self, self._bounded(load))  # type: ignore[attr-defined]

        persistent_load = property(lambda self: pickle.Unpickler.persistent_load.__get__(self), _set_persistent_load)

        def find_class(self, module: str, name: str) -> Any:
            dotted = f"{module}.{name}"
            if dotted in extra:
                return extra[dotted]
            found = _allowed_global(module, name)
            if found is not None:
                return found
            if module.startswith(STUB_PREFIXES):
                return stub_class(dotted)
            raise AgrideployError(f"checkpoint refers to {dotted}, which agrideploy refuses to load (it could run code)")

    return RestrictedUnpickler


def restricted_pickle_module(extra_classes: Optional[Mapping[str, Any]] = None, budget: Optional[int] = None) -> types.ModuleType:
    """A stand-in for the `pickle` module, for torch.load(pickle_module=...); storages above `budget` bytes are refused."""
    unpickler = _make_unpickler(dict(extra_classes or {}), budget)
    module = types.ModuleType("agrideploy_restricted_pickle")
    module.Unpickler = unpickler  # type: ignore[attr-defined]
    module.load = lambda f, **kw: unpickler(f, **kw).load()  # type: ignore[attr-defined]
    module.loads = lambda b, **kw: unpickler(io.BytesIO(b), **kw).load()  # type: ignore[attr-defined]
    module.UnpicklingError = pickle.UnpicklingError  # type: ignore[attr-defined]
    return module


def safe_load(path: Union[str, Path], extra_classes: Optional[Mapping[str, Any]] = None, scanned: bool = False) -> Any:
    """Load a torch checkpoint (zip or legacy) on the CPU; module objects come back as ModuleStub.

    `extra_classes` maps further dotted global names ("pkg.mod.Name") to the objects to use for them.
    The file is scanned first (checkpoint_limits) unless the caller already did (`scanned`).
    """
    from agrideploy.models.checkpoint_limits import check_tensors, scan_checkpoint

    torch = require("torch")
    path = Path(path)
    if not path.is_file():
        raise AgrideployError(f"{path}: no such file")
    if not scanned:
        scan_checkpoint(path)
    pickle_module = restricted_pickle_module(extra_classes, budget=path.stat().st_size)
    try:
        with warnings.catch_warnings():  # legacy files: torch cannot compare a stand-in's source, which is expected
            warnings.filterwarnings("ignore", message="Couldn't retrieve source code")
            obj = torch.load(str(path), map_location="cpu", weights_only=False, pickle_module=pickle_module)
    except AgrideployError:
        raise
    except UNREADABLE as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise AgrideployError(f"{path}: not a checkpoint agrideploy can read safely ({type(exc).__name__}: {first})") from None
    check_tensors(obj, str(path))
    return obj
