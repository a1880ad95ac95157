"""Hostile inputs for the CLI, made from fixed seeds, and a runner that feeds them to agrideploy.cli.main.

Run as a script in a child process (the test sets RLIMIT_AS first):
    python hostile_cases.py WORKDIR GROUP
It writes the inputs under WORKDIR, runs every case of GROUP in this one process (so torch is
imported once), and prints one JSON line per case: name, exit code, stderr, whether an exception
escaped main(), and whether torch had been imported by the time the case ended.
Every payload that could run code would `touch` WORKDIR/CANARY; every case writes only under WORKDIR/out.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import random
import struct
import sys
import traceback
import types
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Dict, List


def _pickle_memo(w: Path) -> str:
    """393 bytes asking the unpickler for a memo of 2e8 entries."""
    p = w / "memo.pt"
    p.write_bytes(b"\x80\x02K\x01r" + struct.pack("<I", 200_000_000) + b"." + b" " * 380)
    return str(p)


class _Gadget:
    def __init__(self, canary: str):
        self.canary = canary

    def __reduce__(self):
        return (os.system, (f"touch {self.canary}",))


def _pickle_gadget(w: Path) -> str:
    p = w / "gadget.pt"
    p.write_bytes(pickle.dumps({"state_dict": _Gadget(str(w / "CANARY"))}, protocol=2))
    return str(p)


def _zip_with_pickle(path: Path, data_pkl: bytes) -> str:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", data_pkl)
        z.writestr("archive/version", "3\n")
    return str(path)


def _zip_gadget(w: Path) -> str:
    return _zip_with_pickle(w / "zip_gadget.pt", pickle.dumps({"model": _Gadget(str(w / "CANARY"))}, protocol=2))


def _zip_memo(w: Path) -> str:
    return _zip_with_pickle(w / "zip_memo.pt", b"\x80\x02K\x01r" + struct.pack("<I", 150_000_000) + b".")


def _raw_pickle(w: Path, name: str, body: bytes) -> str:
    path = w / name
    path.write_bytes(b"\x80\x02" + body + b".")
    return str(path)


def _text_pt(w: Path) -> str:
    p = w / "notes.pt"
    p.write_text("epoch 12: loss 0.31\n" * 20)
    return str(p)


def _empty(w: Path, name: str) -> str:
    p = w / name
    p.write_bytes(b"")
    return str(p)


def _torch_save(path: Path, obj) -> str:
    import torch

    torch.save(obj, str(path))
    return str(path)


def _zero_stride(w: Path) -> str:
    """4 bytes of storage viewed as 1e9 fp16 elements."""
    import torch

    return _torch_save(w / "zero_stride.pt", {"w": torch.zeros(1, dtype=torch.float16).expand(10**9)})


def _byte_flip(w: Path, seed: int) -> str:
    import torch

    path = w / f"flip{seed}.pt"
    _torch_save(path, {f"layer{i}.weight": torch.full((64,), float(i)) for i in range(4)})
    data = bytearray(path.read_bytes())
    rng = random.Random(seed)
    with zipfile.ZipFile(path) as z:  # flip a byte inside a tensor's stored data
        info = next(i for i in z.infolist() if "/data/" in i.filename)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len  # the local header's own lengths (torch pads its extra)
    data[start + rng.randrange(info.file_size)] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return str(path)


_YAML = {
    "nc": 2, "depth_multiple": 0.33, "width_multiple": 0.25,
    "anchors": [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
    "backbone": [[-1, 1, "Conv", [64, 6, 2, 2]], [-1, 1, "Conv", [128, 3, 2]], [-1, 3, "C3", [128]],
                 [-1, 1, "Conv", [256, 3, 2]], [-1, 1, "Conv", [512, 3, 2]], [-1, 1, "SPPF", [512, 5]]],
    "head": [[[2, 3, 5], 1, "Detect", ["nc", "anchors"]]],
}


def _yaml_variant(w: Path, name: str, **change) -> str:
    import yaml

    cfg = json.loads(json.dumps(_YAML))
    for key, value in change.items():
        if key == "row":
            cfg["backbone"][2] = value
        else:
            cfg[key] = value
    path = w / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _many_layers(w: Path) -> str:
    path = w / "layers.yaml"
    rows = ",".join("[-1,1,Conv,[8]]" for _ in range(200_000))
    path.write_text("nc: 1\nanchors: 3\nbackbone: [" + rows + "]\nhead: []\n")
    return str(path)


def _yolov5_checkpoint(w: Path, name: str, mutate: Callable) -> str:
    """A pickled upstream-like YOLOv5 model (classes named models.yolo.*) with one field made hostile."""
    import torch

    mod = types.ModuleType("models.yolo")
    common = types.ModuleType("models.common")
    for m, cls in ((mod, "DetectionModel"), (mod, "Detect"), (common, "Conv")):
        setattr(m, cls, type(cls, (), {"__module__": m.__name__}))
    sys.modules.update({"models": types.ModuleType("models"), "models.yolo": mod, "models.common": common})
    try:
        head = mod.Detect()
        head.__dict__.update(_parameters={}, _buffers={}, _modules={}, stride=torch.tensor([8.0, 16.0, 32.0]))
        model = mod.DetectionModel()
        seq = mod.Detect()  # stands in for the nn.Sequential holding the layers
        seq.__dict__.update(_parameters={}, _buffers={}, _modules={"0": head})
        model.__dict__.update(yaml=json.loads(json.dumps(_YAML)), nc=2, names=["a", "b"], _parameters={}, _buffers={},
                              _modules={"model": seq})
        mutate(model, seq, head)
        return _torch_save(w / f"{name}.pt", {"model": model, "epoch": 1})
    finally:
        for key in ("models", "models.yolo", "models.common"):
            sys.modules.pop(key, None)


def _billion_laughs(w: Path) -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        lines.append(f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} [{','.join(['*' + prev] * 9)}]")
    lines.append("val: *i")
    path = w / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _text_file(w: Path, name: str, text: str) -> str:
    path = w / name
    path.write_text(text)
    return str(path)


def _png_header(w: Path, width: int, height: int, name: str = "bomb.png") -> str:
    """A real PNG whose header claims width x height (its few compressed rows never get decoded)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (1 + 3 * width) * 4)
    path = w / name
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return str(path)


