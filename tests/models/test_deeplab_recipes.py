"""Acceptance: the four upstream DeepLabV3+ recipes rebuilt as upstream files load and compute upstream's outputs.

Each recipe (../shared/fixtures/recipes) is regenerated with its weight rule, checked against its
sha256, written in the upstream container with torch.save, read back as a user's file would be,
loaded by `read_deeplab_state_dict` and run on the stored inputs; the stored outputs were computed
with the upstream code. The Xception files are 220/440 MB: written once per variant, then deleted.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from agrideploy.models.checkpoints.deeplab import looks_like_deeplab, read_deeplab_state_dict
from agrideploy.models.safe_pickle import safe_load
from deeplab_recipe import load_recipe, make_arrays, sha256_of, to_state_dict, write_container

VARIANTS = {  # recipe -> (arch, parameter count, rebuilt file size: both from the recipes' README)
    "deeplabv3plus_xception_bubbliiiing": ("deeplabv3plus-xception-bubbliiiing", 54_709_702, 219_888_418),
    "deeplabv3plus_mobilenet_bubbliiiing": ("deeplabv3plus-mobilenetv2-bubbliiiing", 5_814_294, 23_528_588),
    "deeplabv3plus_xception_jfzhang95": ("deeplabv3plus-xception-jfzhang95", 54_701_462, 438_761_495),
    "deeplabv3plus_mobilenet_jfzhang95": ("deeplabv3plus-mobilenetv2-jfzhang95", 5_812_198, 46_848_201),
}
ATOL = 1e-4


def read_upstream_file(path, recipe):
    """Read the container as a user's untrusted file: bare state dicts with weights_only, jfzhang95 (numpy best_pred) via safe_load."""
    if path.name.endswith(".pth.tar"):
        ckpt = safe_load(path)
        assert sorted(ckpt) == ["best_pred", "epoch", "optimizer", "state_dict"]
        assert float(ckpt["best_pred"]) == 0.5
        assert len(ckpt["optimizer"]["state"]) == len(recipe["container"]["optimizer_state"]["param_keys"])
        return ckpt["state_dict"]
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module", params=list(VARIANTS))
def loaded(request, fixtures_dir, tmp_path_factory):
    """(variant, recipe, module, info, file size) for one recipe; its file lives only while the variant is tested."""
    variant = request.param
    recipes = fixtures_dir / "recipes"
    recipe = load_recipe(recipes, variant)
    arrays = make_arrays(recipe)
    assert sha256_of(arrays) == recipe["state_dict"]["sha256"]
    folder = tmp_path_factory.mktemp(variant)
    try:
        path = write_container(recipe, to_state_dict(recipe, arrays), folder)
        del arrays
        size = path.stat().st_size
        state_dict = read_upstream_file(path, recipe)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    module, info = read_deeplab_state_dict(state_dict)
    del state_dict
    return variant, recipe, module, info, size


def test_recipe_file_loads_strictly_as_its_family(loaded):
    variant, recipe, module, info, size = loaded
    arch, params, file_size = VARIANTS[variant]
    assert info["arch"] == arch
    assert info["match"].ok and info["match"].total == recipe["state_dict"]["n_entries"]
    assert (info["in_channels"], info["num_classes"], info["output_stride"], info["bn_eps"]) == (3, 6, 16, 1e-5)
    assert sum(p.numel() for p in module.parameters()) == params == recipe["parameter_count"]
    assert not module.training
    # same container as upstream writes: alias keys share storage, so the jfzhang95 MobileNetV2 file is not doubled
    assert size == file_size


@pytest.mark.parametrize("size", [32, 64])
def test_recipe_output_matches_upstream(loaded, fixtures_dir, size):
    variant, _, module, _, _ = loaded
    recipes = fixtures_dir / "recipes"
    x = np.load(recipes / f"{variant}_input_{size}.npy")
    reference = np.load(recipes / f"{variant}_output_{size}.npy")
    with torch.no_grad():
        y = module(torch.from_numpy(x)).numpy()
    assert y.shape == reference.shape == (1, 6, size, size)
    np.testing.assert_allclose(y, reference, rtol=0, atol=ATOL)


def test_recipe_family_normalisation(loaded):
    variant, _, _, info, _ = loaded
    assert info["input_scale"] == pytest.approx(1 / 255)
    if "bubbliiiing" in variant:
        assert info["mean"] is None and info["std"] is None
        assert info["family"] == "bubbliiiing/deeplabv3-plus-pytorch"
    else:
        assert info["mean"] == pytest.approx([0.485, 0.456, 0.406]) and info["std"] == pytest.approx([0.229, 0.224, 0.225])
        assert info["family"] == "jfzhang95/pytorch-deeplab-xception"


def test_recipe_keys_fingerprint(fixtures_dir):
    for variant, (arch, _, _) in VARIANTS.items():
        keys = [entry[0] for entry in load_recipe(fixtures_dir / "recipes", variant)["state_dict"]["entries"]]
        assert looks_like_deeplab(keys) == arch
        assert looks_like_deeplab(["module." + k for k in keys]) == arch
