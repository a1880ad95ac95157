"""Fold BatchNorm into the preceding convolution for inference (fewer ops, same outputs up to rounding)."""

from __future__ import annotations

import torch
from torch import nn


def folded_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A Conv2d with bias equal to bn(conv(x)) in eval mode: W' = W * g/s, b' = (b - mean) * g/s + beta."""
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        dilation=conv.dilation, groups=conv.groups, bias=True, padding_mode=conv.padding_mode,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    with torch.no_grad():
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    fused.requires_grad_(conv.weight.requires_grad)
    return fused


def fuse_conv_bn(model: nn.Module) -> int:
    """Fold every module's `conv` + `bn` pair in place (the BN becomes Identity); returns how many were folded."""
    count = 0
    for m in model.modules():
        conv, bn = getattr(m, "conv", None), getattr(m, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            m.conv = folded_conv(conv, bn)
            m.bn = nn.Identity()
            count += 1
    return count
