"""Resource limits on untrusted input, stated in one place.

A few hostile bytes can claim billions of elements (a pickle memo index, a zero-stride tensor, a yaml
`depth_multiple`, an image header), so every reader checks the claim against these limits before it
allocates. Each limit can be raised: with its command-line flag on the verbs that read that kind of
input, or with the environment variable AGRIDEPLOY_<NAME> (e.g. AGRIDEPLOY_MAX_PIXELS=1e9) anywhere.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Dict, Optional

from agrideploy.errors import AgrideployError


@dataclass(frozen=True)
class Limit:
    default: float
    what: str
    flag: Optional[str] = None  # the CLI flag that raises it, on verbs that read this input


LIMITS: Dict[str, Limit] = {
    "max_pixels": Limit(250_000_000, "pixels of one image or scene", "--max-pixels"),
    "max_tiles": Limit(2_000_000, "tiles of one scene", "--max-tiles"),
    "max_pickle_memo": Limit(10_000_000, "memo entries of a checkpoint pickle"),
    "max_yaml_bytes": Limit(4_000_000, "bytes of a yaml file"),
    "max_layers": Limit(1_000, "layers of a model yaml"),
    "max_modules": Limit(100_000, "modules of a pickled model"),
    "max_repeats": Limit(100, "repeats of one model yaml layer (after depth_multiple)"),
    "max_multiple": Limit(10, "depth_multiple / width_multiple of a model yaml"),
    "max_channels": Limit(16_384, "channels of one layer"),
    "max_parameters": Limit(500_000_000, "parameters of a model built from a yaml"),
    "max_bands": Limit(1_024, "input bands of a model"),
    "max_classes": Limit(10_000, "classes of a model"),
    "max_anchors": Limit(32, "anchors per detection level"),
    "max_labels": Limit(100_000, "label rows of one image"),
    # a switch rather than a size: 1 accepts GDAL VRT "images", which can read any local file
    "allow_vrt": Limit(0, "VRT rasters (1 to accept them)", "--allow-vrt"),
}

_overrides: Dict[str, float] = {}


def get(name: str) -> float:
    """The limit in force: a CLI override, else AGRIDEPLOY_<NAME>, else the default."""
    if name in _overrides:
        return _overrides[name]
    text = os.environ.get(f"AGRIDEPLOY_{name.upper()}")
    if text:
        try:
            return float(text)
        except ValueError:
            raise AgrideployError(f"AGRIDEPLOY_{name.upper()}={text!r} is not a number") from None
    return LIMITS[name].default


def how_to_raise(name: str) -> str:
    flag = LIMITS[name].flag
    env = f"AGRIDEPLOY_{name.upper()}"
    return f"raise it with {flag} N or {env}=N" if flag else f"raise it with {env}=N"


def check(name: str, value: float, what: str) -> None:
    """Refuse `value` when it passes the limit; the message names the limit and how to raise it."""
    limit = get(name)
    if not value <= limit:  # also refuses NaN
        raise AgrideployError(f"{what}: {value:g} exceeds the limit of {limit:g} {LIMITS[name].what} ({how_to_raise(name)})")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """The flags of `names` (limits a user may need to raise for this verb)."""
    group = parser.add_argument_group("limits on input")
    for name in names:
        limit = LIMITS[name]
        if name.startswith("allow_"):
            group.add_argument(limit.flag, dest=name, action="store_const", const=1.0,
                               help="accept VRT rasters: a VRT can read any local file, so only for one you trust")
        else:
            group.add_argument(limit.flag, dest=name, type=_positive, metavar="N",
                               help=f"most {limit.what} to accept (default {limit.default:g})")


def apply_args(args: argparse.Namespace) -> None:
    """Take the limit flags a verb was given (the CLI calls this before the verb runs)."""
    _overrides.clear()
    for name in LIMITS:
        value = getattr(args, name, None)
        if value is not None:
            _overrides[name] = float(value)
