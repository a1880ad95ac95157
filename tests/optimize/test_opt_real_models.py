"""FP16 and INT8 ONNX of the card's real architectures run in ONNX Runtime and agree with FP32.

Models come from agrideploy.models.create_model (random weights, BatchNorm statistics
recomputed so outputs depend on the input) and agrideploy.export.to_onnx, at small input sizes
to keep the CPU time down. INT8 is calibrated on 8 synthetic images; agreement is reported,
the mAP/mIoU gates belong to the benchmarks. Tolerances, with what was observed here:
  detectors, FP16: boxes 0.5 px, scores 0.01
  detectors, INT8: scores 0.35 max, mean 0.05; top-10 detections overlap >= 3/10
  DeepLabV3+ Xception, FP16: logits 0.05, argmax agreement >= 99 %
  DeepLabV3+ Xception, INT8: argmax agreement >= 80 %
"""

from __future__ import annotations

import numpy as np
import pytest
from agrideploy.optimize.ort_precision import to_fp16, to_int8
from opt_models import calibrate_bn, run_ort, write_images

CASES = {
    # arch: (create_model kwargs, input size)
    "yolov5s": ({"classes": 3}, 128),
    "effv2b0-yolov5": ({"classes": 3}, 128),
    "deeplabv3plus-xception": ({"classes": 5, "channels": 4}, 32),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def variants(request, tmp_path_factory):
    torch = pytest.importorskip("torch")
    from agrideploy.export import to_onnx
    from agrideploy.models import create_model

    arch = request.param
    kwargs, size = CASES[arch]
    try:
        loaded = create_model(arch, imgsz=size, **kwargs)
    except ImportError as exc:
        pytest.skip(f"{arch} cannot be built in this checkout yet ({exc})")
    channels = kwargs.get("channels", 3)
    calibrate_bn(torch, loaded.module, (1, channels, size, size))
    root = tmp_path_factory.mktemp(arch)
    fp32 = to_onnx(loaded, str(root / "model.onnx"), opset=13, verify=False, progress=False).path
    images = write_images(root / "calib", 8, size=(size + 40, size + 20), bands=channels)
    x = np.random.default_rng(3).random((1, channels, size, size), dtype=np.float32)
    return {
        "arch": arch,
        "ref": run_ort(fp32, x),
        "fp16": run_ort(to_fp16(fp32, root / "model.fp16.onnx"), x),
        "int8": run_ort(to_int8(fp32, root / "model.int8.onnx", calib=images, samples=8), x),
    }


def _is_detector(v) -> bool:
    return v["ref"].ndim == 3


def test_fp16_agrees(variants):
    ref, got = variants["ref"], variants["fp16"]
    assert got.shape == ref.shape and got.dtype == np.float32
    if _is_detector(variants):
        assert np.abs(got[..., :4] - ref[..., :4]).max() < 0.5
        assert np.abs(got[..., 4:] - ref[..., 4:]).max() < 0.01
    else:
        assert np.abs(got - ref).max() < 0.05
        assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.99


def test_int8_agrees(variants):
    ref, got = variants["ref"], variants["int8"]
    assert got.shape == ref.shape
    if _is_detector(variants):
        err = np.abs(got[..., 4:] - ref[..., 4:])
        assert err.max() < 0.35 and err.mean() < 0.05
        score_ref, score_got = ref[0, :, 4] * ref[0, :, 5:].max(-1), got[0, :, 4] * got[0, :, 5:].max(-1)
        assert len(set(np.argsort(-score_ref)[:10]) & set(np.argsort(-score_got)[:10])) >= 3
    else:
        assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.8


def test_reference_depends_on_input(variants):
    """Guards the comparisons above: a collapsed random model would agree with anything."""
    ref = variants["ref"]
    spread = ref[..., 4:].std() if _is_detector(variants) else ref.std(axis=(2, 3)).mean()
    assert spread > 1e-3
