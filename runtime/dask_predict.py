"""`predict` over a Dask cluster: scenes (segmentation) and image batches (detection) spread over workers.

Dask's `distributed` does the scheduling, retries and recovery from lost workers; this module plans the
units of work (runtime.dask_tasks runs them), shows scenes done / total, and writes predictions.json in
source order, byte for byte what the single-process run writes. A scene that fails twice is reported in
one line and leaves no file; the other scenes are kept. A GeoTIFF scene larger than a worker's memory
budget is predicted as row blocks (runtime.scene_blocks) and stitched by one task.
Scenes, model and output folder must be visible to every worker under the same paths (a shared file system).
"""

from __future__ import annotations

import contextlib
import glob
import logging
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from agrideploy.kernels.imageio import is_raster
from agrideploy.runtime import dask_tasks as tasks
from agrideploy.runtime import outputs, predict
from agrideploy.runtime.dask_tasks import PredictSettings

from agrideploy.errors import AgrideployError
from agrideploy.lazy import require

RETRIES = 1  # a failed task runs once more, maybe on another worker, before its scene is reported
DEFAULT_BUDGET_SHARE = 4  # a block may use a quarter of a worker's memory limit
NO_LIMIT_BUDGET = 1 << 30  # bytes per block when workers have no memory limit


@dataclass
class ClusterSummary:
    task: str
    done: int
    out_dir: Path
    workers: int
    seconds: float
    failed: List[str] = field(default_factory=list)
    split: int = 0  # scenes predicted in blocks

    def format(self) -> str:
        unit = "image" if self.task == "detect" else "scene"
        rate = self.done / self.seconds if self.seconds > 0 else float("nan")
        text = (f"{self.done} {unit}(s) -> {self.out_dir} in {self.seconds:.1f} s ({rate:.2f} {unit}s/s) "
                f"on {self.workers} Dask worker(s)")
        if self.split:
            text += f"; {self.split} scene(s) in blocks"
        if self.failed:
            text += f"; {len(self.failed)} failed:" + "".join(f"\n  {line}" for line in self.failed)
        return text


@contextlib.contextmanager
def dask_client(scheduler: Optional[str] = None, workers: Optional[int] = None) -> Iterator[object]:
    """A Client of the scheduler at `scheduler`, or of a local cluster of `workers` one-thread processes."""
    distributed = require("distributed", "distributed")
    if scheduler:
        try:
            client = distributed.Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise AgrideployError(f"cannot reach the Dask scheduler at {scheduler}: {tasks.one_line(exc)}") from None
        with client:
            yield client
        return
    with warnings.catch_warnings():  # its HTTP server moves off a busy port 8787 by itself: no need to say so
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                           silence_logs=logging.ERROR)
    with cluster, distributed.Client(cluster) as client:
        yield client


def worker_budget(client) -> int:
    """Bytes one block may use: a share of the smallest worker memory limit."""
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    limits = [m for m in limits if m > 0]
    return min(limits) // DEFAULT_BUDGET_SHARE if limits else NO_LIMIT_BUDGET


def gpu_resources(client) -> Optional[dict]:
    """{"GPU": 1} when workers advertise GPUs (`dask worker --resources GPU=1`): a task then holds one GPU, so
    a worker runs one task per GPU and tasks go only to GPU workers. None otherwise."""
    info = client.scheduler_info()["workers"].values()
    return {"GPU": 1} if any((w.get("resources") or {}).get("GPU") for w in info) else None


def scene_blocks(path: Path, facts: dict, budget: int) -> Optional[List[Tuple[int, int]]]:
    """Row blocks of a GeoTIFF scene whose whole-scene working set exceeds `budget`; None to predict it whole."""
    if not is_raster(path):
        return None
    from agrideploy.kernels.imageio import open_raster
    from agrideploy.runtime.scene_blocks import plan_blocks
    from agrideploy.runtime.tiling import TileGrid

    try:
        with open_raster(path) as src:
            h, w = src.height, src.width
    except AgrideployError:
        return None  # an unreadable scene fails in its task, where it is reported with the others
    channels, classes = facts["channels"], facts["classes"]
    if 4 * h * w * (channels + classes) <= budget or h < facts["tile"][0] or w < facts["tile"][1]:
        return None  # small enough (or too small for a tile: the scene task says so)
    grid = TileGrid((h, w), facts["tile"], facts["doc"]["tiling"]["overlap"])
    blocks = plan_blocks(grid, facts["batch"], channels, classes, budget)
    return blocks if len(blocks) > 1 else None


