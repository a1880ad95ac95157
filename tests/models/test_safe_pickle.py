"""The restricted unpickler: data comes back, module classes become inert stubs, code never runs."""

from __future__ import annotations

import builtins
import io
import os
import pathlib
import subprocess
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import torch
from agrideploy.models.safe_pickle import ModuleStub, class_path, safe_load, stub_state_dict

from agrideploy.errors import AgrideployError


class _Reduces:
    """Pickles as a call of `func(*args)`: what a malicious checkpoint contains."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _marker_payloads(marker: pathlib.Path):
    shell = f"touch {marker}"
    return {
        "os.system": (os.system, (shell,)),
        "subprocess.call": (subprocess.call, (["touch", str(marker)],)),
        "builtins.eval": (builtins.eval, (f"open({str(marker)!r}, 'w')",)),
        "builtins.exec": (builtins.exec, (f"open({str(marker)!r}, 'w').close()",)),
    }


@pytest.mark.parametrize("name", ["os.system", "subprocess.call", "builtins.eval", "builtins.exec"])
def test_code_in_a_checkpoint_is_refused_and_never_runs(tmp_path, name):
    marker = tmp_path / "ran"
    func, args = _marker_payloads(marker)[name]
    path = tmp_path / "evil.pt"
    torch.save({"model": _Reduces(func, args), "w": torch.ones(2)}, str(path))
    with pytest.raises(AgrideployError) as err:
        safe_load(path)
    message = str(err.value)
    assert "\n" not in message
    assert func.__name__ in message and "refuses" in message
    assert not marker.exists()


def test_tensors_containers_numpy_and_paths_come_back(tmp_path):
    path = tmp_path / "data.pt"
    payload = {
        "sd": OrderedDict(w=torch.arange(6, dtype=torch.float16).view(2, 3), n=torch.tensor(7)),
        "best": np.array([0.25]),
        "momentum": np.float64(0.937),
        "keys": {"a", "b"},
        "frozen": frozenset([1, 2]),
        "where": pathlib.PurePosixPath("data/hyps"),
        "win": pathlib.PureWindowsPath("C:/runs/train"),
        "param": torch.nn.Parameter(torch.ones(3)),
    }
    torch.save(payload, str(path))
    obj = safe_load(path)
    assert obj["sd"]["w"].dtype == torch.float16 and obj["sd"]["w"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert isinstance(obj["sd"], OrderedDict) and int(obj["sd"]["n"]) == 7
    assert obj["best"].tolist() == [0.25] and float(obj["momentum"]) == pytest.approx(0.937)
    assert obj["keys"] == {"a", "b"} and obj["frozen"] == frozenset([1, 2])
    assert obj["where"] == "data/hyps" and isinstance(obj["where"], str)
    assert obj["win"] == "C:\\runs\\train"
    assert obj["param"].tolist() == [1.0, 1.0, 1.0]


def _rewrite_pickle(path: pathlib.Path, old: bytes, new: bytes) -> None:
    """Rename a global inside a torch zip (protocol 2 writes globals as text lines)."""
    entries = {}
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            data = z.read(info.filename)
            if info.filename.endswith("data.pkl"):
                assert old in data
                data = data.replace(old, new)
            entries[info.filename] = data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries.items():
            z.writestr(name, data)


def test_legacy_torch_format_is_read_with_the_same_rules(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2).half(), "m": torch.nn.ReLU()}, str(path), _use_new_zipfile_serialization=False)
    obj = safe_load(path)
    assert obj["w"].tolist() == [1.0, 1.0] and class_path(obj["m"]) == "torch.nn.modules.activation.ReLU"
    marker = tmp_path / "ran"
    torch.save({"x": _Reduces(os.system, (f"touch {marker}",))}, str(path), _use_new_zipfile_serialization=False)
    with pytest.raises(AgrideployError, match="system"):
        safe_load(path)
    assert not marker.exists()


def test_numpy_1_global_names_are_accepted(tmp_path):
    path = tmp_path / "np1.pth.tar"
    torch.save({"best_pred": np.float64(0.5), "arr": np.arange(3)}, str(path))
    _rewrite_pickle(path, b"numpy._core.multiarray", b"numpy.core.multiarray")
    obj = safe_load(path)
    assert float(obj["best_pred"]) == 0.5 and obj["arr"].tolist() == [0, 1, 2]


def test_modules_become_inert_stubs_with_their_state(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False), torch.nn.BatchNorm2d(4))
    path = tmp_path / "module.pt"
    torch.save({"model": net}, str(path))
    stub = safe_load(path)["model"]
    assert isinstance(stub, ModuleStub) and not isinstance(stub, torch.nn.Module)
    assert class_path(stub) == "torch.nn.modules.container.Sequential"
    sd = stub_state_dict(stub)
    assert list(sd) == list(net.state_dict())
    assert torch.equal(sd["0.weight"], net[0].weight.detach())


def test_unknown_global_is_named_and_extra_classes_allow_it(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"x": io.BytesIO}, str(path))
    with pytest.raises(AgrideployError, match=r"_io\.BytesIO"):
        safe_load(path)
    assert safe_load(path, extra_classes={"_io.BytesIO": "allowed"})["x"] == "allowed"


def test_not_a_checkpoint_is_one_line(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(AgrideployError, match="junk.pt"):
        safe_load(path)
    with pytest.raises(AgrideployError, match="no such file"):
        safe_load(tmp_path / "missing.pt")


def test_upstream_checkpoints_read_without_the_yolov5_source(fixtures_dir):
    obj = safe_load(fixtures_dir / "yolov5n_nc3_upstream.pt")
    assert class_path(obj["ema"]) == "models.yolo.DetectionModel"
    assert isinstance(obj["best_fitness"], np.ndarray)
    assert isinstance(obj["opt"]["evolve_population"], str)
    sd = stub_state_dict(obj["ema"])
    assert len(sd) == 349 and sd["model.24.anchors"].shape == (3, 3, 2)
    assert sum(1 for v in sd.values() if v.dtype == torch.float16) == 292
