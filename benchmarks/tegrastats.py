"""tegrastats lines -> numbers: RAM, GPU load, temperatures and power rails, for every Jetson generation.

Parsing is kept apart from sampling (benchmarks/power.py), so a raw log recorded on a device can be
parsed again later. Rails print `current/average` in mW, with an `mW` suffix from JetPack 5 on and
bare numbers before. The total board input rail has a different name per module; sub-rails are
already included in it, so summing rails double counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

# Total input rail by module, first match wins: Nano -> POM_5V_IN, TX2 / Xavier / Orin NX / Orin Nano
# -> VDD_IN, AGX Orin -> VIN_SYS_5V0. Callers may pass their own order.
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0")

_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_GPU = re.compile(r"\bGR3D_FREQ (\d+)%")
_TEMP = re.compile(r"\b(\w+)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
_NOT_RAILS = ("RAM", "SWAP", "IRAM")


@dataclass
class TegraSample:
    """One tegrastats line: RAM in MB, GPU load in %, temperatures in C, rails as (current, average) mW."""

    ram_used_mb: Optional[int] = None
    ram_total_mb: Optional[int] = None
    gpu_load_pct: Optional[int] = None
    temps_c: Dict[str, float] = field(default_factory=dict)
    rails_mw: Dict[str, Tuple[int, int]] = field(default_factory=dict)

    def total_rail(self, names: Sequence[str] = TOTAL_RAILS) -> Optional[str]:
        """The board's total input rail in this line, or None when none of `names` is there."""
        return next((n for n in names if n in self.rails_mw), None)

    def total_w(self, names: Sequence[str] = TOTAL_RAILS) -> Optional[float]:
        rail = self.total_rail(names)
        return None if rail is None else self.rails_mw[rail][0] / 1000.0


def parse_line(line: str) -> Optional[TegraSample]:
    """A TegraSample, or None for a line that carries nothing tegrastats prints (blank, a warning)."""
    sample = TegraSample()
    ram = _RAM.search(line)
    if ram:
        sample.ram_used_mb, sample.ram_total_mb = int(ram.group(1)), int(ram.group(2))
    gpu = _GPU.search(line)
    if gpu:
        sample.gpu_load_pct = int(gpu.group(1))
    sample.temps_c = {name: float(value) for name, value in _TEMP.findall(line)}
    sample.rails_mw = {name: (int(cur), int(avg)) for name, cur, avg in _RAIL.findall(line) if name not in _NOT_RAILS}
    if ram is None and gpu is None and not sample.rails_mw:
        return None
    return sample


def parse_lines(lines: Iterable[str]) -> List[TegraSample]:
    return [s for s in map(parse_line, lines) if s is not None]
