"""mAP and mIoU against hand-computed cases and an independent brute-force implementation on random data;
dataset readers on small folders written here."""

from __future__ import annotations

import numpy as np
import pytest
from agrideploy.benchmarks import accuracy as A
from agrideploy.runtime.runner import Runner, TensorSpec
from brute_boxes import scalar_iou
from PIL import Image

from agrideploy.errors import AgrideployError
from agrideploy.record import ModelRecord

RECALLS = np.linspace(0, 1, 101)  # COCO's recall points


def det(x1, y1, x2, y2, score, cls=0):
    return [x1, y1, x2, y2, score, cls]


def test_hand_computed_ap():
    gts = np.array([[0, 0, 0, 10, 10], [0, 20, 20, 30, 30]], float)
    dets = np.array([det(0, 0, 10, 10, 0.9), det(50, 50, 60, 60, 0.8), det(20, 20, 30, 30, 0.7)])
    # TP, FP, TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> envelope 1 up to recall 0.5, then 2/3
    expected = (51 * 1.0 + 50 * (2 / 3)) / 101
    scores = A.detection_map([dets], [gts], num_classes=1)
    assert scores["map50"] == pytest.approx(expected)
    assert scores["map50_95"] == pytest.approx(expected)  # exact boxes: every threshold agrees
    assert scores["objects"] == 2


def test_iou_threshold_sweep():
    gts = np.array([[0, 0, 0, 10, 10]], float)
    dets = np.array([det(0, 0, 10, 6, 0.5)])  # IoU 0.6: a hit at 0.50, 0.55, 0.60 only
    assert A.match_detections(dets, gts).tolist() == [[True] * 3 + [False] * 7]
    scores = A.detection_map([dets], [gts], 1)
    assert scores["map50"] == pytest.approx(1.0)
    assert scores["map50_95"] == pytest.approx(0.3)


def test_wrong_class_duplicates_and_absent_classes():
    gts = np.array([[1, 0, 0, 10, 10]], float)
    dets = np.array([det(0, 0, 10, 10, 0.9, cls=0), det(0, 0, 10, 10, 0.8, cls=1), det(0, 0, 10, 10, 0.7, cls=1)])
    hits = A.match_detections(dets, gts)[:, 0]
    assert hits.tolist() == [False, True, False]  # other class never matches; a duplicate is a false positive
    scores = A.detection_map([dets], [gts], 3)
    assert scores["ap50_per_class"] == {1: pytest.approx(1.0)}  # classes 0 and 2 have no ground truth: left out
    assert scores["map50"] == pytest.approx(1.0)


def test_misses_and_empty_images():
    gts = [np.array([[0, 0, 0, 10, 10]], float), np.array([[0, 0, 0, 10, 10]], float), np.zeros((0, 5))]
    dets = [np.array([det(0, 0, 10, 10, 0.9)]), np.zeros((0, 6)), np.array([det(0, 0, 5, 5, 0.95)])]
    # order 0.95 (FP, image 3), 0.9 (TP): recall reaches 1/2 at precision 1/2, never 1
    scores = A.detection_map(dets, gts, 1)
    assert scores["map50"] == pytest.approx(51 * 0.5 / 101)
    with pytest.raises(AgrideployError, match="no labelled objects"):
        A.detection_map([dets[0]], [np.zeros((0, 5))], 1)


