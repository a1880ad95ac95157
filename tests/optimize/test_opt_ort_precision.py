"""FP16 and INT8 ONNX run in ONNX Runtime and agree with FP32 within stated tolerances.

Tolerances (tiny detector at 64x64, boxes in input pixels; scores in [0, 1]):
  FP16 on random inputs: boxes 0.1 px, scores 0.002 (observed 0.029 px / 0.0003: the decode stays FP32)
  INT8 on held-out images like the calibration set: scores max 0.03, mean 0.005; boxes 3 px; top-10
  detections overlap >= 8/10 (observed minmax 0.011 / 0.0016 / 0.8 px / 10 of 10)
  INT8 for ORT CPU (every op quantized, uint8 activations): scores max 0.06, mean 0.01, boxes 8 px
  (observed minmax 0.037 / 0.0069 / 4.9 px); segmenter argmax agreement >= 97 % (observed 99.1 %)
Segmenter: FP16 logits 1e-2 (observed 7e-4); INT8 argmax agreement >= 97 % (observed 99.7 %).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from agrideploy.optimize import ort_precision
from agrideploy.optimize.calibration import prepare_image
from agrideploy.optimize.onnx_meta import read_onnx_summary
from opt_models import export_tiny, run_ort, sample_input, write_images

from agrideploy.errors import AgrideployError


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("ortprec")
    det = export_tiny(root / "det.onnx", "detect", dynamic=True)
    seg = export_tiny(root / "seg.onnx", "segment")
    work = {
        "root": root,
        "det": det,
        "seg": seg,
        "det_imgs": write_images(root / "det_imgs", 16, bands=3),
        "seg_imgs": write_images(root / "seg_imgs", 16, bands=4),
    }
    for key, bands in (("det", 3), ("seg", 4)):  # held-out images from the calibration set's distribution
        held = sorted(write_images(root / f"{key}_held", 2, bands=bands, seed=7).glob("img*"))
        record = ort_precision.onnx_record(ort_precision.read_onnx(work[key]))
        work[f"{key}_held"] = np.stack([prepare_image(p, record, bands, (64, 64)) for p in held])
    return work


def test_decode_tail_is_what_follows_the_last_conv(work):
    model = ort_precision.read_onnx(work["det"])
    ort_precision.name_nodes(model)
    tail = ort_precision.decode_tail(model)
    ops = {n.op_type for n in model.graph.node if n.name in tail}
    assert "Conv" not in ops
    assert {"Sigmoid", "Concat", "Pow"} <= ops
    # nothing before the head feeds the tail alone: every backbone activation is upstream of a Conv
    body = [n for n in model.graph.node if n.name not in tail and n.op_type == "Sigmoid"]
    assert len(body) == 4  # the four SiLU sigmoids of the backbone


def test_fp16_detector_agrees_and_keeps_io_fp32(work):
    out = ort_precision.to_fp16(work["det"], work["root"] / "det.fp16.onnx", force=True)
    summary = read_onnx_summary(out)
    assert summary.has_fp16 and "Cast" in summary.op_types
    info = json.loads(summary.metadata[ort_precision.PRECISION_KEY])
    assert info["precision"] == "fp16" and info["keep_io_types"]
    assert "agrideploy" in summary.metadata  # the model record travels with the artefact
    x = sample_input("detect", batch=2)
    ref, got = run_ort(work["det"], x), run_ort(out, x)
    assert got.dtype == np.float32 and got.shape == ref.shape
    assert np.abs(got[..., :4] - ref[..., :4]).max() < 0.1
    assert np.abs(got[..., 4:] - ref[..., 4:]).max() < 0.002
    model = ort_precision.read_onnx(out)
    casts = [n for n in model.graph.node if n.op_type == "Cast"]
    produced_by_cast = {n.output[0]: n for n in casts}
    assert not [n for n in casts if n.input[0] in produced_by_cast]  # no FP32->FP16->FP32 round trips


def test_fp16_pins_requested_layers(work):
    model = ort_precision.read_onnx(work["det"])
    ort_precision.name_nodes(model)
    first_conv = next(n.name for n in model.graph.node if n.op_type == "Conv")
    out = ort_precision.to_fp16(work["det"], work["root"] / "det.pin.fp16.onnx", fp32_layers=[first_conv], force=True)
    info = json.loads(read_onnx_summary(out).metadata[ort_precision.PRECISION_KEY])
    assert first_conv in info["fp32_nodes"]
    converted = ort_precision.read_onnx(out)
    conv = next(n for n in converted.graph.node if n.name == first_conv)
    weight = next(t for t in converted.graph.initializer if t.name == conv.input[1])
    assert weight.data_type == 1  # FLOAT: the pinned conv kept FP32 weights


def test_fp16_segmenter_agrees(work):
    out = ort_precision.to_fp16(work["seg"], work["root"] / "seg.fp16.onnx", force=True)
    x = sample_input("segment")
    assert np.abs(run_ort(out, x) - run_ort(work["seg"], x)).max() < 1e-2


def test_int8_detector_agrees_with_fp32(work):
    out = ort_precision.to_int8(work["det"], work["root"] / "det.int8.onnx", calib=work["det_imgs"], samples=16, method="minmax", force=True)
    summary = read_onnx_summary(out)
    assert summary.has_qdq
    info = json.loads(summary.metadata[ort_precision.PRECISION_KEY])
    assert info["per_channel"] is True and info["op_types"] == ["Conv"]
    model = ort_precision.read_onnx(out)
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    tail = ort_precision.decode_tail(model)
    tail_inputs = {i for n in model.graph.node if n.name in tail for i in n.input}
    assert len(dequantized) >= 5  # every conv's input and weight
    x = work["det_held"]
    ref, got = run_ort(work["det"], x), run_ort(out, x)
    err = np.abs(got[..., 4:] - ref[..., 4:])
    assert err.max() < 0.03 and err.mean() < 0.005
    assert np.abs(got[..., :4] - ref[..., :4]).max() < 3.0
    score_ref, score_got = ref[..., 4] * ref[..., 5:].max(-1), got[..., 4] * got[..., 5:].max(-1)
    for b in range(len(x)):
        top_ref, top_got = set(np.argsort(-score_ref[b])[:10]), set(np.argsort(-score_got[b])[:10])
        assert len(top_ref & top_got) >= 8
    assert tail and not dequantized & tail_inputs  # the decode reads FP32 tensors only


def test_int8_segmenter_argmax_agrees(work):
    out = ort_precision.to_int8(work["seg"], work["root"] / "seg.int8.onnx", calib=work["seg_imgs"], samples=16, method="percentile", force=True)
    x = work["seg_held"][:1]
    ref, got = run_ort(work["seg"], x), run_ort(out, x)
    assert (ref.argmax(1) == got.argmax(1)).mean() >= 0.97


def test_per_channel_needs_opset_13(work, capsys):
    old = export_tiny(work["root"] / "det12.onnx", "detect", opset=12)
    out = ort_precision.to_int8(old, work["root"] / "det12.int8.onnx", calib="random", samples=2, method="minmax", force=True)
    info = json.loads(read_onnx_summary(out).metadata[ort_precision.PRECISION_KEY])
    assert info["per_channel"] is False
    err = capsys.readouterr().err
    assert "opset 12" in err and "random" in err


def test_entropy_is_not_minmax(work):
    """ONNX Runtime's stock entropy (128 bins into 128) can only pick the full range, i.e. MinMax; ours clips."""
    scales = {}
    for method in ("entropy", "minmax"):
        out = ort_precision.to_int8(work["det"], work["root"] / f"det.{method}.onnx", calib=work["det_imgs"], samples=8, method=method, force=True)
        model = ort_precision.read_onnx(out)
        inits = {t.name: t for t in model.graph.initializer}
        scales[method] = [float(np.frombuffer(inits[n.input[1]].raw_data, np.float32)[0]) if inits[n.input[1]].raw_data
                          else inits[n.input[1]].float_data[0] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert len(scales["entropy"]) == len(scales["minmax"]) > 0
    assert all(e <= m * (1 + 1e-6) for e, m in zip(scales["entropy"], scales["minmax"]))  # entropy clips, never widens
    assert scales["entropy"] != scales["minmax"]


def test_unknown_calibration_method_is_refused(work):
    with pytest.raises(AgrideployError, match="--calib-method"):
        ort_precision.to_int8(work["det"], work["root"] / "x.onnx", calib="random", method="kl")


def test_fp32_layers_file_forms(tmp_path):
    plain = tmp_path / "a.json"
    plain.write_text('["conv1", "conv2"]')
    report = tmp_path / "b.json"
    report.write_text('{"fp32_layers": ["conv3"], "layers": []}')
    assert ort_precision.read_fp32_layers(plain) == ["conv1", "conv2"]
    assert ort_precision.read_fp32_layers(report) == ["conv3"]
    bad = tmp_path / "c.json"
    bad.write_text('{"fp32_layers": 3}')
    with pytest.raises(AgrideployError, match="list of layer names"):
        ort_precision.read_fp32_layers(bad)


def test_build_cli_makes_both_variants(work, cli):
    out = cli("build", work["det"], "--fp16", "--int8", "--calib", work["det_imgs"], "--calib-samples", "4", "--force")
    assert out.returncode == 0, out.stderr
    made = out.stdout.split()
    assert [p.endswith(s) for p, s in zip(made, ("det.fp16.onnx", "det.int8.onnx"))] == [True, True]
    assert "onnxruntime" in out.stderr  # says why it did not build an engine
    assert "INT8 vs FP32 on 8 held-out images: top-10 detections found again" in out.stderr  # 16 images, 4 calibrate
    x = sample_input("detect")
    for path in made:
        assert run_ort(path, x).shape == run_ort(work["det"], x).shape


def test_build_cli_user_errors(work, cli):
    no_calib = cli("build", work["det"], "--int8")
    assert no_calib.returncode == 2 and "--calib" in no_calib.stderr
    no_precision = cli("build", work["det"], "--backend", "onnxruntime")
    assert no_precision.returncode == 2 and "--fp16" in no_precision.stderr
    exists = cli("build", work["det"], "--fp16", "-o", work["det"])
    assert exists.returncode == 2 and "Traceback" not in exists.stderr


def _fused_ops(path, tmp_path):
    """Op types of the graph ONNX Runtime's CPU provider actually runs, after its own Q/DQ fusions."""
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / f"{path.stem}.optimized.onnx")
    onnxruntime.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return {n.op_type for n in ort_precision.read_onnx(opts.optimized_model_filepath).graph.node}


