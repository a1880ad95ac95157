"""A jfzhang95 training checkpoint (numpy best_pred, optimizer) through the front door and `inspect`."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from agrideploy.models import load_model  # noqa: E402
from deeplab_recipe import load_recipe, make_arrays, to_state_dict, write_container  # noqa: E402

VARIANT = "deeplabv3plus_mobilenet_jfzhang95"


@pytest.fixture(scope="module")
def jfzhang95(fixtures_dir, tmp_path_factory):
    recipe = load_recipe(fixtures_dir / "recipes", VARIANT)
    sd = to_state_dict(recipe, make_arrays(recipe))
    return recipe, write_container(recipe, sd, tmp_path_factory.mktemp("jfzhang95"))


def test_training_container_loads_without_running_code(jfzhang95, fixtures_dir):
    recipe, path = jfzhang95
    loaded = load_model(path, imgsz=32)
    r = loaded.record
    assert (r.arch, r.channels, r.num_classes, r.output_stride) == ("deeplabv3plus-mobilenetv2-jfzhang95", 3, 6, 16)
    assert r.mean == pytest.approx([0.485, 0.456, 0.406]) and r.std == pytest.approx([0.229, 0.224, 0.225])
    assert loaded.match.ok and loaded.match.total == len(recipe["state_dict"]["entries"])
    x = torch.from_numpy(np.load(fixtures_dir / "recipes" / f"{VARIANT}_input_32.npy"))
    ref = np.load(fixtures_dir / "recipes" / f"{VARIANT}_output_32.npy")
    with torch.no_grad():
        assert np.abs(loaded.module(x).numpy() - ref).max() <= 1e-4


def test_inspect_prints_family_parameters_and_key_match(jfzhang95, cli):
    recipe, path = jfzhang95
    res = cli("inspect", str(path), "--imgsz", "32")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "deeplabv3plus-mobilenetv2-jfzhang95" in out and "plain state dict" in out
    assert recipe["parameter_count"] == 5812198 and "5,812,198" in out
    assert f"all {len(recipe['state_dict']['entries'])} keys matched" in out
    assert "output stride  16" in out and "6: class0" in out