def brute_map(dets_per_image, gts_per_image, nc, thresholds):
    """Independent reference: plain loops, the textbook definitions, no NumPy tricks."""

    aps = {}
    for c in range(nc):
        n_gt = sum(1 for gts in gts_per_image for g in gts if int(g[0]) == c)
        if n_gt == 0:
            continue
        order = sorted(
            ((float(d[4]), i, k) for i, dets in enumerate(dets_per_image) for k, d in enumerate(dets) if int(d[5]) == c),
            key=lambda x: -x[0],
        )
        for t in thresholds:
            matched = set()
            flags = []
            for _, i, k in order:
                d = dets_per_image[i][k]
                best, best_j = -1.0, None
                for j, g in enumerate(gts_per_image[i]):
                    if int(g[0]) != c or (i, j) in matched:
                        continue
                    v = scalar_iou(d[:4], g[1:])
                    if v >= t and v > best:
                        best, best_j = v, j
                if best_j is not None:
                    matched.add((i, best_j))
                flags.append(best_j is not None)
            points, tp = [], 0
            for n, f in enumerate(flags, 1):
                tp += f
                points.append((tp / n_gt, tp / n))
            total = 0.0
            for r in RECALLS:
                total += max([p for rc, p in points if rc >= r], default=0.0)
            aps[(c, t)] = total / len(RECALLS)
    classes = sorted({c for c, _ in aps})
    map50 = sum(aps[(c, thresholds[0])] for c in classes) / len(classes)
    map_all = sum(aps.values()) / len(aps)
    return map50, map_all


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_matches_brute_force_on_random_data(seed):
    rng = np.random.default_rng(seed)
    nc, dets_all, gts_all = 3, [], []
    for _ in range(6):
        m = int(rng.integers(0, 6))
        xy = rng.uniform(0, 80, (m, 2))
        wh = rng.uniform(5, 30, (m, 2))
        gts = np.concatenate([rng.integers(0, nc, (m, 1)), xy, xy + wh], axis=1)
        near = gts[:, 1:] + rng.normal(0, 2.5, (m, 4))  # detections near the objects, some with the wrong class
        near_cls = np.where(rng.random(m) < 0.8, gts[:, 0], rng.integers(0, nc, m))
        k = int(rng.integers(0, 5))
        far_xy = rng.uniform(0, 80, (k, 2))
        far = np.concatenate([far_xy, far_xy + rng.uniform(5, 30, (k, 2))], axis=1)
        boxes = np.concatenate([near, far])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        dets = np.concatenate([boxes, rng.random((m + k, 1)), np.concatenate([near_cls, rng.integers(0, nc, k)])[:, None]], axis=1)
        dets_all.append(dets)
        gts_all.append(gts)
    thresholds = [float(t) for t in A.IOU_THRESHOLDS]
    want50, want = brute_map([d.tolist() for d in dets_all], [g.tolist() for g in gts_all], nc, thresholds)
    got = A.detection_map(dets_all, gts_all, nc)
    assert got["map50"] == pytest.approx(want50, abs=1e-12)
    assert got["map50_95"] == pytest.approx(want, abs=1e-12)
    assert 0.0 < got["map50_95"] < got["map50"] <= 1.0  # the random case is not degenerate


def test_hand_computed_segmentation():
    labels = np.array([[0, 0], [1, 1], [255, 2]])
    preds = np.array([[0, 1], [1, 1], [0, 1]])
    conf = A.confusion_matrix(labels, preds, 4)
    assert conf.sum() == 5  # the 255 pixel is ignored
    scores = A.segmentation_scores(conf, ["bg", "crop", "weed", "water"])
    # bg: 1 hit, union {(0,0), (0,1)} = 2; crop: hits (1,0), (1,1), union adds (0,1) and (2,1) = 4; weed: 0 of 1
    assert scores["per_class_iou"] == {"bg": pytest.approx(1 / 2), "crop": pytest.approx(2 / 4), "weed": 0.0, "water": None}
    assert scores["miou"] == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    assert scores["pixel_accuracy"] == pytest.approx(3 / 5)


def test_segmentation_matches_brute_force():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 5, (37, 23))
    labels[rng.random(labels.shape) < 0.1] = 255
    preds = np.where(rng.random(labels.shape) < 0.6, labels % 5, rng.integers(0, 5, labels.shape))
    got = A.segmentation_scores(A.confusion_matrix(labels, preds, 5), list("abcde"))
    ious, correct, total = [], 0, 0
    for c in range(5):
        inter = union = 0
        for lab, pr in zip(labels.ravel().tolist(), preds.ravel().tolist()):
            if lab == 255:
                continue
            inter += lab == c and pr == c
            union += lab == c or pr == c
        ious.append(inter / union)
    for lab, pr in zip(labels.ravel().tolist(), preds.ravel().tolist()):
        if lab != 255:
            total += 1
            correct += lab == pr
    assert list(got["per_class_iou"].values()) == pytest.approx(ious)
    assert got["miou"] == pytest.approx(sum(ious) / 5)
    assert got["pixel_accuracy"] == pytest.approx(correct / total)


