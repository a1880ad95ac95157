"""Test support: rebuild a DeepLab weight recipe (../shared/fixtures/recipes) as the upstream file would be.

The recipe's rule `crc32-zerosum-v1` (see its README) gives every state-dict entry a value from
a PCG64 generator seeded with the CRC-32 of its key; this module implements that rule, checks the
result against the recipe's sha256 and writes it in the upstream container with torch.save.
"""

from __future__ import annotations

import hashlib
import json
import math
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Dict

import numpy as np
import torch

BN_LEAVES = ("running_mean", "running_var")


def load_recipe(recipes_dir: Path, variant: str) -> dict:
    return json.loads((recipes_dir / f"{variant}.json").read_text())


def _value(key: str, shape: tuple, is_bn: bool) -> np.ndarray:
    """The float64 (or int64) value the rule assigns to one entry."""
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
    leaf = key.rsplit(".", 1)[-1]
    if is_bn:
        if leaf == "num_batches_tracked":
            return np.zeros(shape, dtype=np.int64)
        if leaf == "weight":
            return 1.0 + 0.1 * rng.standard_normal(shape)
        if leaf in ("bias", "running_mean"):
            return 0.1 * rng.standard_normal(shape)
        if leaf == "running_var":
            return rng.uniform(0.5, 1.5, shape)
    if leaf == "weight" and len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        draws = rng.standard_normal(shape).reshape(shape[0], fan_in)
        zero_sum = draws - np.roll(draws, -1, axis=1)  # each output channel's weights sum to 0
        gain = 0.3 if len(shape) == 4 and shape[1] == 1 else 1.5  # depthwise : any other conv
        return (zero_sum * (gain / math.sqrt(fan_in))).reshape(shape)
    if leaf == "bias" and len(shape) == 1:
        return 0.01 * rng.standard_normal(shape)
    raise ValueError(f"the recipe rule has no case for {key} {shape}")


def make_arrays(recipe: dict) -> "OrderedDict[str, np.ndarray]":
    """key -> array in state-dict order; alias keys map to the very array of the key they name."""
    sd = recipe["state_dict"]
    aliases: Dict[str, str] = sd["aliases"]
    keys = {entry[0] for entry in sd["entries"]}
    out: "OrderedDict[str, np.ndarray]" = OrderedDict()
    for key, shape, dtype in sd["entries"]:
        if key in aliases:
            out[key] = out[aliases[key]]
            continue
        prefix = key.rsplit(".", 1)[0]
        is_bn = all(f"{prefix}.{leaf}" in keys for leaf in BN_LEAVES)
        out[key] = _value(key, tuple(shape), is_bn).astype(np.dtype(dtype))
    return out


def sha256_of(arrays: "OrderedDict[str, np.ndarray]") -> str:
    h = hashlib.sha256()
    for key, a in arrays.items():
        h.update(key.encode("utf-8"))
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def to_state_dict(recipe: dict, arrays: "OrderedDict[str, np.ndarray]") -> "OrderedDict[str, torch.Tensor]":
    """torch tensors with upstream's sharing (aliases are the same tensor) and `_metadata`."""
    aliases = recipe["state_dict"]["aliases"]
    sd: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, a in arrays.items():
        sd[key] = sd[aliases[key]] if key in aliases else torch.from_numpy(a)
    sd._metadata = OrderedDict((path, {"version": v}) for path, v in recipe["state_dict"]["metadata"])  # type: ignore[attr-defined]
    return sd


def write_container(recipe: dict, sd: "OrderedDict[str, torch.Tensor]", folder: Path) -> Path:
    """Save as upstream does: bubbliiiing a bare state dict, jfzhang95 its training checkpoint dict."""
    container = recipe["container"]
    if container["kind"] == "bare state_dict":
        path = folder / "last_epoch_weights.pth"
        torch.save(sd, path)
        return path
    opt = container["optimizer_state"]
    state = {}
    for i, key in enumerate(opt["param_keys"]):
        rng = np.random.default_rng(zlib.crc32(f"optimizer.state.{i}.momentum_buffer".encode()))
        buf = (0.01 * rng.standard_normal(tuple(sd[key].shape))).astype(np.float32)
        state[i] = {"momentum_buffer": torch.from_numpy(buf)}
    groups = []
    for group in opt["param_groups"]:
        group = dict(group)
        start, stop = group.pop("params_range")
        group["params"] = list(range(start, stop))
        groups.append(group)
    path = folder / "checkpoint.pth.tar"
    ckpt = {"epoch": 1, "state_dict": sd, "optimizer": {"state": state, "param_groups": groups}, "best_pred": np.float64(0.5)}
    torch.save(ckpt, path)
    return path
