"""DeepLabV3+ for land-cover segmentation: the paper's model and the two popular PyTorch repos' structures.

Light on purpose: importing this package does not import torch; `build_deeplab` does.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

# name -> one-line summary (the zoo lists these)
DEEPLAB_ARCHS = {
    "deeplabv3plus-xception": "DeepLabV3+ with aligned Xception-65 as in the paper (separable ASPP/decoder, BN eps 1e-3)",
    "deeplabv3plus-mobilenetv2": "DeepLabV3+ with MobileNetV2 and the paper's separable ASPP/decoder",
    "deeplabv3plus-xception-bubbliiiing": "bubbliiiing/deeplabv3-plus-pytorch Xception model, key for key",
    "deeplabv3plus-mobilenetv2-bubbliiiing": "bubbliiiing/deeplabv3-plus-pytorch MobileNetV2 model, key for key",
    "deeplabv3plus-xception-jfzhang95": "jfzhang95/pytorch-deeplab-xception Xception model, key for key",
    "deeplabv3plus-mobilenetv2-jfzhang95": "jfzhang95/pytorch-deeplab-xception MobileNetV2 model, key for key",
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
    if arch.endswith("-bubbliiiing"):
        return 1.0 / 255.0, None, None
    if arch.endswith("-jfzhang95"):
        if channels == 3:
            return 1.0 / 255.0, list(IMAGENET_MEAN), list(IMAGENET_STD)
        return 1.0 / 255.0, None, None
    return 1.0 / 255.0, [0.5] * channels, [0.5] * channels
