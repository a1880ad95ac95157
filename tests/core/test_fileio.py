import pytest

from agrideploy.errors import AgrideployError
from agrideploy.fileio import atomic_output, check_output_path, sha256_file, write_text_atomic


def test_failure_leaves_no_file(tmp_path):
    target = tmp_path / "model.onnx"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_success_renames_into_place(tmp_path):
    target = write_text_atomic(tmp_path / "a" / "b.json", "{}")
    assert target.read_text() == "{}"
    assert [p.name for p in target.parent.iterdir()] == ["b.json"]


def test_existing_output_needs_force(tmp_path):
    (tmp_path / "x").write_text("keep")
    with pytest.raises(AgrideployError, match="--force"):
        check_output_path(tmp_path / "x", force=False)


def test_sha256(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    assert sha256_file(tmp_path / "f") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_output_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(AgrideployError, match="not a folder"):
        check_output_path(tmp_path / "file" / "model.onnx")
