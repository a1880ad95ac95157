"""The zoo: every required --arch name, its record defaults, and the flag checks it applies."""

from __future__ import annotations

import pytest
from agrideploy.models import list_archs
from agrideploy.models.loaded import KeyMatch
from agrideploy.models.zoo import ARCHS, class_names, get_arch, normalisation

from agrideploy.errors import AgrideployError

REQUIRED = ["yolov5n", "yolov5s", "yolov5m", "effv2s-yolov5", "effv2b0-yolov5", "deeplabv3plus-xception", "deeplabv3plus-mobilenetv2"]


def test_required_names_are_listed_with_tasks():
    names = [n for n, _ in list_archs()]
    assert all(n in names for n in REQUIRED)
    assert [get_arch(n).task for n in REQUIRED] == ["detect"] * 5 + ["segment"] * 2


def test_unknown_arch_lists_the_known_ones():
    with pytest.raises(AgrideployError, match="unknown architecture 'yolov9'; known: yolov5n, yolov5s"):
        get_arch("yolov9")
    with pytest.raises(AgrideployError, match="no such yaml file"):
        get_arch("missing.yaml")


def test_yaml_path_is_a_yolo_arch(tmp_path):
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("nc: 2\n")
    spec = get_arch(str(cfg))
    assert spec.task == "detect" and spec.imgsz == 640


@pytest.mark.parametrize(
    "arch, channels, mean, std",
    [
        ("yolov5s", 3, None, None),
        ("deeplabv3plus-xception-bubbliiiing", 4, None, None),
        ("deeplabv3plus-xception-jfzhang95", 3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ("deeplabv3plus-xception", 4, [0.5] * 4, [0.5] * 4),
    ],
)
def test_normalisation_per_family_and_band_count(arch, channels, mean, std):
    assert normalisation(ARCHS[arch], channels) == (1.0 / 255.0, mean, std)


def test_class_names_from_flags_and_checkpoint():
    assert class_names(None, None, 3) == ["class0", "class1", "class2"]
    assert class_names(2, None, 80) == ["class0", "class1"]
    assert class_names(["a", "b"], ["x", "y"], 80) == ["a", "b"]
    assert class_names(2, ["x", "y"], 80) == ["x", "y"]
    with pytest.raises(AgrideployError, match="--classes gives 3 classes but the checkpoint has 2"):
        class_names(["a", "b", "c"], ["x", "y"], 80)


class _T:
    def __init__(self, *shape):
        self.shape = shape


def test_key_match_lists_first_few_and_counts():
    expected = {f"k{i}": _T(2, 2) for i in range(8)}
    given = {f"k{i}": _T(2, 2) for i in range(1, 8)}
    given["k7"] = _T(3)
    given.update({f"x{i}": _T(1) for i in range(7)})
    match = KeyMatch.compare(expected, given)
    assert match.missing == ["k0"] and match.mismatched == [("k7", (3,), (2, 2))]
    assert match.summary() == (
        "1 missing (k0); 7 unexpected (x0, x1, x2, x3, x4, ... +2 more); 1 mis-shaped (k7: file [3] vs model [2, 2])"
    )
    with pytest.raises(AgrideployError, match="the weights do not fit the model: 1 missing"):
        match.require("ckpt.pt")
    assert KeyMatch.compare(expected, dict(expected)).summary() == "all 8 keys matched"
