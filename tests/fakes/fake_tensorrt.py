"""A stand-in `tensorrt` module with exactly one release's Python API surface.

Generated from that release's table (tests/data/tensorrt_api/tensorrt-<version>.json, extracted
from the bindings source): every class, member, enum value (with its C++ number) and function
the release has exists; anything it lacks raises AttributeError like the real module, including
setting an unknown attribute on a TensorRT object. A handful of members behave just enough for a
build and an inference to run through (networks have inputs, a build returns a plan, an engine
has I/O tensors); every call is recorded in `module.fake.calls`. It proves which API a code path
uses on a given release, never any numerics.

Where the real TensorRT reports a failure by a return value, so does the stand-in, so unchecked
returns show up: `execute_async_v3` returns False for a stream handle no CUDA stand-in created
(fakes.device.LIVE_STREAMS), `set_input_shape` for a shape outside the built profile (the old
shape stays, as in TensorRT), `set_tensor_address` for a null address or an unknown name,
`set_timing_cache` for a cache written elsewhere (bytes starting b"foreign"), and a weakly typed
build of an ONNX holding FP16 without the FP16 flag returns no plan. A calibrator set on the
config is driven during the build, as TensorRT drives it.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any, Callable, Dict, List, Set, Tuple

from fakes.device import LIVE_STREAMS

TABLES = Path(__file__).resolve().parents[1] / "data" / "tensorrt_api"
# label -> (table file, version string the stand-in reports)
RELEASES = {
    "8.5": ("tensorrt-8.5.3.json", "8.5.3.1"),
    "8.6": ("tensorrt-8.6.1.json", "8.6.1.5"),
    "10.3": ("tensorrt-10.3.0.json", "10.3.0.26"),
    "10.16": ("tensorrt-10.16.json", "10.16.0.72"),
    # the tables stop at 11.1; the 11.4 wheel has the same surface plus four symbols we never use
    "11.4": ("tensorrt-11.1.json", "11.4.0.106"),
}
SETTABLE = {"property", "attribute", "static_property"}
READABLE = SETTABLE | {"property_readonly", "attribute_readonly", "static_property_readonly"}


class FakeEnumValue:
    def __init__(self, enum: str, name: str, number: int):
        self.enum, self.name, self.value = enum, name, number

    def __int__(self) -> int:
        return self.value

    __index__ = __int__

    def __eq__(self, other) -> bool:
        return isinstance(other, FakeEnumValue) and (other.enum, other.name) == (self.enum, self.name)

    def __hash__(self) -> int:
        return hash((self.enum, self.name))

    def __repr__(self) -> str:
        return f"{self.enum}.{self.name}"

    __str__ = __repr__


class World:
    """What the fake GPU 'has': the network's I/O, the plan a build returns, and the call log."""

    def __init__(self, inputs, outputs, layers, data_dependent=()):
        self.inputs: List[Tuple[str, tuple]] = list(inputs)
        self.outputs: List[Tuple[str, tuple]] = list(outputs)
        self.layers: List[Tuple[str, str]] = list(layers)
        self.data_dependent: Set[str] = set(data_dependent)  # outputs whose free dims TensorRT knows only after running
        self.plan = b"fake-plan"
        self.profile: Dict[str, tuple] = {}
        self.calls: List[Tuple[str, tuple]] = []
        self.calibration_batches: List[list] = []  # device pointers get_batch returned, per batch
        self.fp16_graph = False  # the parsed ONNX holds FP16 (weights or casts)

    def accepts(self, name: str, shape: tuple) -> bool:
        """Whether a context takes `shape` for input `name`: inside its profile, or equal to a static shape."""
        if name in self.profile:
            lo, _, hi = self.profile[name]
            return len(shape) == len(lo) and all(a <= d <= b for a, d, b in zip(lo, shape, hi))
        return tuple(shape) == tuple(dict(self.inputs)[name])

    def names(self) -> List[str]:
        return [name for name, _ in self.calls]

    def args_of(self, name: str) -> List[tuple]:
        return [args for n, args in self.calls if n == name]


