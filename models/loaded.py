"""What every checkpoint reader returns: the module, its record, and how well the weights fitted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord

SHOWN = 5  # keys listed per kind in a mismatch message; the rest are counted


@dataclass
class KeyMatch:
    """How a checkpoint's state dict lines up with the module's: the report `inspect` prints."""

    total: int = 0  # keys the module expects
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, Tuple[int, ...], Tuple[int, ...]]] = field(default_factory=list)  # key, file, model

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @classmethod
    def compare(cls, expected: Mapping[str, Any], given: Mapping[str, Any]) -> "KeyMatch":
        """Compare two state dicts by key and shape (anything with `.shape`; no torch needed)."""
        mismatched = [
            (k, tuple(given[k].shape), tuple(v.shape))
            for k, v in expected.items()
            if k in given and tuple(given[k].shape) != tuple(v.shape)
        ]
        return cls(
            total=len(expected),
            missing=[k for k in expected if k not in given],
            unexpected=[k for k in given if k not in expected],
            mismatched=mismatched,
        )

    def summary(self) -> str:
        if self.ok:
            return f"all {self.total} keys matched"
        return "; ".join(self._problems())

    def _problems(self) -> List[str]:
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({_first(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({_first(self.unexpected)})")
        if self.mismatched:
            shown = [f"{k}: file {list(a)} vs model {list(b)}" for k, a, b in self.mismatched]
            parts.append(f"{len(self.mismatched)} mis-shaped ({_first(shown)})")
        return parts

    def require(self, what: str) -> None:
        """Raise one clear line when the weights do not fit the module."""
        if not self.ok:
            raise AgrideployError(f"{what}: the weights do not fit the model: {self.summary()}")


def _first(items: List[str]) -> str:
    head = ", ".join(items[:SHOWN])
    return head + (f", ... +{len(items) - SHOWN} more" if len(items) > SHOWN else "")


def load_weights(module: Any, state_dict: Mapping[str, Any], what: str) -> KeyMatch:
    """Strictly load `state_dict` into `module` (cast to each parameter's dtype) after a clear key check."""
    expected = module.state_dict()
    match = KeyMatch.compare(expected, state_dict)
    match.require(what)
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state_dict.items()}, strict=True)
    return match


@dataclass
class LoadedModel:
    """A ready module (eval, float32, CPU) plus everything later stages need to know about it.

    `builder` says how to rebuild the module from its weights (written into agrideploy's own
    checkpoint format); None when the architecture lives only in the source file (TorchScript,
    full pickle).
    """

    module: Any
    record: ModelRecord
    source_format: str
    match: KeyMatch
    random_init: bool = False
    notes: List[str] = field(default_factory=list)
    builder: Optional[Dict[str, Any]] = None


@dataclass(frozen=True)
class LoadOptions:
    """The user's model flags, passed unchanged to whichever reader the file needs."""

    arch: Optional[str] = None
    classes: Any = None  # None, a count, or a list of names
    channels: Optional[int] = None
    imgsz: Any = None  # None, one int, or [h, w]
    output_stride: Optional[int] = None
    factory: Optional[str] = None
    trust: bool = False