def test_delta_vs_fp32():
    ref = {"kind": "detect", "map50": 0.8, "map50_95": 0.5}
    assert A.delta_vs(ref, {"kind": "detect", "map50": 0.75, "map50_95": 0.41}) == {
        "map50": pytest.approx(-0.05), "map50_95": pytest.approx(-0.09)}


def write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)


def test_yolo_dataset_from_yaml_and_folder(tmp_path):
    root = tmp_path / "ds"
    write_png(root / "images" / "val" / "a.png", np.zeros((20, 40, 3)))
    write_png(root / "images" / "val" / "b.png", np.zeros((20, 40, 3)))
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "val" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n0 0.25 0.25 0.1 0.2\n")
    (tmp_path / "data.yaml").write_text("path: ds\nval: images/val\nnames: {0: weed, 1: crop}\n")
    samples, names = A.detection_dataset(tmp_path / "data.yaml")
    assert names == ["weed", "crop"]
    assert [s.image.name for s in samples] == ["a.png", "b.png"]
    assert samples[1].target is None  # an image without objects
    boxes = A.read_yolo_labels(samples[0].target, 40, 20)
    assert boxes.tolist() == [[1, 10, 5, 30, 15], [0, 8, 3, 12, 7]]
    again, none = A.detection_dataset(root)
    assert [s.image for s in again] == [s.image for s in samples] and none is None
    write_png(tmp_path / "unlabelled" / "images" / "c.png", np.zeros((4, 4, 3)))
    with pytest.raises(AgrideployError, match="no YOLO label files"):
        A.detection_dataset(tmp_path / "unlabelled")


def test_mask_dataset(tmp_path):
    write_png(tmp_path / "images" / "t1.png", np.zeros((4, 4, 3)))
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.array([[0, 1], [2, 255]], np.uint8)).save(tmp_path / "masks" / "t1.png")
    samples = A.segmentation_dataset(tmp_path)
    assert A.read_mask(samples[0].target).tolist() == [[0, 1], [2, 255]]
    write_png(tmp_path / "images" / "t2.png", np.zeros((4, 4, 3)))
    with pytest.raises(AgrideployError, match="no mask for t2.png"):
        A.segmentation_dataset(tmp_path)
    write_png(tmp_path / "masks" / "t2.png", np.zeros((4, 4, 3)))
    with pytest.raises(AgrideployError, match="must be single-band"):
        A.read_mask(tmp_path / "masks" / "t2.png")


class BoxRunner(Runner):
    """A detector stand-in whose output (decoded YOLOv5 layout) places the same boxes on every image."""

    backend = "onnxruntime"

    def __init__(self, boxes_xywh, classes, shift=0.0):
        super().__init__(ModelRecord(task="detect", arch="boxes", names=["weed", "crop"], imgsz=[64, 64], strides=[8],
                                     anchors=[[10, 13, 16, 30, 33, 23]]))
        self.rows = np.zeros((1, len(boxes_xywh), 7), np.float32)
        self.rows[0, :, :4] = np.asarray(boxes_xywh, np.float32) + shift
        self.rows[0, :, 4] = 0.9
        self.rows[0, np.arange(len(classes)), 5 + np.asarray(classes)] = 1.0
        self.activate()

    @property
    def input_specs(self):
        return [TensorSpec("images", (1, 3, 64, 64), "float32")]

    @property
    def output_specs(self):
        return [TensorSpec("output0", self.rows.shape, "float32")]

    def _activate(self):
        pass

    def _deactivate(self):
        pass

    def _infer(self, feed):
        return {"output0": self.rows.copy()}