class _FakeBase:
    """Base of every generated class: state lives in `_state`; unknown attributes cannot be set."""

    _generated = False

    def __setattr__(self, name: str, value: Any) -> None:
        if type(self).__dict__.get("_generated") and not hasattr(type(self), name):
            raise AttributeError(f"'tensorrt.{type(self).__name__}' object has no attribute '{name}'")
        object.__setattr__(self, name, value)


def _state(obj) -> Dict[str, Any]:
    if "_state" not in obj.__dict__:
        object.__setattr__(obj, "_state", {})
    return obj.__dict__["_state"]


def make_fake_tensorrt(release: str, inputs=(("images", (-1, 3, -1, -1)),), outputs=(("output0", (-1, 252, 8)),),
                       layers=(("/body/Conv", "CONVOLUTION"), ("/Sigmoid", "ACTIVATION")), data_dependent=()) -> types.ModuleType:
    table_file, version = RELEASES[release]
    table = json.loads((TABLES / table_file).read_text())
    mod = types.ModuleType("tensorrt")
    mod.__version__ = version
    mod.fake = world = World(inputs, outputs, layers, data_dependent)

    def record(name: str, *args) -> None:
        world.calls.append((name, args))

    # enums ------------------------------------------------------------------------------------
    enums: Dict[str, type] = {}
    numbers = table.get("enum_numeric_values", {})
    for enum_name, values in table["enums"].items():
        short = enum_name.split(".")[-1]
        attrs = {v: FakeEnumValue(short, v, numbers.get(enum_name, {}).get(v, i)) for i, v in enumerate(values)}
        attrs["__members__"] = dict(attrs)
        enums[enum_name] = type(short, (), attrs)
        if "." not in enum_name:
            setattr(mod, enum_name, enums[enum_name])

    def new(cls_name: str, **state):
        cls = getattr(mod, cls_name)
        obj = cls.__new__(cls)
        _state(obj).update(state)
        return obj

    behaviours = _behaviours(mod, world, new, record)

    # classes, bases first -----------------------------------------------------------------------
    info = table["class_info"]
    done: Dict[str, type] = {}

    def build(cls_name: str) -> type:
        if cls_name in done:
            return done[cls_name]
        bases = tuple(build(b) for b in info[cls_name].get("bases", []) if b in info) or (_FakeBase,)
        attrs: Dict[str, Any] = {"_generated": True}
        kinds = info[cls_name].get("member_kinds", {})
        python_layer = table["python_layer"]["class_attributes"].get(cls_name, {})
        for member in table["classes"][cls_name]:
            kind = kinds.get(member, "attr")
            key = f"{cls_name}.{member}"
            if member in ("__enter__", "__exit__"):
                attrs[member] = (lambda self: self) if member == "__enter__" else (lambda self, *exc: None)
            elif member.startswith("__"):
                continue
            elif kind == "nested_enum" or python_layer.get(member, "").startswith("alias of"):
                attrs[member] = enums[f"ILogger.{member}"] if f"ILogger.{member}" in enums else enums.get(member)
            elif kind == "exported_enum_value" or python_layer.get(member, "").startswith("value "):
                attrs[member] = getattr(enums["ILogger.Severity"], member)
            elif kind in READABLE:
                attrs[member] = _property(key, member, behaviours.get(key), kind in SETTABLE, record)
            else:
                attrs[member] = _method(key, behaviours.get(key), record)
        if not info[cls_name].get("init"):
            def no_init(self, *args, **kwargs):
                raise TypeError(f"tensorrt.{cls_name}: No constructor defined!")
            attrs["__init__"] = no_init
        else:
            attrs["__init__"] = _constructor(cls_name, behaviours.get(f"{cls_name}.__init__"), record)
        done[cls_name] = type(cls_name, bases, attrs)
        setattr(mod, cls_name, done[cls_name])
        return done[cls_name]

    for cls_name in table["classes"]:
        build(cls_name)
    if hasattr(mod, "IHostMemory"):
        mod.IHostMemory.__bytes__ = lambda self: _state(self)["data"]  # the real one has the buffer protocol

    # functions and module attributes -----------------------------------------------------------------
    for fn in table["functions"]:
        setattr(mod, fn, _method(fn, behaviours.get(fn), record, bound=False))
    for name, what in table["module_attributes"].items():
        if what.startswith("DataType."):
            setattr(mod, name, getattr(mod.DataType, what.split(".")[1]))
    return mod