def _sparse_geotiff(w: Path) -> str:
    import rasterio

    path = w / "sparse.tif"
    with rasterio.open(path, "w", driver="GTiff", width=200_000, height=200_000, count=1, dtype="uint8",
                       tiled=True, blockxsize=512, blockysize=512, SPARSE_OK=True, compress="deflate"):
        pass
    return str(path)


def _vrt(w: Path) -> str:
    secret = _text_file(w, "secret.txt", "not an image\n")
    return _text_file(w, "scene.vrt", f'<VRTDataset rasterXSize="8" rasterYSize="8"><VRTRasterBand dataType="Byte" band="1">'
                      f"<SimpleSource><SourceFilename>{secret}</SourceFilename></SimpleSource></VRTRasterBand></VRTDataset>")


def _onnx_with_record(w: Path, name: str, record: dict) -> str:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    helper.set_model_props(model, {"agrideploy": json.dumps(record)})
    path = w / name
    onnx.save(model, str(path))
    return str(path)


def _onnx_without_inputs(w: Path) -> str:
    """A graph whose only input is an initializer: nothing for a caller to feed."""
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph([helper.make_node("Relu", ["w"], ["y"])], "g",
                              [helper.make_tensor_value_info("w", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [weight])
    path = w / "no_inputs.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def _engine_with_sidecar(w: Path, name: str, sidecar: bytes) -> str:
    path = w / name
    path.write_bytes(b"\x00" * 64)
    Path(str(path) + ".json").write_bytes(sidecar)
    return str(path)


def _torchscript(w: Path) -> str:
    import torch

    net = torch.nn.Conv2d(3, 2, 1)
    path = w / "net.torchscript"
    torch.jit.save(torch.jit.trace(net, torch.rand(1, 3, 8, 8)), str(path))
    return str(path)


GOOD_RECORD = {"task": "detect", "arch": "tiny", "names": ["a"], "imgsz": [8, 8]}
SIDECAR = {"record": GOOD_RECORD, "build": {"tensorrt": "10.3.0", "gpu": "Orin", "compute_capability": "8.7", "build_seconds": 61.0}}


def light_cases(w: Path) -> Dict[str, List[str]]:
    """Cases that fail before torch is needed to read them (most are checked before torch is imported)."""
    out = w / "out"
    return {
        "pickle memo 2e8": ["inspect", _pickle_memo(w)],
        "pickle os.system gadget": ["export", _pickle_gadget(w), "-o", str(out / "g.onnx")],
        "zip pickle gadget": ["export", _zip_gadget(w), "-o", str(out / "z.onnx")],
        "zip pickle memo": ["inspect", _zip_memo(w)],
        "pickle nested 100000 deep": ["inspect", _raw_pickle(w, "deep.pt", b"]" * 100_000 + b"a" * 99_999)],
        "pickle BUILD on a set": ["inspect", _raw_pickle(w, "buildset.pt", b"c__builtin__\nset\n)\x85R}X\x01\x00\x00\x00aK\x01sb")],
        "pickle GET of a missing memo": ["inspect", _raw_pickle(w, "get.pt", b"K\x01q\x00h\x05")],
        "text file named .pt": ["export", _text_pt(w), "-o", str(out / "t.onnx")],
        "empty .pt": ["inspect", _empty(w, "empty.pt")],
        "empty .onnx inspect": ["inspect", _empty(w, "empty.onnx")],
        "empty .onnx build": ["build", str(w / "empty.onnx"), "--fp16", "--backend", "onnxruntime", "-o", str(out / "e.onnx")],
        "truncated .onnx build": ["build", _text_file(w, "trunc.onnx", "\x08\x07\x12\x04agri"), "--fp16", "--backend",
                                  "onnxruntime", "-o", str(out / "tr.onnx")],
        "billion laughs data.yaml": ["bench", "--arch", "yolov5n", "--data", _billion_laughs(w), "--iters", "1",
                                     "-o", str(out / "b.json")],
        "data.yaml val: 5": ["bench", "--arch", "yolov5n", "--data", _text_file(w, "val5.yaml", "val: 5\nnames: [a]\n"),
                             "--iters", "1", "-o", str(out / "v.json")],
        "data.yaml python tag": ["bench", "--arch", "yolov5n", "--data",
                                 _text_file(w, "tag.yaml", "val: !!python/object/apply:os.system ['touch CANARY']\n"),
                                 "--iters", "1", "-o", str(out / "p.json")],
        "30000x30000 png": ["predict", "--arch", "yolov5n", _png_header(w, 30000, 30000), "-o", str(out / "pred")],
        "vrt image": ["predict", "--arch", "yolov5n", _vrt(w), "-o", str(out / "pred")],
        "model yaml anchors alias": ["export", "--arch", _text_file(w, "alias.yaml", "nc: 1\nanchors: &a 3\nx: *a\nbackbone: []\nhead: []\n"),
                                     "-o", str(out / "a.onnx")],
        "onnx without inputs build": ["build", _onnx_without_inputs(w), "--fp16", "-o", str(out / "ni.onnx")],
        "onnx without inputs inspect": ["inspect", str(w / "no_inputs.onnx")],
        "record names: 5": ["inspect", _onnx_with_record(w, "names5.onnx", dict(GOOD_RECORD, names=5))],
        "record imgsz: ab": ["build", _onnx_with_record(w, "imgsz.onnx", dict(GOOD_RECORD, imgsz="ab")), "--fp16",
                             "--backend", "onnxruntime", "-o", str(out / "i.onnx")],
        "record channels: '3'": ["inspect", _onnx_with_record(w, "ch.onnx", dict(GOOD_RECORD, channels="3"))],
        "sidecar build_seconds '61'": ["inspect", _engine_with_sidecar(
            w, "s.engine", json.dumps(dict(SIDECAR, build=dict(SIDECAR["build"], build_seconds="61"))).encode())],
        "sidecar not utf-8": ["inspect", _engine_with_sidecar(w, "u.engine", b'{"build": {"gpu": "\xff\xfe"}}')],
        "sidecar record names: 5": ["inspect", _engine_with_sidecar(w, "r.engine", json.dumps(dict(SIDECAR, record=dict(GOOD_RECORD, names=5))).encode())],
        "results runs: x": ["report", _text_file(w, "results.json", '{"schema": "agrideploy-bench", "schema_version": 1, "runs": "x"}'),
                            "-o", str(out / "report")],
        "results not utf-8": ["report", _text_file(w, "r2.json", ""), "-o", str(out / "report2")],
        "bench -o existing folder --force": ["bench", "--arch", "yolov5n", "--iters", "1", "-o", str(w), "--force"],
        "build -o existing folder --force": ["build", _onnx_with_record(w, "ok.onnx", GOOD_RECORD), "--fp16", "--backend",
                                             "onnxruntime", "-o", str(out), "--force"],
        "truncated .onnx bench": ["bench", str(w / "trunc.onnx"), "--iters", "1", "-o", str(out / "t.json")],
        "truncated .onnx predict": ["predict", str(w / "trunc.onnx"), _png_header(w, 8, 8, "small.png"), "-o", str(out / "tp")],
    }


def heavy_cases(w: Path) -> Dict[str, List[str]]:
    """Cases whose inputs need torch to make, or that fail only after torch reads the file."""
    out = w / "out"
    nan = float("nan")

    def cycle(model, seq, head):
        head._modules["again"] = seq

    def params_list(model, seq, head):
        head._parameters = [1, 2]

    def nc_text(model, seq, head):
        model.nc = "x"

    def nan_stride(model, seq, head):
        import torch

        head.stride = torch.tensor([8.0, nan, 32.0])

    def yaml_n_text(model, seq, head):
        model.yaml["backbone"][2] = [-1, "3", "C3", [128]]

    def yaml_anchors_empty(model, seq, head):
        model.yaml["anchors"] = []

    cases = {
        "zero-stride 1e9 tensor": ["export", _zero_stride(w), "--arch", "yolov5n", "-o", str(out / "zs.onnx")],
        "torchscript without --trust-checkpoint": ["inspect", _torchscript(w)],
        "yolov5 _modules cycle": ["inspect", _yolov5_checkpoint(w, "cycle", cycle)],
        "yolov5 _parameters list": ["inspect", _yolov5_checkpoint(w, "plist", params_list)],
        "yolov5 nc='x'": ["inspect", _yolov5_checkpoint(w, "nctext", nc_text)],
        "yolov5 NaN stride": ["inspect", _yolov5_checkpoint(w, "nanstride", nan_stride)],
        "yolov5 yaml n='3'": ["inspect", _yolov5_checkpoint(w, "ntext", yaml_n_text)],
        "yolov5 yaml anchors=[]": ["inspect", _yolov5_checkpoint(w, "anchors0", yaml_anchors_empty)],
        "yaml depth_multiple 1e7": ["export", "--arch", _yaml_variant(w, "depth", depth_multiple=1e7), "-o", str(out / "d.onnx")],
        "yaml repeat 1e8": ["export", "--arch", _yaml_variant(w, "repeat", row=[-1, 100_000_000, "C3", [128]]), "-o", str(out / "r.onnx")],
        "yaml 200k layers": ["export", "--arch", _many_layers(w), "-o", str(out / "l.onnx")],
        "yaml width_multiple 1e5": ["export", "--arch", _yaml_variant(w, "width", width_multiple=1e5), "-o", str(out / "w.onnx")],
        "yaml ch 1e6": ["export", "--arch", _yaml_variant(w, "ch", ch=1_000_000), "-o", str(out / "c.onnx")],
        "yaml anchors 1e9": ["export", "--arch", _yaml_variant(w, "anchors", anchors=1_000_000_000), "-o", str(out / "a.onnx")],
        "yaml nc 1e7": ["export", "--arch", _yaml_variant(w, "nc", nc=10_000_000), "-o", str(out / "n.onnx")],
        "yaml channels 1e9": ["export", "--arch", _yaml_variant(w, "chans", row=[-1, 1, "Conv", [10**9, 3, 1]]), "-o", str(out / "x.onnx")],
        "sparse 200000^2 geotiff": ["predict", "--arch", "deeplabv3plus-xception", _sparse_geotiff(w), "-o", str(out / "sp")],
        "export ck.pt -o ck.pt --force": ["export", str(w / "flip1.pt"), "-o", str(w / "flip1.pt"), "--force"],
    }
    for seed in range(1, 4):
        cases[f"byte-flipped checkpoint {seed}"] = ["inspect", _byte_flip(w, seed)]
    return cases


def argument_cases(w: Path) -> Dict[str, List[str]]:
    """Errors that depend only on the arguments: refused before torch is imported."""
    existing = _text_file(w, "exists.onnx", "x")
    return {
        "export --verify-image with --no-verify": ["export", "--arch", "yolov5n", "--no-verify", "--verify-image", existing],
        "export -o existing": ["export", "--arch", "yolov5n", "-o", existing],
        "export --imgsz 0": ["export", "--arch", "yolov5n", "--imgsz", "0", "-o", str(w / "out" / "z.onnx")],
        "export --channels 0": ["export", "--arch", "yolov5n", "--channels", "0", "-o", str(w / "out" / "c.onnx")],
        "bench without models": ["bench", "-o", str(w / "out" / "b.json")],
        "build a .pt": ["build", _text_file(w, "m.pt", "x"), "--fp16"],
        "build missing model": ["build", str(w / "missing.onnx"), "--fp16"],
        "inspect missing checkpoint": ["inspect", str(w / "missing.pt")],
        "predict missing source": ["predict", "--arch", "yolov5n", str(w / "missing.png"), "-o", str(w / "out" / "p")],
    }


GROUPS = {"light": light_cases, "heavy": heavy_cases, "args": argument_cases}


def run_case(argv: List[str]) -> dict:
    from agrideploy.cli import main

    err, out = io.StringIO(), io.StringIO()
    escaped = None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
        except BaseException:  # noqa: BLE001 - the point is to see what escapes
            rc, escaped = None, traceback.format_exc()
    return {"rc": rc, "stderr": err.getvalue(), "escaped": escaped, "torch": "torch" in sys.modules}


def main() -> None:
    work, group = Path(sys.argv[1]), sys.argv[2]
    (work / "out").mkdir(parents=True, exist_ok=True)
    cases = GROUPS[group](work)
    os.chdir(work)
    for name, argv in cases.items():
        if group != "args":
            print(json.dumps(dict(run_case(argv), name=name, argv=argv)), flush=True)
            continue
        pid = os.fork()  # a fresh process per case, so "torch was imported" belongs to this case alone
        if pid == 0:
            print(json.dumps(dict(run_case(argv), name=name, argv=argv)), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
