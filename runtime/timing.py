"""Per-stage wall-clock timing of a pipeline (pre / infer / post), kept for the benchmark."""

from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

import numpy as np


class StageTimer:
    """Milliseconds per stage and call."""

    def __init__(self, stages: Sequence[str]):
        self.ms: Dict[str, List[float]] = {s: [] for s in stages}
        self._stage: Optional[str] = None
        self._start = 0.0

    def start(self, stage: str) -> None:
        self._stage, self._start = stage, time.perf_counter()

    def stop(self) -> None:
        self.ms[self._stage].append((time.perf_counter() - self._start) * 1e3)

    def medians(self) -> Dict[str, float]:
        return {s: float(np.median(v)) for s, v in self.ms.items() if v}

    def totals(self) -> Dict[str, float]:
        return {s: float(np.sum(v)) for s, v in self.ms.items()}