def test_int8_placement_is_the_targets(work, tmp_path, cli):
    """ORT CPU fuses its placement into integer convolutions; TensorRT's placement leaves ORT FP32 Conv + DQ."""
    made = {t: ort_precision.to_int8(work["det"], work["root"] / f"det.{t}.int8.onnx", calib=work["det_imgs"], samples=16,
                                     method="minmax", target=t, force=True) for t in ("ort-cpu", "tensorrt")}
    assert "QLinearConv" in _fused_ops(made["ort-cpu"], tmp_path)
    trt_ops = _fused_ops(made["tensorrt"], tmp_path)
    assert "QLinearConv" not in trt_ops and "Conv" in trt_ops
    info = json.loads(read_onnx_summary(made["ort-cpu"]).metadata[ort_precision.PRECISION_KEY])
    assert (info["target"], info["activations"], info["weights"], info["per_channel"]) == ("ort-cpu", "uint8", "int8", True)
    assert info["fp32_head_outputs"] == 1  # the Detect conv hands FP32 to the decode
    shown = cli("inspect", made["ort-cpu"])
    assert shown.returncode == 0 and "precision: int8 for ort-cpu: uint8 activations, int8 weights per channel" in shown.stdout
    assert "precision: int8 for tensorrt: int8 activations" in cli("inspect", made["tensorrt"]).stdout
    model = ort_precision.read_onnx(made["ort-cpu"])
    tail = ort_precision.decode_tail(model)
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert tail and not dequantized & {i for n in model.graph.node if n.name in tail for i in n.input}
    x = work["det_held"]
    ref, got = run_ort(work["det"], x), run_ort(made["ort-cpu"], x)
    err = np.abs(got[..., 4:] - ref[..., 4:])
    assert err.max() < 0.06 and err.mean() < 0.01
    assert np.abs(got[..., :4] - ref[..., :4]).max() < 8.0
    with pytest.raises(AgrideployError, match="INT8 target must be one of ort-cpu, tensorrt"):
        ort_precision.to_int8(work["det"], work["root"] / "x.onnx", calib="random", target="gpu")


