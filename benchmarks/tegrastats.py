"""tegrastats lines -> numbers: RAM, GPU load, temperatures and the module's power, for every Jetson generation.

Parsing is kept apart from sampling (benchmarks/power.py), so a raw log recorded on a device can be
parsed again later. Rails print `current/average` in mW, with an `mW` suffix from JetPack 5 on and
bare numbers before. Which rails make up the module's power depends on the module:
  * Nano: POM_5V_IN, the module input (its POM_5V_GPU / POM_5V_CPU are inside it);
  * TX2, Xavier NX, Orin Nano / NX: VDD_IN, the module input (the sub-rails are inside it);
  * AGX Xavier, AGX Orin, Thor: no input rail; their module rails are disjoint and summed (AGX Xavier
    GPU+CPU+SOC+CV+VDDRQ+SYS5V; AGX Orin VDD_GPU_SOC+VDD_CPU_CV+VIN_SYS_5V0(+VDDQ_VDD2_1V8AO): its
    VIN_SYS_5V0 alone is only the 5 V system rail, never the total; Thor VDD_GPU+VDD_CPU_SOC_MSS+
    VIN_SYS_5V0). A VDD_IN, where a BSP prints one, wins. `NC` channels are unconnected, and Thor's
    `VIN` is the developer kit carrier's input (the whole board), so neither is summed.
The rails used are recorded with every figure, so a reader can check the choice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

INPUT_RAILS = ("VDD_IN", "POM_5V_IN")  # one reading that is the whole module
NOT_MODULE = ("NC", "VIN")  # unconnected channels; Thor's carrier-board input
NOT_RAILS = ("RAM", "SWAP", "IRAM")

_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_GPU = re.compile(r"\bGR3D_FREQ (\d+)%")
_TEMP = re.compile(r"\b(\w+)@(-?\d+(?:\.\d+)?)C\b")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")


@dataclass
class TegraSample:
    """One tegrastats line: RAM in MB, GPU load in %, temperatures in C, rails as (current, average) mW."""

    ram_used_mb: Optional[int] = None
    ram_total_mb: Optional[int] = None
    gpu_load_pct: Optional[int] = None
    temps_c: Dict[str, float] = field(default_factory=dict)
    rails_mw: Dict[str, Tuple[int, int]] = field(default_factory=dict)

    def module_rails(self) -> Optional[List[str]]:
        """The rails whose sum is the module's power in this line (see the module docstring); None when unknown."""
        rails = self.rails_mw
        for name in INPUT_RAILS:
            if name in rails:
                return [name]
        summed = [name for name in rails if name not in NOT_MODULE]
        return summed or None

    def module_w(self) -> Optional[float]:
        rails = self.module_rails()
        return None if rails is None else sum(self.rails_mw[r][0] for r in rails) / 1000.0


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
    sample.rails_mw = {name: (int(cur), int(avg)) for name, cur, avg in _RAIL.findall(line) if name not in NOT_RAILS}
    if ram is None and gpu is None and not sample.rails_mw:
        return None
    return sample


def parse_lines(lines: Iterable[str]) -> List[TegraSample]:
    return [s for s in map(parse_line, lines) if s is not None]
