import subprocess
import sys

from agrideploy.commands import VERBS


def test_help_lists_every_verb(cli):
    out = cli("--help")
    assert out.returncode == 0
    for verb in ("export", "export-triton", "build", "predict", "bench", "report", "inspect", "demo"):
        assert verb in out.stdout
    assert set(VERBS) == {"export", "export-triton", "build", "predict", "bench", "report", "inspect", "demo"}


def test_help_imports_no_heavy_module():
    code = (
        "import sys; from agrideploy.cli import build_parser; build_parser().format_help();"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'tensorrt', 'matplotlib', 'rasterio', 'dask', 'distributed') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_user_error_is_one_line_without_traceback(cli, tmp_path):
    out = cli("inspect", tmp_path / "missing.pt")
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().count("\n") == 0
    assert "no such file" in out.stderr