def test_int8_segmenter_for_ort_cpu_argmax_agrees(work):
    out = ort_precision.to_int8(work["seg"], work["root"] / "seg.ortcpu.int8.onnx", calib=work["seg_imgs"], samples=16,
                                method="percentile", target="ort-cpu", force=True)
    x = work["seg_held"][:1]
    ref, got = run_ort(work["seg"], x), run_ort(out, x)
    assert (ref.argmax(1) == got.argmax(1)).mean() >= 0.97


def test_agreement_gate_is_total_for_the_same_model_and_counts_misses(work):
    from agrideploy.optimize.int8_gate import int8_agreement, top_k_matched

    model = ort_precision.read_onnx(work["det"])
    record = ort_precision.onnx_record(model)
    same = int8_agreement(work["det"], work["det"], work["det_imgs"], 12, record, [1, 3, 64, 64])
    assert (same.images, same.source, same.matched, same.total) == (4, "held-out images", 40, 40)
    seg_record = ort_precision.onnx_record(ort_precision.read_onnx(work["seg"]))
    all_used = int8_agreement(work["seg"], work["seg"], work["seg_imgs"], 16, seg_record, [1, 4, 64, 64])
    assert all_used.pixels_agree == 1.0 and "none held out" in all_used.source
    ref = np.array([[0, 0, 10, 10, 0.9, 0], [20, 20, 30, 30, 0.8, 1], [40, 40, 50, 50, 0.7, 2]], np.float32)
    got = np.array([[0, 0, 10, 12, 0.9, 0], [20, 20, 30, 30, 0.8, 2], [44, 40, 54, 50, 0.7, 2]], np.float32)
    # box 0 IoU 10/12 kept; box 1 changed class; box 2 IoU 60/140 < 0.5
    assert top_k_matched(ref, got) == 1 and top_k_matched(ref, ref) == 3
