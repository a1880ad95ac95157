"""Checkpoints are untrusted: a pickle that would run code is refused, and nothing in it runs."""

from __future__ import annotations

import os
import pickle

import pytest

torch = pytest.importorskip("torch")

from agd_factory_net import TinySegmenter, trained_state_dict  # noqa: E402
from agrideploy.models import load_model  # noqa: E402

from agrideploy.errors import AgrideployError  # noqa: E402


class _RunsCommand:
    """Unpickling this calls os.system(command): what a malicious checkpoint does."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.fixture
def evil(tmp_path):
    """(checkpoint path, marker path): loading the checkpoint with a plain pickle creates the marker."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": _RunsCommand(f"touch {marker}"), "epoch": 1}, path)
    return path, marker


def test_command_pickle_is_refused_and_does_not_run(evil):
    path, marker = evil
    with pytest.raises(AgrideployError) as err:
        load_model(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "system" in msg  # names the global it refused
    assert "--trust-checkpoint" in msg
    assert not marker.exists()


def test_command_in_plain_pickle_file_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_RunsCommand(f"touch {marker}"), protocol=2))
    with pytest.raises(AgrideployError):
        load_model(path)
    assert not marker.exists()


def test_command_pickle_through_the_cli_exits_2_in_one_line(evil, cli):
    path, marker = evil
    res = cli("inspect", str(path))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "system" in lines[0] and "Traceback" not in res.stderr
    assert not marker.exists()


@pytest.fixture
def pickled_module(tmp_path):
    """A whole nn.Module pickled with torch.save(model): loadable only by running the pickle."""
    net = TinySegmenter()
    net.load_state_dict(trained_state_dict())
    path = tmp_path / "whole.pt"
    torch.save(net.eval(), path)
    return path, net


def test_full_pickle_needs_trust(pickled_module, monkeypatch):
    path, net = pickled_module
    with pytest.raises(AgrideployError, match="--trust-checkpoint"):
        load_model(path)
    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    loaded = load_model(path, trust=True)
    assert loaded.source_format == "pickle (trusted)"
    assert loaded.record.task == "segment" and loaded.record.num_classes == 2
    assert any("code from the file" in n for n in loaded.notes)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded.module(x), net(x))
