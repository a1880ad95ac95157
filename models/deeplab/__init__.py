"""DeepLabV3+ for land-cover segmentation: the paper's model and the two popular PyTorch repos' structures.

Light on purpose: importing this package does not import torch; `build_deeplab` does.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple


class DeepLabArch(NamedTuple):
    """What an architecture name means: its summary, source repo, backbone and input convention."""

    summary: str
    repo: str  # a key of checkpoints.deeplab.REPOS
    backbone: str
    norm: str  # input convention of its training code: a key of zoo.NORMALISATIONS


DEEPLAB_ARCHS = {
    "deeplabv3plus-xception": DeepLabArch(
        "DeepLabV3+ with aligned Xception-65 as in the paper (separable ASPP/decoder, BN eps 1e-3)", "agrideploy", "xception", "tf"),
    "deeplabv3plus-mobilenetv2": DeepLabArch(
        "DeepLabV3+ with MobileNetV2 and the paper's separable ASPP/decoder", "agrideploy", "mobilenetv2", "tf"),
    "deeplabv3plus-xception-bubbliiiing": DeepLabArch(
        "bubbliiiing/deeplabv3-plus-pytorch Xception model, key for key", "bubbliiiing", "xception", "unit"),
    "deeplabv3plus-mobilenetv2-bubbliiiing": DeepLabArch(
        "bubbliiiing/deeplabv3-plus-pytorch MobileNetV2 model, key for key", "bubbliiiing", "mobilenetv2", "unit"),
    "deeplabv3plus-xception-jfzhang95": DeepLabArch(
        "jfzhang95/pytorch-deeplab-xception Xception model, key for key", "jfzhang95", "xception", "imagenet"),
    "deeplabv3plus-mobilenetv2-jfzhang95": DeepLabArch(
        "jfzhang95/pytorch-deeplab-xception MobileNetV2 model, key for key", "jfzhang95", "mobilenetv2", "imagenet"),
}

def build_deeplab(arch: str, in_channels: int = 3, num_classes: int = 6, output_stride: int = 16):
    """A DeepLabV3+ nn.Module of the named architecture, freshly initialised (imports torch)."""
    from agrideploy.models.deeplab.deeplabv3plus import build_deeplab as build

    return build(arch, in_channels, num_classes, output_stride)


def deeplab_normalisation(arch: str, channels: int) -> Tuple[float, Optional[List[float]], Optional[List[float]]]:
    """(input_scale, mean, std) the architecture was trained with; `(p * scale - mean) / std`.

    bubbliiiing divides by 255 only; jfzhang95 then subtracts the ImageNet mean and divides by its
    std (known for 3 bands only: other band counts get None, to be set from the dataset); the
    paper's models take TF DeepLab's [-1, 1] range.
    """
    from agrideploy.models.zoo import input_normalisation

    return input_normalisation(DEEPLAB_ARCHS[arch].norm, channels)
