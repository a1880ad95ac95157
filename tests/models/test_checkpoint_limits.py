"""Storages are bounded by the file's size before torch allocates them; legacy files still read exactly."""

from __future__ import annotations

import io
import pickle

import pytest

torch = pytest.importorskip("torch")

from agrideploy.models.safe_pickle import restricted_pickle_module, safe_load  # noqa: E402

from agrideploy.errors import AgrideployError  # noqa: E402


class _Claims(pickle.Pickler):
    """Pickles the string "S" as torch's persistent id of a storage of `numel` float32 elements."""

    numel = 0

    def persistent_id(self, obj):
        return ("storage", torch.float32, "0", "cpu", self.numel) if obj == "S" else None


def _claiming(numel: int) -> bytes:
    buf = io.BytesIO()
    pickler = _Claims(buf, protocol=2)
    pickler.numel = numel
    pickler.dump(["S"])
    return buf.getvalue()


@pytest.mark.parametrize("numel, refused", [(25, False), (26, True), (10**12, True)])
def test_a_storage_larger_than_the_file_is_refused_before_allocation(numel, refused):
    module = restricted_pickle_module(budget=100)  # a 100-byte file holds at most 25 float32
    unpickler = module.Unpickler(io.BytesIO(_claiming(numel)))
    allocated = []
    unpickler.persistent_load = lambda pid: allocated.append(pid[4]) or "storage"
    if refused:
        with pytest.raises(AgrideployError, match=f"claims {numel * 4} bytes, more than the whole file \\(100\\)"):
            unpickler.load()
        assert allocated == []
    else:
        assert unpickler.load() == ["storage"] and allocated == [numel]


def test_legacy_format_reads_the_same_tensors(tmp_path):
    weights = {"conv.weight": torch.arange(24.0).view(2, 3, 2, 2), "conv.bias": torch.tensor([0.5, -1.0])}
    path = tmp_path / "legacy.pth"
    torch.save(weights, str(path), _use_new_zipfile_serialization=False)
    loaded = safe_load(path)
    assert set(loaded) == set(weights)
    for key, value in weights.items():
        assert torch.equal(loaded[key], value)