def _property(key: str, member: str, behaviour, settable: bool, record):
    def get(self):
        state = _state(self)
        if member in state:
            return state[member]
        return behaviour(self) if behaviour else None

    def put(self, value):
        record(key + "=", value)
        _state(self)[member] = value

    return property(get, put if settable else None)


def _method(key: str, behaviour, record, bound: bool = True) -> Callable:
    if bound:
        def method(self, *args, **kwargs):
            record(key, *args, *kwargs.values())
            return behaviour(self, *args, **kwargs) if behaviour else None
    else:
        def method(*args, **kwargs):
            record(key, *args, *kwargs.values())
            return behaviour(*args, **kwargs) if behaviour else True
    method.__name__ = key.split(".")[-1]
    return method


def _constructor(cls_name: str, behaviour, record):
    def init(self, *args, **kwargs):
        record(f"{cls_name}.__init__", *args)
        if behaviour:
            behaviour(self, *args, **kwargs)
    return init


def _behaviours(mod, world: World, new, record) -> Dict[str, Callable]:
    """Just enough behaviour for a build and an inference to run through."""

    def tensor(name, shape):
        return new("ITensor", name=name, shape=tuple(shape), dtype=mod.DataType.FLOAT)

    def network_layers(net):
        state = _state(net)
        if "layers" not in state:
            state["layers"] = [new("ILayer", name=n, type=getattr(mod.LayerType, t, None), num_outputs=1) for n, t in world.layers]
        return state["layers"]

    def io_shape(name):
        return dict(world.inputs + world.outputs)[name]

    def context_shape(ctx, name):
        shapes = _state(ctx).setdefault("shapes", {})
        if name in shapes:
            return shapes[name]
        first = next(iter(shapes.values()), None) or tuple(1 if d < 0 else d for d in world.inputs[0][1])
        if name in world.data_dependent:
            return tuple(io_shape(name))  # known only after the enqueue, e.g. NonMaxSuppression's (K, 3)
        return tuple(first[i] if d < 0 else d for i, d in enumerate(io_shape(name)))

    def set_input_shape(ctx, name, shape):
        if name not in dict(world.inputs) or not world.accepts(name, tuple(shape)):
            return False  # TensorRT logs an error and keeps the previous shape
        _state(ctx).setdefault("shapes", {})[name] = tuple(shape)
        return True

    def set_tensor_address(ctx, name, ptr):
        return bool(ptr) and name in names

    def execute(ctx, stream_handle):
        return int(stream_handle) in LIVE_STREAMS  # a bad handle: cudaErrorInvalidResourceHandle, enqueue fails

    def parse(parser, path):
        if not Path(path).is_file():
            return False
        world.fp16_graph = onnx_holds_fp16(path)
        return True

    def set_timing_cache(config, cache, ignore_mismatch=False):
        if _state(cache)["data"].startswith(b"foreign"):
            return False  # written on another device or release: rejected
        _state(config).update(timing_cache=cache)
        return True

    def build(builder, net, config):
        calibrator = _state(config).get("int8_calibrator")
        if calibrator is not None:
            while True:
                pointers = calibrator.get_batch([n for n, _ in world.inputs])
                if pointers is None:
                    break
                world.calibration_batches.append(list(pointers))
        strongly_typed = hasattr(mod.NetworkDefinitionCreationFlag, "STRONGLY_TYPED") and \
            _state(net)["flags"] & (1 << int(mod.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        weak = not strongly_typed and hasattr(mod.BuilderFlag, "FP16")
        if weak and world.fp16_graph and mod.BuilderFlag.FP16 not in _state(config).get("flags", set()):
            return None  # "Network has FP16 tensors but the FP16 builder flag is not set"
        return new("IHostMemory", data=world.plan)

    names = [n for n, _ in world.inputs] + [n for n, _ in world.outputs]
    return {
        "Builder.create_network": lambda self, flags=0: new("INetworkDefinition", flags=flags),
        "Builder.create_builder_config": lambda self: new("IBuilderConfig"),
        "Builder.create_optimization_profile": lambda self: new("IOptimizationProfile"),
        "Builder.build_serialized_network": build,
        "Builder.platform_has_fast_fp16": lambda self: True,
        "Builder.platform_has_fast_int8": lambda self: True,
        "Builder.num_DLA_cores": lambda self: 2,
        "INetworkDefinition.num_inputs": lambda self: len(world.inputs),
        "INetworkDefinition.get_input": lambda self, i: tensor(*world.inputs[i]),
        "INetworkDefinition.num_outputs": lambda self: len(world.outputs),
        "INetworkDefinition.get_output": lambda self, i: tensor(*world.outputs[i]),
        "INetworkDefinition.num_layers": lambda self: len(network_layers(self)),
        "INetworkDefinition.get_layer": lambda self, i: network_layers(self)[i],
        "ILayer.get_output": lambda self, i: tensor(_state(self)["name"] + "_out", (-1,)),
        "OnnxParser.parse_from_file": parse,
        "OnnxParser.num_errors": lambda self: 0,
        "IBuilderConfig.create_timing_cache": lambda self, data=b"": new("ITimingCache", data=bytes(data)),
        "IBuilderConfig.get_timing_cache": lambda self: _state(self).get("timing_cache"),
        "IBuilderConfig.set_timing_cache": set_timing_cache,
        "IBuilderConfig.set_flag": lambda self, flag: _state(self).setdefault("flags", set()).add(flag),
        "IBuilderConfig.add_optimization_profile": lambda self, profile: 0,
        "IBuilderConfig.can_run_on_DLA": lambda self, layer: True,
        "ITimingCache.serialize": lambda self: new("IHostMemory", data=b"timing:" + _state(self)["data"]),
        "IHostMemory.nbytes": lambda self: len(_state(self)["data"]),
        "IOptimizationProfile.set_shape": lambda self, name, lo, opt, hi: world.profile.update({name: (tuple(lo), tuple(opt), tuple(hi))}),
        "Runtime.deserialize_cuda_engine": lambda self, data: new("ICudaEngine", plan=bytes(data)),
        "ICudaEngine.num_io_tensors": lambda self: len(names),
        "ICudaEngine.get_tensor_name": lambda self, i: names[i],
        "ICudaEngine.get_tensor_mode": lambda self, name: mod.TensorIOMode.INPUT if name in dict(world.inputs) else mod.TensorIOMode.OUTPUT,
        "ICudaEngine.get_tensor_shape": lambda self, name: io_shape(name),
        "ICudaEngine.get_tensor_dtype": lambda self, name: mod.DataType.FLOAT,
        "ICudaEngine.get_tensor_profile_shape": lambda self, name, profile: world.profile.get(name) or (io_shape(name),) * 3,
        "ICudaEngine.num_optimization_profiles": lambda self: 1,
        "ICudaEngine.create_execution_context": lambda self, *a: new("IExecutionContext", engine=self),
        "ICudaEngine.device_memory_size": lambda self: 1 << 20,
        "ICudaEngine.device_memory_size_v2": lambda self: 1 << 20,
        "IExecutionContext.set_input_shape": set_input_shape,
        "IExecutionContext.get_tensor_shape": context_shape,
        "IExecutionContext.set_tensor_address": set_tensor_address,
        "IExecutionContext.execute_async_v3": execute,
        "IExecutionContext.set_optimization_profile_async": lambda self, i, stream: True,
        "nptype": lambda dtype: {"FLOAT": "float32", "HALF": "float16", "INT32": "int32", "INT8": "int8", "BOOL": "bool", "INT64": "int64", "UINT8": "uint8"}[dtype.name],
    }


def onnx_holds_fp16(path) -> bool:
    """Whether an ONNX file holds FP16 weights or casts to FP16 (read with the onnx package)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    fp16 = onnx.TensorProto.FLOAT16
    casts = any(n.op_type == "Cast" and any(a.name == "to" and a.i == fp16 for a in n.attribute) for n in model.graph.node)
    return casts or any(t.data_type == fp16 for t in model.graph.initializer)