def predict_on_cluster(client, model, sources: Sequence[Path], out_dir, settings: PredictSettings, *,
                       backend: Optional[str] = None, device: Optional[str] = None, force: bool = False,
                       budget_bytes: Optional[int] = None, images_per_task: int = 16, threads: Optional[int] = None,
                       progress: bool = True) -> ClusterSummary:
    """Predict `sources` on the cluster behind `client`; files as the single-process run writes them."""
    distributed = require("distributed", "distributed")
    client.register_plugin(tasks.RunnerPlugin(model, backend, device, threads))
    start = time.perf_counter()
    resources = gpu_resources(client)
    facts = _result(client.submit(tasks.describe_run, settings, pure=False, resources=resources))
    task = facts["task"]
    out_dir = predict.prepare_outputs(out_dir, sources, task, force)
    run = uuid.uuid4().hex[:8]
    budget = budget_bytes or worker_budget(client)
    pending = distributed.as_completed()
    owner: Dict[str, Tuple[List[int], bool]] = {}  # future key -> (source indices, retry a failed one alone)
    split = 0

    def submit(func, indices, *args, name: str, retries: int = RETRIES, alone: bool = False) -> None:
        fut = client.submit(func, *args, key=f"agrideploy-{name}-{run}-{uuid.uuid4().hex[:6]}", retries=retries, pure=False,
                            resources=resources)
        pending.add(fut)
        owner[fut.key] = (indices, alone)

    if task == "detect":
        for i in range(0, len(sources), images_per_task):
            idx = list(range(i, min(i + images_per_task, len(sources))))
            submit(tasks.detect_images_task, idx, [sources[j] for j in idx], out_dir, settings, name=f"images-{i}", alone=True)
    else:
        for i, path in enumerate(sources):
            blocks = scene_blocks(path, facts, budget)
            if blocks is None:
                submit(tasks.segment_scene_task, [i], path, out_dir, settings, name=f"scene-{i}-{path.stem}")
                continue
            split += 1
            parts = [client.submit(tasks.segment_block_task, path, settings, r0, r1, retries=RETRIES, pure=False,
                                   resources=resources, key=f"agrideploy-block-{i}-{path.stem}-{r0}-{run}") for r0, r1 in blocks]
            submit(tasks.assemble_scene_task, [i], path, out_dir, settings, blocks, *parts, name=f"stitch-{i}-{path.stem}")

    entries: Dict[int, dict] = {}
    errors: Dict[int, str] = {}
    tqdm = require("tqdm").tqdm
    with tqdm(total=len(sources), desc="predict", unit="image" if task == "detect" else "scene", disable=not progress,
              leave=False) as bar:
        for fut in pending:
            indices, alone = owner.pop(fut.key)
            results = _outcome(fut, [sources[j].name for j in indices])
            for j, res in zip(indices, results):
                if isinstance(res, dict):
                    entries[j] = res
                elif alone:  # the retry of an image of a batch: that image alone
                    submit(tasks.detect_images_task, [j], [sources[j]], out_dir, settings, True,
                           name=f"image-{j}-{sources[j].stem}", retries=0)
                    continue
                else:
                    errors[j] = res
                bar.update(1)
    _remove_stale_parts(out_dir, sources, task)
    doc = facts["doc"]
    doc["images" if task == "detect" else "scenes"] = [entries[j] for j in sorted(entries)]
    if errors:
        doc["failed"] = [{"image": str(sources[j]), "error": errors[j]} for j in sorted(errors)]
    outputs.write_json(out_dir / "predictions.json", doc, force=True)
    workers = len(client.scheduler_info()["workers"])
    return ClusterSummary(task, len(entries), out_dir, workers, time.perf_counter() - start,
                          [errors[j] for j in sorted(errors)], split)


def _outcome(fut, names: List[str]) -> list:
    """A finished future's per-source results: entries, or one-line errors `<name>: <why>`."""
    if fut.status == "error":
        exc = fut.exception()
        if isinstance(exc, tasks.SceneFailed):
            return [str(exc)] * len(names)
        return [f"{name}: {tasks.one_line(exc)}" for name in names]
    res = fut.result()
    return res if isinstance(res, list) else [res]


def _result(fut):
    """The result of a setup task; its error as one agrideploy line."""
    try:
        return fut.result()
    except AgrideployError:
        raise
    except Exception as exc:
        raise AgrideployError(tasks.one_line(exc)) from None


def _remove_stale_parts(out_dir: Path, sources: Sequence[Path], task: str) -> None:
    """Temporary files of writes cut short by a lost worker (their scene was redone elsewhere)."""
    for path in sources:
        for target in tasks.scene_outputs(out_dir, path, task):
            for part in out_dir.glob(f".{glob.escape(target.name)}.*.part"):
                part.unlink()
