"""Scenes per second of `predict` on a local Dask cluster of 1 and of 2 worker processes, side by side.

    python -m agrideploy.benchmarks.scripts.dask_scaling [--scenes 8] [--size 256] [--rounds 3] [--quick]

A random-weight segmenter of the zoo (exported once to ONNX) predicts the same GeoTIFF scenes on both
clusters; every worker has one thread and one ONNX Runtime intra-op thread, so the 2-worker cluster uses
two cores where the 1-worker cluster uses one. The clusters run alternately, round after round, so both see
the same machine load; each has one warm-up run (workers open their runner) that is not counted. The single-
process path (no Dask, one ORT thread) runs in the same loop as the baseline. The figure is the median wall
time of a whole `predict` (scheduling, reading, inference, writing), as scenes/s and tiles/s.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Config:
    scenes: int = 8
    size: int = 256
    rounds: int = 3
    arch: str = "deeplabv3plus-mobilenetv2"
    tile: int = 32
    channels: int = 4
    classes: int = 5
    batch: int = 64


def write_scenes(folder: Path, cfg: Config) -> list:
    import rasterio
    from rasterio.transform import from_origin

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(cfg.scenes):
        data = rng.integers(0, 256, (cfg.channels, cfg.size, cfg.size)).astype(np.uint8)
        with rasterio.open(folder / f"scene{i:03d}.tif", "w", driver="GTiff", height=cfg.size, width=cfg.size,
                           count=cfg.channels, dtype="uint8", crs="EPSG:32633",
                           transform=from_origin(500000.0, 4650000.0, 10.0, 10.0)) as dst:
            dst.write(data)
    return sorted(folder.glob("*.tif"))


def export_model(work: Path, cfg: Config) -> Path:
    from agrideploy.models import create_model
    from agrideploy.optimize.artefacts import Artefacts, Calibration

    loaded = create_model(cfg.arch, classes=cfg.classes, channels=cfg.channels, imgsz=[cfg.tile])
    return Artefacts(work / "cache", Calibration()).onnx(loaded)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--size", type=int, default=256, help="scene side in pixels")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 scenes of 64 px, 1 round: a smoke test of the script")
    args = parser.parse_args(argv)
    cfg = Config(scenes=2, size=64, rounds=1) if args.quick else Config(scenes=args.scenes, size=args.size, rounds=args.rounds)

    import distributed
    from agrideploy.runtime import predict
    from agrideploy.runtime.dask_predict import predict_on_cluster
    from agrideploy.runtime.dask_tasks import PredictSettings
    from agrideploy.runtime.ort_runner import OrtRunner
    from agrideploy.runtime.tiling import TileGrid

    settings = PredictSettings(batch=cfg.batch)
    with tempfile.TemporaryDirectory(prefix="agrideploy-dask-") as tmp:
        work = Path(tmp)
        sources = write_scenes(work / "scenes", cfg)
        model = export_model(work, cfg)
        tiles = cfg.scenes * TileGrid((cfg.size, cfg.size), (cfg.tile, cfg.tile), settings.overlap).count
        runs = iter(range(10**6))

        def single():
            out = work / f"out{next(runs)}"
            with OrtRunner(model, providers=["cpu"], threads=1) as runner:
                predict.prepare_outputs(out, sources, "segment", False)
                predict.predict_segment(runner, sources, out, batch=cfg.batch, progress=False)

        with distributed.LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) as one, \
                distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, silence_logs=logging.ERROR) as two, \
                distributed.Client(one) as c1, distributed.Client(two) as c2:

            def on(client):
                return lambda: predict_on_cluster(client, model, sources, work / f"out{next(runs)}", settings, threads=1,
                                                  progress=False)

            sides = {"single process (no Dask)": single, "Dask, 1 worker": on(c1), "Dask, 2 workers": on(c2)}
            for step in sides.values():  # warm-up: imports, runners opened on the workers
                step()
            times = {name: [] for name in sides}
            for r in range(cfg.rounds):
                order = list(sides.items()) if r % 2 == 0 else list(reversed(sides.items()))
                for name, step in order:
                    start = time.perf_counter()
                    step()
                    times[name].append(time.perf_counter() - start)
    print(f"{cfg.scenes} GeoTIFF scenes of {cfg.size}x{cfg.size}x{cfg.channels}, {cfg.arch} (random weights, ONNX Runtime CPU, "
          f"1 intra-op thread per runner), tiles {cfg.tile}x{cfg.tile} at 50% overlap ({tiles} tiles), median of {cfg.rounds} "
          "interleaved rounds of a whole predict run")
    print(f"{'':28s} {'s/run':>7s} {'scenes/s':>9s} {'tiles/s':>8s} {'vs 1 worker':>12s}")
    base = statistics.median(times["Dask, 1 worker"])
    for name, values in times.items():
        t = statistics.median(values)
        print(f"{name:28s} {t:7.2f} {cfg.scenes / t:9.2f} {tiles / t:8.0f} {base / t:11.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
