"""Limits in one place: raised by flag or environment; SIGTERM cleans up like Ctrl-C; names printed safely."""

from __future__ import annotations

import os
import signal

import pytest

from agrideploy import cli, limits
from agrideploy.errors import AgrideployError
from agrideploy.text import printable


def test_a_limit_names_the_flag_and_variable_that_raise_it(monkeypatch):
    with pytest.raises(AgrideployError, match=r"9e\+08 exceeds the limit of 2.5e\+08 .*--max-pixels N or AGRIDEPLOY_MAX_PIXELS=N"):
        limits.check("max_pixels", 30000 * 30000, "image x.png")
    monkeypatch.setenv("AGRIDEPLOY_MAX_PIXELS", "1e9")
    limits.check("max_pixels", 30000 * 30000, "image x.png")
    with pytest.raises(AgrideployError, match="nan exceeds"):
        limits.check("max_pixels", float("nan"), "image x.png")


def test_cli_flags_override_the_environment(monkeypatch):
    monkeypatch.setenv("AGRIDEPLOY_MAX_TILES", "5")
    args = cli.build_parser().parse_args(["predict", "m.onnx", "scene.tif", "--max-tiles", "7"])
    limits.apply_args(args)
    try:
        assert limits.get("max_tiles") == 7
    finally:
        limits.apply_args(cli.build_parser().parse_args(["predict", "m.onnx", "scene.tif"]))
    assert limits.get("max_tiles") == 5


def test_sigterm_removes_the_partial_output(monkeypatch, tmp_path, capsys):
    from agrideploy.commands import export_cmd
    from agrideploy.fileio import atomic_output

    def killed_mid_write(args):
        with atomic_output(tmp_path / "model.onnx") as part:
            part.write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGTERM)
        return 0

    monkeypatch.setattr(export_cmd, "run", killed_mid_write)
    assert cli.main(["export", "--arch", "yolov5n"]) == 130
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr().err == "interrupted\n"


def test_printed_names_carry_no_terminal_escapes():
    assert printable("weed\x1b[2J\ncrop\u202e") == "weed\\x1b[2J\\ncrop\\u202e"
    assert printable("maïs") == "maïs"
