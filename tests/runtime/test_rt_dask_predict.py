"""`predict` on a real Dask LocalCluster (2 worker processes, 1 thread each): the files equal the single-process run's.

The reference is the single-process path (runtime.predict) on the same tiny ONNX models; GeoTIFF class maps,
previews, YOLO txt files, annotated images and predictions.json are compared byte for byte (predictions.json
after the output folder's name is replaced, the one thing that differs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rt_tiny_models as tiny
from agrideploy.runtime import predict
from agrideploy.runtime.dask_tasks import PredictSettings
from agrideploy.runtime.select import open_runner
from PIL import Image
from rasterio.transform import from_origin

distributed = pytest.importorskip("distributed")
from agrideploy.runtime.dask_predict import gpu_resources, predict_on_cluster  # noqa: E402

SCENE_SIZES = [(70, 101), (200, 90), (64, 64), (150, 150)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny.tiny_onnx_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=50) as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(SCENE_SIZES):
        data = rng.integers(0, 3000, (4, h, w)).astype(np.uint16)
        with rasterio.open(folder / f"s{i}.tif", "w", driver="GTiff", height=h, width=w, count=4, dtype="uint16",
                           crs="EPSG:32633", transform=from_origin(500000.0, 4650000.0, 10.0, 10.0)) as dst:
            dst.write(data)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    for i in range(5):
        Image.fromarray((rng.random((90 + 10 * i, 120, 3)) * 255).astype(np.uint8)).save(folder / f"im{i}.png")
    Image.fromarray((rng.random((96, 96, 3)) * 255).astype(np.uint8)).save(folder / "im5.jpg")
    return folder


SEG = PredictSettings(overlap=0.25, blend="gaussian", batch=5)
DET = PredictSettings(conf=0.5)


def single_process(model, source, out_dir, settings):
    sources = predict.list_sources(source)
    with open_runner(model) as runner:
        task = runner.record.task
        predict.prepare_outputs(out_dir, sources, task, False)
        if task == "detect":
            predict.predict_detect(runner, sources, out_dir, conf=settings.conf, progress=False)
        else:
            predict.predict_segment(runner, sources, out_dir, overlap=settings.overlap, blend=settings.blend,
                                    batch=settings.batch, progress=False)


def assert_same_files(ref: Path, got: Path):
    names = sorted(p.name for p in ref.iterdir())
    assert sorted(p.name for p in got.iterdir()) == names
    for name in names:
        a, b = (ref / name).read_bytes(), (got / name).read_bytes()
        if name == "predictions.json":
            a, b = a.replace(str(ref).encode(), b"OUT"), b.replace(str(got).encode(), b"OUT")
        assert a == b, name


def test_geotiff_scenes_match_single_process_including_scenes_split_in_blocks(models, client, scenes, tmp_path):
    single_process(models["seg"], scenes, tmp_path / "ref", SEG)
    whole = predict_on_cluster(client, models["seg"], predict.list_sources(scenes), tmp_path / "whole", SEG, progress=False)
    assert (whole.done, whole.failed, whole.split, whole.workers) == (4, [], 0, 2)
    assert_same_files(tmp_path / "ref", tmp_path / "whole")
    # 64 KB per block: every scene is cut into 32-row blocks whose halo comes from its neighbours
    split = predict_on_cluster(client, models["seg"], predict.list_sources(scenes), tmp_path / "blocks", SEG,
                               budget_bytes=64 << 10, progress=False)
    assert (split.done, split.failed, split.split) == (4, [], 4)
    assert_same_files(tmp_path / "ref", tmp_path / "blocks")


def test_image_folder_matches_single_process_in_batches(models, client, images, tmp_path):
    single_process(models["det"], images, tmp_path / "ref", DET)
    got = predict_on_cluster(client, models["det"], predict.list_sources(images), tmp_path / "dist", DET,
                             images_per_task=4, progress=False)
    assert (got.done, got.failed) == (6, [])
    assert_same_files(tmp_path / "ref", tmp_path / "dist")


def test_bad_scene_is_one_line_in_the_summary_and_leaves_no_file(models, client, scenes, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("s0.tif", "s2.tif"):
        (src / name).write_bytes((scenes / name).read_bytes())
    (src / "broken.tif").write_bytes(b"II*\x00" + b"\x00" * 64)  # a TIFF header and nothing else
    out = tmp_path / "out"
    got = predict_on_cluster(client, models["seg"], predict.list_sources(src), out, SEG, progress=False)
    assert got.done == 2 and len(got.failed) == 1
    line = got.failed[0]
    assert line.startswith("broken.tif: ") and "\n" not in line and "Traceback" not in line
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json", "s0_classes.tif", "s0_preview.png",
                                                     "s2_classes.tif", "s2_preview.png"]
    assert "1 failed:\n  broken.tif: " in got.format()


def test_bad_image_of_a_batch_is_retried_alone_and_reported(models, client, images, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("im0.png", "im1.png", "im2.png"):
        (src / name).write_bytes((images / name).read_bytes())
    (src / "im1b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    got = predict_on_cluster(client, models["det"], predict.list_sources(src), out, DET, images_per_task=4, progress=False)
    assert got.done == 3 and len(got.failed) == 1 and got.failed[0].startswith("im1b.png: ")
    assert sorted(p.name for p in out.iterdir()) == ["im0.png", "im0.txt", "im1.png", "im1.txt", "im2.png", "im2.txt",
                                                     "predictions.json"]
    doc = json.loads((out / "predictions.json").read_text())
    assert [Path(e["image"]).name for e in doc["images"]] == ["im0.png", "im1.png", "im2.png"]
    assert [Path(e["image"]).name for e in doc["failed"]] == ["im1b.png"]


class KillOnce(distributed.WorkerPlugin):
    """Kills the worker process that starts the task of scene `stem`, the first time only (a marker file says so)."""

    name = "test-kill-once"

    def __init__(self, stem: str, marker: str):
        self.stem, self.marker = stem, marker

    def transition(self, key, start, finish, **kwargs):
        if finish == "executing" and f"-{self.stem}-" in str(key) and not os.path.exists(self.marker):
            Path(self.marker).touch()
            os._exit(1)


@pytest.mark.slow
def test_worker_killed_mid_run_loses_no_scene(models, client, scenes, tmp_path):
    single_process(models["seg"], scenes, tmp_path / "ref", SEG)
    marker = tmp_path / "killed"
    client.register_plugin(KillOnce("s1", str(marker)))
    try:
        got = predict_on_cluster(client, models["seg"], predict.list_sources(scenes), tmp_path / "dist", SEG, progress=False)
    finally:
        client.unregister_worker_plugin(KillOnce.name)
    assert marker.exists()  # a worker did die while it held scene s1
    assert (got.done, got.failed) == (4, [])
    assert_same_files(tmp_path / "ref", tmp_path / "dist")


def test_single_process_predict_does_not_import_dask(models, scenes, tmp_path):
    code = (
        "import sys; from agrideploy.cli import main\n"
        f"rc = main(['predict', {str(models['seg'])!r}, {str(scenes / 's2.tif')!r}, '-o', {str(tmp_path / 'out')!r}])\n"
        "assert rc == 0, rc\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
    assert (tmp_path / "out" / "s2_classes.tif").is_file()


@pytest.mark.parametrize("flags, text", [
    (["--workers", "0"], "--workers must be at least 1, got 0"),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "give --scheduler or --workers, not both"),
    (["--workers", "2", "--block-mb", "0"], "--block-mb must be positive, got 0.0"),
])
def test_cluster_flags_refused_in_one_line(models, scenes, tmp_path, cli, flags, text):
    res = cli("predict", models["seg"], scenes, "-o", tmp_path / "out", *flags)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert [line for line in res.stderr.splitlines() if line.strip()] == [f"agrideploy predict: error: {text}"]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_scheduler_flag_uses_a_running_cluster(models, client, scenes, tmp_path, cli):
    single_process(models["seg"], scenes, tmp_path / "ref" / "out", SEG)
    out = tmp_path / "dist" / "out"
    res = cli("predict", models["seg"], scenes, "-o", out, "--overlap", "0.25", "--blend", "gaussian", "--batch", "5",
              "--scheduler", client.scheduler.address)
    assert res.returncode == 0, res.stderr
    assert "4 scene(s) ->" in res.stderr and "on 2 Dask worker(s)" in res.stderr
    assert_same_files(tmp_path / "ref" / "out", out)


@pytest.mark.slow
def test_cli_workers_flag_runs_a_local_cluster(models, scenes, tmp_path, cli):
    single_process(models["seg"], scenes, tmp_path / "ref" / "out", SEG)
    out = tmp_path / "dist" / "out"
    res = cli("predict", models["seg"], scenes, "-o", out, "--overlap", "0.25", "--blend", "gaussian", "--batch", "5",
              "--workers", "2", "--block-mb", "0.05")
    assert res.returncode == 0, res.stderr
    assert "4 scene(s) ->" in res.stderr and "on 2 Dask worker(s); 4 scene(s) in blocks" in res.stderr
    assert_same_files(tmp_path / "ref" / "out", out)


def test_tasks_ask_for_a_gpu_only_where_workers_advertise_one(client):
    assert gpu_resources(client) is None  # the LocalCluster's workers declare no resources

    class Advertised:
        def scheduler_info(self):
            return {"workers": {"tcp://a:1": {"resources": {}}, "tcp://b:1": {"resources": {"GPU": 1.0}}}}

    assert gpu_resources(Advertised()) == {"GPU": 1}


@pytest.mark.slow
def test_scaling_benchmark_runs_and_prints_both_sides():
    res = subprocess.run([sys.executable, "-m", "agrideploy.benchmarks.scripts.dask_scaling", "--quick"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    rows = [line.split() for line in res.stdout.splitlines() if line.startswith(("single", "Dask"))]
    assert [r[:3] for r in rows] == [["single", "process", "(no"], ["Dask,", "1", "worker"], ["Dask,", "2", "workers"]]
    assert rows[1][-1] == "1.00x"  # the baseline of the ratio column
