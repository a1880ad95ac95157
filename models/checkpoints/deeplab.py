"""Plain DeepLabV3+ state dicts: tell the source family from the keys, rebuild its model, load it.

A state dict holds neither BatchNorm eps nor output stride: eps follows from the family
(1e-5 in both upstream repos, 1e-3 in our paper-faithful models) and the output stride is a
flag (both repos default to 16). Bands come from the first conv weight, classes from the last.
Fingerprints follow ../shared/reference/models.md section 6.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from agrideploy.models.deeplab import DEEPLAB_ARCHS, build_deeplab, deeplab_normalisation
from agrideploy.models.loaded import KeyMatch

from agrideploy.errors import AgrideployError

WRAPPER_PREFIX = "module."

# arch -> (keys that must all be present, first conv weight, classifier weight)
FAMILIES: Dict[str, Tuple[Tuple[str, ...], str, str]] = {
    "deeplabv3plus-xception-bubbliiiing": (
        ("backbone.block1.sepconv1.depthwise.weight", "aspp.branch5_conv.weight", "cat_conv.0.weight"),
        "backbone.conv1.weight",
        "cls_conv.weight",
    ),
    "deeplabv3plus-mobilenetv2-bubbliiiing": (
        ("backbone.features.1.conv.0.weight", "aspp.branch5_conv.weight", "cat_conv.0.weight"),
        "backbone.features.0.0.weight",
        "cls_conv.weight",
    ),
    "deeplabv3plus-xception-jfzhang95": (
        ("backbone.block1.rep.0.bn.weight", "aspp.aspp1.atrous_conv.weight", "decoder.last_conv.8.weight"),
        "backbone.conv1.weight",
        "decoder.last_conv.8.weight",
    ),
    "deeplabv3plus-mobilenetv2-jfzhang95": (
        ("backbone.low_level_features.0.0.weight", "aspp.aspp1.atrous_conv.weight", "decoder.last_conv.8.weight"),
        "backbone.features.0.0.weight",
        "decoder.last_conv.8.weight",
    ),
    "deeplabv3plus-xception": (
        ("backbone.entry_flow.0.convs.0.conv_dw.weight", "aspp.branches.1.conv_dw.weight", "decoder.classifier.weight"),
        "backbone.stem.0.weight",
        "decoder.classifier.weight",
    ),
    "deeplabv3plus-mobilenetv2": (
        ("backbone.features.1.conv.0.weight", "aspp.branches.1.conv_dw.weight", "decoder.classifier.weight"),
        "backbone.features.0.0.weight",
        "decoder.classifier.weight",
    ),
}

# layouts we recognise but do not rebuild: family -> why
UNSUPPORTED: Dict[str, Tuple[Tuple[str, ...], str]] = {
    "vainf": (
        ("classifier.aspp.convs.4.1.weight",),
        "VainF/DeepLabV3Plus-Pytorch checkpoints are not supported (its Xception is not aligned and fails on 32x32 crops)",
    ),
    "jfzhang95-legacy": (
        ("xception_features.conv1.weight",),
        "the old jfzhang95 'DeepLabv3_plus' layout (xception_features.*) is not supported; use its current modeling/ code",
    ),
    "smp": (
        ("decoder.aspp.0.convs.0.0.weight", "segmentation_head.0.weight"),
        "segmentation_models_pytorch checkpoints are not supported; rebuild the model with --factory",
    ),
}

REPOS = {
    "bubbliiiing": "bubbliiiing/deeplabv3-plus-pytorch",
    "jfzhang95": "jfzhang95/pytorch-deeplab-xception",
    "agrideploy": "agrideploy (paper-faithful)",
}


def looks_like_deeplab(keys: Iterable[str]) -> Optional[str]:
    """The DeepLabV3+ family of a state dict's keys: an arch name of DEEPLAB_ARCHS, an UNSUPPORTED family, or None."""
    present = {k[len(WRAPPER_PREFIX) :] if k.startswith(WRAPPER_PREFIX) else k for k in keys}
    for name, (fingerprint, _, _) in FAMILIES.items():
        if all(k in present for k in fingerprint):
            return name
    for name, (fingerprint, _) in UNSUPPORTED.items():
        if all(k in present for k in fingerprint):
            return name
    return None


def _strip_wrapper(state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    if state_dict and all(k.startswith(WRAPPER_PREFIX) for k in state_dict):
        return {k[len(WRAPPER_PREFIX) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def read_deeplab_state_dict(state_dict: Mapping[str, Any], output_stride: int = 16, strict: bool = True):
    """(module float32 eval, info) for a DeepLabV3+ state dict of a known family.

    info: arch, family (repo), backbone, in_channels, num_classes, output_stride, bn_eps,
    input_scale / mean / std (the family's normalisation) and match (a KeyMatch: missing /
    unexpected / mis-shaped keys). With strict=True (default) any key problem raises one AgrideployError line;
    with strict=False the fitting tensors are loaded and the report says what did not fit.
    """
    torch = _torch()
    sd = _strip_wrapper(state_dict)
    arch = looks_like_deeplab(sd)
    if arch is None:
        raise AgrideployError("not a DeepLabV3+ state dict of a known layout (bubbliiiing, jfzhang95 or agrideploy)")
    if arch in UNSUPPORTED:
        raise AgrideployError(UNSUPPORTED[arch][1])
    _, first_key, last_key = FAMILIES[arch]
    for key in (first_key, last_key):
        if key not in sd or len(sd[key].shape) != 4:
            raise AgrideployError(f"{arch} state dict lacks the 4-D convolution weight {key}")
    in_channels, num_classes = int(sd[first_key].shape[1]), int(sd[last_key].shape[0])
    module = build_deeplab(arch, in_channels, num_classes, output_stride)
    expected = module.state_dict()
    match = KeyMatch.compare(expected, sd)
    if strict:
        match.require(f"{arch} state dict")
    bad = set(match.unexpected) | {k for k, _, _ in match.mismatched}
    tensors = {k: _as_tensor(torch, v, expected[k].dtype) for k, v in sd.items() if k not in bad}
    module.load_state_dict(tensors, strict=False)
    module = module.float().eval()
    family, backbone = DEEPLAB_ARCHS[arch].repo, DEEPLAB_ARCHS[arch].backbone
    scale, mean, std = deeplab_normalisation(arch, in_channels)
    info = {
        "arch": arch,
        "family": REPOS[family],
        "backbone": backbone,
        "in_channels": in_channels,
        "num_classes": num_classes,
        "output_stride": int(output_stride),
        "bn_eps": 1e-5 if family != "agrideploy" else 1e-3,
        "input_scale": scale,
        "mean": mean,
        "std": std,
        "match": match,
    }
    return module, info


def _as_tensor(torch: Any, value: Any, dtype: Any):
    """A tensor of the model's dtype (fp16 weights become fp32); NumPy arrays are accepted too."""
    return torch.as_tensor(value).to(dtype)


def _torch():
    from agrideploy.lazy import require

    return require("torch")