def test_evaluate_detection_through_the_pipeline(tmp_path):
    """Images the size of the model input (no letterbox scaling): perfect boxes score 1, shifted ones less."""
    boxes, classes = [[16, 16, 12, 12], [40, 44, 20, 10]], [0, 1]
    for i in range(2):
        write_png(tmp_path / "images" / f"{i}.png", np.full((64, 64, 3), 90))
        (tmp_path / "labels").mkdir(exist_ok=True)
        (tmp_path / "labels" / f"{i}.txt").write_text(
            "".join(f"{c} {x / 64} {y / 64} {w / 64} {h / 64}\n" for c, (x, y, w, h) in zip(classes, boxes)))
    perfect = A.evaluate(BoxRunner(boxes, classes), tmp_path)
    assert perfect["kind"] == "detect" and perfect["objects"] == 4 and perfect["images"] == 2
    assert perfect["map50"] == pytest.approx(1.0) and perfect["map50_95"] == pytest.approx(1.0)
    shifted = A.evaluate(BoxRunner(boxes, classes, shift=2.0), tmp_path)
    assert shifted["map50"] == pytest.approx(1.0)
    assert 0.0 < shifted["map50_95"] < 1.0
    assert perfect["yolov5_map50"] == pytest.approx(0.995) and perfect["yolov5_map50_95"] == pytest.approx(0.995)
    assert perfect["detection_settings"] == {"conf": 0.001, "iou": 0.6, "max_det": 300, "multi_label": True}
    assert 0.0 < shifted["yolov5_map50_95"] < shifted["yolov5_map50"]


def test_multi_label_adds_a_row_per_class_above_conf():
    """Box 0 scores 0.9 x 1.0 for weed and 0.9 x 0.5 for crop: multi-label gives both, single-label weed only."""
    from agrideploy.runtime.detect import DetectionPipeline

    runner = BoxRunner([[16, 16, 12, 12], [40, 44, 20, 10]], [0, 1])
    runner.rows[0, 0, 6] = 0.5
    image = np.full((64, 64, 3), 90, np.uint8)
    single = DetectionPipeline(runner, conf=0.001, iou=0.6, max_det=300)(image)
    multi = DetectionPipeline(runner, conf=0.001, iou=0.6, max_det=300, multi_label=True)(image)
    assert sorted(np.round(single[:, 4].astype(float), 4).tolist()) == [0.9, 0.9]
    assert sorted(zip(multi[:, 5].tolist(), np.round(multi[:, 4].astype(float), 4).tolist())) == [(0.0, 0.9), (1.0, 0.45), (1.0, 0.9)]
    capped = DetectionPipeline(runner, conf=0.5, iou=0.6, max_det=300, multi_label=True)(image)
    assert len(capped) == 2  # 0.45 is under --conf 0.5


class GraphNmsRunner(BoxRunner):
    """A detector whose graph ends in NMS (exported with conf 0.25, IoU 0.45): it returns the final boxes."""

    def __init__(self, boxes_xywh, classes):
        import json
        from types import SimpleNamespace

        super().__init__(boxes_xywh, classes)
        flags = {"nms": "onnx", "conf_thres": 0.25, "iou_thres": 0.45, "max_det": 100}
        meta = {"agrideploy_export": json.dumps({"flags": flags})}
        self.session = SimpleNamespace(get_modelmeta=lambda: SimpleNamespace(custom_metadata_map=meta))

    @property
    def output_specs(self):
        from agrideploy.export.nms import NMS_OUTPUTS

        return [TensorSpec(name, (1,), "float32") for name in NMS_OUTPUTS]

    def _infer(self, feed):
        xywh, n = self.rows[0, :, :4], len(self.rows[0])
        boxes = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], 1)
        return {"num_dets": np.array([[n]]), "det_boxes": boxes[None], "det_scores": self.rows[0, :, 4][None],
                "det_classes": self.rows[0, :, 5:].argmax(1)[None]}


def test_graph_nms_is_stated_with_the_accuracy(tmp_path):
    """The mAP run asks for conf 0.001 / IoU 0.6; a graph with its own NMS (0.25 / 0.45) says that its thresholds apply."""
    boxes, classes = [[16, 16, 12, 12], [40, 44, 20, 10]], [0, 1]
    write_png(tmp_path / "images" / "0.png", np.full((64, 64, 3), 90))
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "0.txt").write_text(
        "".join(f"{c} {x / 64} {y / 64} {w / 64} {h / 64}\n" for c, (x, y, w, h) in zip(classes, boxes)))
    acc = A.evaluate(GraphNmsRunner(boxes, classes), tmp_path)
    assert acc["map50"] == pytest.approx(1.0) and acc["yolov5_map50"] == pytest.approx(0.995)
    used = acc["detection_settings"]
    assert used["nms_in_graph"] is True
    assert "--conf 0.001 cannot go below the graph's score threshold 0.25" in used["note"]
    assert "--iou 0.6 is not used: the graph suppresses at IoU 0.45" in used["note"]
