"""What the CUDA stand-ins and the TensorRT stand-in share: the stream handles that exist right now.

A CUDA stand-in adds a handle when it creates a stream and removes it when the stream is
destroyed; the TensorRT stand-in's execute_async_v3 refuses any other number, as the real one
fails on a handle that is not a live cudaStream_t (a pointer to one, say).
"""

from __future__ import annotations

import itertools
from typing import Set

LIVE_STREAMS: Set[int] = set()
_NEXT = itertools.count(0x7F0000A000, 0x40)


def new_stream_handle() -> int:
    handle = next(_NEXT)
    LIVE_STREAMS.add(handle)
    return handle


def drop_stream_handle(handle: int) -> None:
    LIVE_STREAMS.discard(handle)
