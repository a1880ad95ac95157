"""Latency statistics over every kept sample: the STATS object of the results schema.

Percentiles interpolate linearly between order statistics (NumPy's default method), std is the
population std (as trtexec reports it), and CoV = std / mean. A CoV above 2.5 % is flagged unstable,
trtexec's threshold: at that spread two medians a few per cent apart are not a real difference.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np

UNSTABLE_COV = 0.025
UNSTABLE_TEXT = f"{100 * UNSTABLE_COV:g} %"  # how reports and tables state the threshold
PERCENTILES = (90, 95, 99)
PERCENTILE_METHOD = "linear"
SAMPLE_DECIMALS = 4  # 0.1 microsecond: far below any timer's real resolution


def summarize(samples_ms: Sequence[float]) -> Dict[str, Any]:
    """The STATS object for `samples_ms`, computed from the rounded samples it keeps."""
    kept = [round(float(v), SAMPLE_DECIMALS) for v in samples_ms]
    if not kept:
        raise ValueError("no samples to summarize")
    a = np.asarray(kept, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError("latency samples must be finite")
    mean = float(a.mean())
    std = float(a.std())
    cov = std / mean if mean > 0 else 0.0
    stats: Dict[str, Any] = {"samples": kept, "count": len(kept), "min": float(a.min()), "mean": mean,
                             "median": float(np.median(a))}
    for p in PERCENTILES:
        stats[f"p{p}"] = float(np.percentile(a, p))
    stats.update(max=float(a.max()), std=std, cov=cov, unstable=bool(cov > UNSTABLE_COV))
    return stats
