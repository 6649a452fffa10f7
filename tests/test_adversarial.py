"""Adversarial input: what an attacker (or a careless user) can hand to the public API.

ONNX as untrusted data
----------------------
Every model below is built in code (``onnx.helper``) and handed to ``codegen.import_onnx``
(as bytes, an ``onnx.ModelProto`` or a path) or to ``codegen build model.onnx``. Each must be
refused with an :class:`OnnxImportError` (on the command line: exit status 2, one line on
stderr, no traceback) whose message names the node, input or initializer and the problem;
models that would make the importer work for hours or allocate gigabytes are run in a
subprocess with an address-space limit and a timeout, and must be refused within seconds.

The build side
--------------
Networks the generated code cannot index, weights too large to write as C, concurrent
``predict`` calls, output folders holding someone else's files, concurrent writers, damaged
cache entries, ``kill`` during a build, layer names that equal generated symbols, bad numbers
on the command line: each gets a clear error (or simply works), never a crash, a hang, a
deleted file or a wrong result.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import codegen  # noqa: E402
import codegen.weightfiles as weightfiles  # noqa: E402
from codegen import (CodegenError, Network, UnsupportedError, additionLayer, connectLayers,  # noqa: E402
                     convolution2dLayer, fullyConnectedLayer, imageInputLayer, layerGraph, reluLayer)
from codegen.netfile import load  # noqa: E402
from codegen.onnx import OnnxImportError, import_onnx  # noqa: E402
from codegen.output import MARKER  # noqa: E402
from codegen.verify import random_inputs, rel_error  # noqa: E402
from checks import tolerance_for  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
LENET = str(EXAMPLES / "lenet.py")
X = [1, 3, 8, 8]


# =========================================================================== ONNX as untrusted data
# ---------------------------------------------------------------- helpers

def make(nodes, x_shape=X, inits=(), opset=17, x="x", y="y", graph_name="g"):
    """A model of ``nodes`` with one float input ``x`` and the output ``y`` (no checker: hostile)."""
    graph = helper.make_graph(nodes, graph_name, [helper.make_tensor_value_info(x, TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def tensor(name, data_type, dims, raw=None, floats=None):
    """A TensorProto written field by field (helper.make_tensor checks what we want to break)."""
    t = TensorProto()
    t.name, t.data_type = name, data_type
    t.dims.extend(dims)
    if raw is not None:
        t.raw_data = raw
    if floats is not None:
        t.float_data.extend(floats)
    return t


def conv_model(w, b=None, **attrs):
    """x (1x3x8x8) -> Conv(W) -> y, with the initializers ``w`` (and ``b``)."""
    inputs = ["x", w.name] + ([b.name] if b is not None else [])
    return make([helper.make_node("Conv", inputs, ["y"], name="conv", **attrs)],
                inits=[w] + ([b] if b is not None else []))


def refused(src, *fragments) -> str:
    """``import_onnx(src)`` raises OnnxImportError with every fragment in its one-line message."""
    with pytest.raises(OnnxImportError) as info:
        import_onnx(src)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{message!r} lacks {fragment!r}"
    assert all(" " <= ch <= "~" for ch in message), f"not one line of printable ASCII: {message!r}"
    return message


def cli(*args, cwd):
    """``codegen <args>`` with this checkout's codegen package."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = "import sys; from codegen.cli import main; sys.exit(main(prog_name='codegen'))"
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=60)


def assert_cli_refuses(proc, *fragments):
    """Exit status 2, exactly one line on stderr naming the problem, no traceback, no raw escape."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("codegen: error: ") and "Traceback" not in proc.stderr.split("error: ", 1)[0]
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


_ISOLATED = textwrap.dedent("""
    import json, resource, sys, time
    import onnx.reference                      # loaded before the limit, as the importer may use it
    from codegen.onnx import OnnxImportError, import_onnx
    page = resource.getpagesize()
    with open("/proc/self/statm") as fh:
        used = int(fh.read().split()[0]) * page
    limit = used + int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    data = open(sys.argv[1], "rb").read()
    start = time.perf_counter()
    try:
        import_onnx(data)
        status, message = "imported", ""
    except OnnxImportError as exc:
        status, message = "refused", str(exc)
    except BaseException as exc:
        status, message = "raised", f"{type(exc).__name__}: {exc}"
    print(json.dumps({"status": status, "message": message, "seconds": time.perf_counter() - start}))
""")


def import_isolated(model, tmp_path, budget=512 * 2 ** 20, timeout=60) -> dict:
    """Import ``model`` in a subprocess that may allocate ``budget`` bytes more than after its imports."""
    path = tmp_path / "hostile.onnx"
    path.write_bytes(model.SerializeToString())
    env = dict(os.environ, PYTHONPATH=str(ROOT), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    try:
        proc = subprocess.run([sys.executable, "-c", _ISOLATED, str(path), str(budget)], capture_output=True,
                              text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the import did not return within {timeout} s")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- 1. sizes

def test_a_2_to_the_31_pixel_input_is_refused():
    model = make([helper.make_node("Relu", ["x"], ["y"])], x_shape=[1, 1, 2 ** 31, 1])
    refused(model, "graph input 'x': dimension 2 is 2147483648 (shape [1, 1, 2147483648, 1]); the limit is 16777216 "
            "(2^24) per dimension")


def test_an_input_with_too_many_elements_is_refused():
    model = make([helper.make_node("Relu", ["x"], ["y"])], x_shape=[1, 16, 2 ** 14, 2 ** 14])
    refused(model, "graph input 'x' has 4294967296 elements (shape [1, 16, 16384, 16384]); the limit is 268435456 "
            "(2^28)")


@pytest.mark.parametrize("op, attrs, shown", [
    ("MaxPool", dict(kernel_shape=[2, 2], pads=[2 ** 40, 0, 0, 0]), "'pads' has the value 1099511627776"),
    ("Conv", dict(strides=[2 ** 40, 1]), "'strides' has the value 1099511627776"),
    ("Conv", dict(dilations=[1, 2 ** 33]), "'dilations' has the value 8589934592"),
    ("Conv", dict(group=2 ** 40), "'group' has the value 1099511627776"),
    ("MaxPool", dict(kernel_shape=[2 ** 33, 1]), "'kernel_shape' has the value 8589934592"),
    ("Softmax", dict(axis=-2 ** 40), "'axis' has the value -1099511627776"),
], ids=["pads", "strides", "dilations", "group", "kernel_shape", "axis"])
def test_huge_integer_attributes_are_refused_before_use(op, attrs, shown):
    inits = [numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "W")] if op == "Conv" else []
    inputs = ["x", "W"] if op == "Conv" else ["x"]
    model = make([helper.make_node(op, inputs, ["y"], name="big", **attrs)], inits=inits)
    refused(model, f"ONNX node 'big' ({op}): attribute {shown}", "limited to +-16777216")


def test_a_padding_that_makes_a_huge_output_is_refused():
    """Each value within the limit, the output (2^24 + 8) x (2^24 + 8) x 2 is not."""
    model = conv_model(numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "W"), pads=[2 ** 23] * 4)
    refused(model, "ONNX node 'conv' (Conv): its output has 562950490292352 elements", "the limit is 268435456")


@pytest.mark.parametrize("case", ["batch", "channels", "initializer", "reshape"])
def test_negative_dimensions_are_refused(case):
    """Negative sizes must not be read as positive (numpy's reshape reads -1 as 'infer')."""
    if case == "batch":
        model = make([helper.make_node("Relu", ["x"], ["y"])], x_shape=[-5, 3, 8, 8])
        refused(model, "graph input 'x': dimension 0 is -5 (shape [-5, 3, 8, 8]); dimensions must be positive")
    elif case == "channels":
        model = make([helper.make_node("Relu", ["x"], ["y"])], x_shape=[1, -3, 8, 8])
        refused(model, "graph input 'x': dimension 1 is -3", "dimensions must be positive")
    elif case == "initializer":
        w = tensor("W", TensorProto.FLOAT, [-1, 3, 1, 1], raw=np.ones(6, np.float32).tobytes())
        refused(conv_model(w), "initializer 'W': dimension 0 is -1", "dimensions must be nonnegative")
    else:
        shape = helper.make_node("Constant", [], ["s"], value=numpy_helper.from_array(np.array([1, -192], np.int64)))
        model = make([shape, helper.make_node("Reshape", ["x", "s"], ["y"], name="flat")], x_shape=[1, 3, 8, 8])
        refused(model, "ONNX node 'flat' (Reshape): input 1 (shape, 's') is [1, -192]",
                "the value -192 is outside [-1, 16777216]")


# ---------------------------------------------------------------- 2. external data

def _external(name, location, dims=(2, 3, 1, 1), offset=None, length=None):
    t = tensor(name, TensorProto.FLOAT, list(dims))
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            entry = t.external_data.add()
            entry.key, entry.value = key, str(value)
    return t


@pytest.mark.parametrize("given", ["bytes", "ModelProto"])
def test_external_data_of_a_model_without_a_folder_is_refused(given, tmp_path, monkeypatch):
    """'etc/passwd' would be read relative to the current folder (here /) into the weights."""
    monkeypatch.chdir("/")
    model = conv_model(_external("W", "etc/passwd", dims=(1, 3, 1, 1), length=12))
    src = model.SerializeToString() if given == "bytes" else model
    refused(src, "initializer 'W' keeps its data in an external file ('etc/passwd')",
            "read only for a model given as a path")


def _weights_file(folder: Path, values: np.ndarray, name="weights.bin") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(values.astype(np.float32).tobytes())
    return folder / name


@pytest.mark.parametrize("variant, fragment", [
    ("dotdot", "contains '..'"),
    ("absolute", "is an absolute path"),
    ("symlink", "leads outside the model's folder"),
    ("length", "external data length is 8 bytes; its shape [2, 3, 1, 1] and type need 24"),
    ("offset", "external data at offset 100 with 24 bytes runs past the end of 'weights.bin' (24 bytes)"),
    ("missing", "external data file 'nothing.bin' does not exist in the model's folder"),
])
def test_external_data_is_read_only_from_inside_the_model_folder(variant, fragment, tmp_path):
    w = np.arange(6, dtype=np.float32).reshape(2, 3, 1, 1)
    folder = tmp_path / "model"
    _weights_file(folder, w)
    secret = _weights_file(tmp_path, w, "secret.bin")               # outside the model's folder
    good = folder / "good.onnx"
    good.write_bytes(conv_model(_external("W", "weights.bin")).SerializeToString())
    net = import_onnx(good)                                          # the legitimate use still works
    assert np.array_equal(net.layers[1].Weights, w.transpose(2, 3, 1, 0))
    location, extra = {"dotdot": ("../secret.bin", {}), "absolute": (str(secret), {}),
                       "symlink": ("link.bin", {}), "length": ("weights.bin", {"length": 8}),
                       "offset": ("weights.bin", {"offset": 100}), "missing": ("nothing.bin", {})}[variant]
    if variant == "symlink":
        (folder / "link.bin").symlink_to(secret)
    bad = folder / "bad.onnx"
    bad.write_bytes(conv_model(_external("W", location, **extra)).SerializeToString())
    refused(bad, "initializer 'W'", fragment)


# ---------------------------------------------------------------- 3. invalid ONNX given a meaning

def test_two_nodes_producing_the_same_tensor_are_refused():
    nodes = [helper.make_node("Relu", ["x"], ["t"], name="first"), helper.make_node("Sigmoid", ["x"], ["t"],
                                                                                     name="second"),
             helper.make_node("Identity", ["t"], ["y"])]
    refused(make(nodes), "ONNX node 'second' (Sigmoid): output 't' is already the output of ONNX node 'first'",
            "exactly one producer")


@pytest.mark.parametrize("target, kind", [("x", "a graph input"), ("W", "an initializer")])
def test_a_node_output_that_redefines_an_input_or_initializer_is_refused(target, kind):
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "W")
    nodes = [helper.make_node("Relu", ["x"], [target], name="shadow"),
             helper.make_node("Conv", ["x", "W"], ["y"], name="conv")]
    refused(make(nodes, inits=[w]), f"ONNX node 'shadow' (Relu): output '{target}' is already {kind}")


@pytest.mark.parametrize("op, attr, value, expected", [
    ("Conv", "strides", [1.5, 1.0], "has type FLOATS; Conv (opset 17) expects INTS"),
    ("Conv", "group", "2", "has type STRING; Conv (opset 17) expects INT"),
    ("Softmax", "axis", 1.0, "has type FLOAT; Softmax (opset 17) expects INT"),
    ("MaxPool", "auto_pad", 1, "has type INT; MaxPool (opset 17) expects STRING"),
])
def test_attributes_of_the_wrong_type_are_refused(op, attr, value, expected):
    attrs = {attr: value, **({"kernel_shape": [1, 1]} if op == "MaxPool" else {})}
    inits = [numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "W")] if op == "Conv" else []
    node = helper.make_node(op, ["x", "W"] if op == "Conv" else ["x"], ["y"], name="typed", **attrs)
    refused(make([node], inits=inits), f"ONNX node 'typed' ({op}): attribute '{attr}' {expected}")


def test_an_opset_newer_than_onnx_knows_is_refused():
    newest = onnx.defs.onnx_opset_version()
    refused(make([helper.make_node("Relu", ["x"], ["y"])], opset=99),
            f"uses opset 99; supported are opsets 6 to {newest}")


# ---------------------------------------------------------------- 4. unbounded work from tiny files

def _loop_model(trips: int):
    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                              helper.make_node("Identity", ["v_in"], ["v_out"])], "body",
                             [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                              helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                              helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1])],
                             [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
                              helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])])
    inits = [numpy_helper.from_array(np.array(trips, np.int64), "M"), numpy_helper.from_array(np.array(True), "c"),
             numpy_helper.from_array(np.zeros(1, np.float32), "v0")]
    nodes = [helper.make_node("Loop", ["M", "c", "v0"], ["v"], name="spin", body=body),
             helper.make_node("Add", ["x", "v"], ["y"])]
    return make(nodes, inits=inits)


def _fill_model(shape):
    shape_init = numpy_helper.from_array(np.array(shape, np.int64), "shape")
    fill = helper.make_node("ConstantOfShape", ["shape"], ["big"], name="fill",
                            value=numpy_helper.from_array(np.array([1.0], np.float32)))
    return make([fill, helper.make_node("Add", ["x", "big"], ["y"])], inits=[shape_init])


def _constant_without_data():
    t = tensor("v", TensorProto.FLOAT, [50000, 50000])
    node = helper.make_node("Constant", [], ["big"], name="huge", value=t)
    return make([node, helper.make_node("Add", ["x", "big"], ["y"])])


def _range_model():
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in (("a", 0), ("b", 10 ** 12), ("d", 1))]
    return make([helper.make_node("Range", ["a", "b", "d"], ["r"], name="count"),
                 helper.make_node("Add", ["x", "r"], ["y"])], inits=inits)


@pytest.mark.parametrize("build, fragments", [
    (lambda: _loop_model(10 ** 12), ["ONNX node 'spin' (Loop): its inputs are all constants, but Loop is not "
                                     "evaluated at import"]),
    (lambda: _fill_model([24000, 24000]), ["ONNX node 'fill' (ConstantOfShape): its result has 576000000 elements",
                                           "the limit is 268435456"]),
    (lambda: _fill_model([50000, 50000]), ["ONNX node 'fill' (ConstantOfShape): its result has 2500000000 elements"]),
    (lambda: _fill_model([4096, 4096]), ["ONNX node 'fill' (ConstantOfShape): its inputs are constants, but its "
                                         "result would have 16777216 elements; evaluating it at import is limited "
                                         "to 4194304"]),
    (_constant_without_data, ["ONNX node 'huge' (Constant): attribute 'value' has 2500000000 elements"]),
    (_range_model, ["ONNX node 'count' (Range): its result would have 1000000000000 elements"]),
], ids=["loop_10^12", "fill_2.3GB", "fill_9.3GiB", "fill_64MiB", "constant_9.3GiB", "range_10^12"])
def test_constant_folding_is_bounded(build, fragments, tmp_path):
    """Refused within seconds and without allocating (512 MiB of address space at most)."""
    model = build()
    assert len(model.SerializeToString()) < 1000
    result = import_isolated(model, tmp_path)
    assert result["status"] == "refused", result
    for fragment in fragments:
        assert fragment in result["message"], result["message"]
    assert result["seconds"] < 2.0, result


def test_folding_still_evaluates_what_exporters_write_and_nothing_else():
    """x.view(x.size(0), -1) as PyTorch's exporter writes it (Shape, Gather, Unsqueeze, Concat,
    Reshape; here with the axes from a Range and the -1 from a ConstantOfShape) imports; a Tile
    of constants (cheap, but not on the allowlist) is refused."""
    c = lambda name, v: helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.array(v)))  # noqa
    nodes = [helper.make_node("Shape", ["x"], ["s"]), c("zero", np.int64(0)),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             c("lo", np.int64(0)), c("hi", np.int64(1)), c("step", np.int64(1)),
             helper.make_node("Range", ["lo", "hi", "step"], ["axes"]),
             helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]), c("one", np.array([1], np.int64)),
             helper.make_node("ConstantOfShape", ["one"], ["minus1"],
                              value=numpy_helper.from_array(np.array([-1], np.int64))),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Tile", ["shape", "one"], ["tiled"], name="tile"),
             helper.make_node("Reshape", ["x", "shape"], ["flat"]),
             helper.make_node("Relu", ["flat"], ["y"])]
    net = import_onnx(make(nodes))
    assert net.onnx.output_kind == "flat_chw" and [lay.FUNCTION for lay in net.layers][-1] == "reluLayer"
    nodes[-2] = helper.make_node("Reshape", ["x", "tiled"], ["flat"])
    refused(make(nodes), "ONNX node 'tile' (Tile): its inputs are all constants, but Tile is not evaluated")


# ---------------------------------------------------------------- 5. decoding errors are our errors

@pytest.mark.parametrize("w, fragment", [
    (tensor("W", TensorProto.FLOAT, [2, 3, 1, 1], floats=[1.0] * 5),
     "initializer 'W' has 5 values; FLOAT of shape [2, 3, 1, 1] needs 6"),
    (tensor("W", TensorProto.FLOAT, [2], raw=b"\x00" * 7), "initializer 'W' has 7 bytes of raw data; FLOAT of shape "
                                                           "[2] needs 8 (2 x 4)"),
    (tensor("W", 99, [2, 3, 1, 1], raw=b"\x00" * 24), "initializer 'W' has element type 99 (not an ONNX element "
                                                      "type)"),
    (tensor("W", TensorProto.STRING, [1]), "initializer 'W' has element type STRING"),
], ids=["count", "raw_bytes", "unknown_type", "string"])
def test_malformed_initializers_are_refused(w, fragment):
    refused(conv_model(w), fragment)


def test_empty_optional_constants_are_refused():
    empty = numpy_helper.from_array(np.zeros(0, np.float32), "lo")
    hi = numpy_helper.from_array(np.array(6, np.float32), "hi")
    model = make([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip")], inits=[empty, hi])
    refused(model, "ONNX node 'clip' (Clip): input 1 (min, 'lo') has 0 values; expected one (a scalar)")
    mode = numpy_helper.from_array(np.zeros(0, bool), "mode")
    model = make([helper.make_node("Dropout", ["x", "", "mode"], ["y"], name="drop")], inits=[mode])
    refused(model, "ONNX node 'drop' (Dropout): input 2 (training_mode, 'mode') has 0 values")


@pytest.mark.parametrize("values", [[1.0, np.nan], [1.0, 2.5], [1.0, 192.0]], ids=["nan", "fraction", "float"])
def test_a_reshape_shape_must_be_integers(values):
    shape = numpy_helper.from_array(np.array(values, np.float32), "s")
    model = make([helper.make_node("Reshape", ["x", "s"], ["y"], name="flat")], inits=[shape])
    refused(model, "ONNX node 'flat' (Reshape): input 1 (shape, 's') has element type float32",
            "expected integers (int64)")


def test_a_file_that_is_no_onnx_model_is_named(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    refused(empty, f"ONNX model '{empty}' is empty: it is not an ONNX model")
    refused(b"", "the ONNX model (0 bytes) is empty")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07")            # parses as protobuf (ir_version 7), holds no graph
    refused(garbage, f"ONNX model '{garbage}' is not an ONNX model: it has no graph")


# ---------------------------------------------------------------- 6. terminal injection

EVIL = "evil\n\x1b[31mTraceback (most recent call last):\n  File \"x\", line 1\r\x07" + "A" * 5000


@pytest.mark.parametrize("where", ["node name", "op type", "input name", "graph input", "output name"])
def test_names_from_the_model_are_escaped_in_messages(where):
    if where == "node name":
        model = make([helper.make_node("Cos", ["x"], ["y"], name=EVIL)])
    elif where == "op type":
        model = make([helper.make_node(EVIL, ["x"], ["y"], name="n")])
    elif where == "input name":
        model = make([helper.make_node("Relu", [EVIL], ["y"], name="n")])
    elif where == "graph input":
        model = make([helper.make_node("Relu", [EVIL], ["y"])], x=EVIL, x_shape=[1, -1, 8, 8])
    else:
        model = make([helper.make_node("Relu", ["x"], ["y"])],                # a second output: a constant
                     inits=[numpy_helper.from_array(np.ones(2, np.float32), EVIL)])
        model.graph.output.append(helper.make_tensor_value_info(EVIL, TensorProto.FLOAT, None))
    message = refused(model)
    assert "evil\\n\\x1b[31mTraceback" in message
    assert len(message) < 600


# ---------------------------------------------------------------- 7. weights' types, ceil_mode with VALID

def test_weight_types_are_converted_only_where_exact_or_announced():
    w = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]).reshape(2, 3, 1, 1)
    b16 = numpy_helper.from_array(np.array([0.5, -1.5], np.float16), "B")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        import_onnx(conv_model(numpy_helper.from_array(w.astype(np.float32), "W"), b16))
    assert not [m for m in seen if "rounded" in str(m.message)]     # float16 -> float32 is exact: no warning
    with pytest.warns(UserWarning, match=r"ONNX node 'conv' \(Conv\): input 1 \(W, 'W'\): float64 values rounded "
                                         r"to float32 \(5 of 6 changed"):
        net = import_onnx(conv_model(numpy_helper.from_array(w, "W"), b16))
    assert net.layers[1].Weights.dtype == np.float32
    refused(conv_model(numpy_helper.from_array(np.full((2, 3, 1, 1), 1e300), "W")),
            "input 1 (W, 'W') is float64 with a value of magnitude 1e+300")
    refused(conv_model(numpy_helper.from_array(np.ones((2, 3, 1, 1), np.int64), "W")),
            "ONNX node 'conv' (Conv): input 1 (W, 'W') has element type int64; weights must be floating point")


def _pool(op, auto_pad, n, k, s, **extra):
    node = helper.make_node(op, ["x"], ["y"], name="pool", kernel_shape=[k, k], strides=[s, s], auto_pad=auto_pad,
                            ceil_mode=1, **extra)
    return make([node], x_shape=[1, 2, n, n], opset=19)


def test_ceil_mode_with_valid_padding_agrees_with_onnxruntime_or_is_refused():
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    x = np.random.default_rng(0).standard_normal((1, 2, 9, 9)).astype(np.float32)
    for op, extra in (("MaxPool", {}), ("AveragePool", {"count_include_pad": 0})):
        for auto_pad, n, k, s in (("VALID", 7, 3, 2), ("VALID", 8, 2, 3), ("SAME_UPPER", 7, 3, 2),
                                  ("SAME_LOWER", 6, 3, 2), ("SAME_UPPER", 5, 2, 2)):
            model = _pool(op, auto_pad, n, k, s, **extra)
            sess = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
            xi = np.ascontiguousarray(x[:, :, :n, :n])
            ref = sess.run(None, {"x": xi})[0]
            net = import_onnx(model)
            y = net.onnx.from_output(net.predict(net.onnx.to_input(xi).astype(np.float64)))
            assert y.shape == ref.shape and np.allclose(y, ref, atol=1e-6), (op, auto_pad, n, k, s)
        # onnxruntime: 3 x 3 (a last partial window); onnx.reference: 2 x 2
        refused(_pool(op, "VALID", 5, 2, 2, **extra), f"ONNX node 'pool' ({op}): attribute 'ceil_mode' is 1",
                "onnxruntime adds a last partial window (3 outputs), ONNX's reference evaluator does not (2)")


# ---------------------------------------------------------------- the command line

def _cli_models():
    evil = make([helper.make_node("Cos", ["x"], ["y"], name=EVIL)])
    raw7 = conv_model(tensor("W", TensorProto.FLOAT, [2], raw=b"\x00" * 7))
    typed = make([helper.make_node("Conv", ["x", "W"], ["y"], name="typed", group="2")],
                 inits=[numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "W")])
    nan = make([helper.make_node("Reshape", ["x", "s"], ["y"], name="flat")],
               inits=[numpy_helper.from_array(np.array([1, np.nan], np.float32), "s")])
    return {"injection": (evil, ["ONNX node 'evil\\n\\x1b[31mTraceback"]),
            "raw_bytes": (raw7, ["initializer 'W' has 7 bytes of raw data"]),
            "attribute_type": (typed, ["attribute 'group' has type STRING"]),
            "nan_shape": (nan, ["input 1 (shape, 's') has element type float32"]),
            "loop": (_loop_model(10 ** 12), ["Loop is not evaluated at import"]),
            "empty": (None, ["is empty: it is not an ONNX model"])}


@pytest.mark.parametrize("case", list(_cli_models()))
def test_the_command_line_refuses_hostile_models_in_one_line(case, tmp_path):
    model, fragments = _cli_models()[case]
    path = tmp_path / "model.onnx"
    path.write_bytes(b"" if model is None else model.SerializeToString())
    assert_cli_refuses(cli("build", path, "--no-verify", cwd=tmp_path), *fragments)
    assert not (tmp_path / "codegen_out").exists()


# =========================================================================== the build side

def run_cli(*args, cwd=None, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "codegen.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err and "internal error" not in err, err
    for fragment in fragments:
        assert fragment in err, err


# ------------------------------------------------------------------ 1. sizes the generated code cannot index

def test_padding_of_two_to_the_thirty_is_refused_before_any_code_runs():
    net = Network([imageInputLayer([1, 1, 1]), convolution2dLayer(1, 1, Padding=[0, 2**30, 0, 0])], name="pad")
    with pytest.raises(UnsupportedError, match=r"conv_1.*2,147,483,6\d\d values.*32-bit int"):
        codegen.build(net, write=False)


def test_tensor_of_two_to_the_thirty_one_values_is_refused():
    net = Network([imageInputLayer([1, 1, 1]), convolution2dLayer(1, 2, Padding=[0, 2**30, 0, 0])], name="wide")
    with pytest.raises(UnsupportedError, match=r"convolution2dLayer 'conv_1': its output 1073741825x1x2"):
        codegen.build(net, write=False)


def test_weights_too_large_for_c_source_are_refused_before_rendering():
    """A 411 MB layer used to render for 23 s and die of MemoryError."""
    net = Network([imageInputLayer([1, 1, 10_000], Normalization="none"), fullyConnectedLayer(10_300)], name="huge")
    t0 = time.perf_counter()
    with pytest.raises(UnsupportedError, match=r"412,041,200 bytes of learnables"):
        codegen.build(net, write=False)
    assert time.perf_counter() - t0 < 5


# ------------------------------------------------------------------ 2. concurrent predict

@pytest.mark.parametrize("target", ["c", "cuda"])
def test_predict_from_four_threads_is_correct(target):
    """4 threads x 600 single images on one library: every result equals the single-threaded one."""
    net = load(EXAMPLES / "resnet_like.py")
    options = dict(target="cuda", emulate=True) if target == "cuda" else {}
    lib = codegen.build(net, write=False, **options)
    images = 600 if target == "c" else 60
    x = random_inputs(net, 4 * images, seed=7)
    want = np.stack([lib.predict(xi) for xi in x])
    got = np.empty_like(want)

    def work(t):
        for i in range(t * images, (t + 1) * images):
            got[i] = lib.predict(x[i])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wrong = int(np.sum(np.any(got != want, axis=(1, 2, 3))))
    assert wrong == 0, f"{wrong} of {4 * images} results differ"
    tol = tolerance_for(net, lib, x[:4], 1e-5)        # CUDA: its convolutions on the TF32 tensor cores
    assert max(rel_error(want[i], r) for i, r in enumerate(net.predict(x[:4].astype(np.float64)))) < tol


# ------------------------------------------------------------------ 4. output folders

def test_out_on_a_folder_with_a_foreign_codegen_entry_is_refused(tmp_path):
    """Another tool's ~/.codegen/ directory does not make a home folder codegen's."""
    home = tmp_path / "home"
    (home / ".codegen").mkdir(parents=True)
    (home / "thesis.tex").write_text("years of work")
    assert_one_line_error(run_cli("build", LENET, "--out", home, "--no-verify", cwd=tmp_path), "not made by codegen")
    assert (home / "thesis.tex").read_text() == "years of work"
    (home / ".codegen").rmdir()
    (home / MARKER).write_text("some other tool's marker\n")
    assert_one_line_error(run_cli("build", LENET, "--out", home, "--no-verify", cwd=tmp_path), "not made by codegen")
    assert (home / "thesis.tex").exists()


def test_a_file_added_to_a_generated_folder_is_never_deleted(tmp_path):
    out = tmp_path / "gen"
    assert run_cli("build", LENET, "--out", out, "--no-verify", cwd=tmp_path).returncode == 0
    (out / "notes.txt").write_text("mine")
    proc = run_cli("build", LENET, "--out", out, "--no-verify", "--seed", "3", cwd=tmp_path)
    assert_one_line_error(proc, "notes.txt", "did not write")
    assert (out / "notes.txt").read_text() == "mine"
    (out / "notes.txt").unlink()
    assert run_cli("build", LENET, "--out", out, "--no-verify", "--seed", "3", cwd=tmp_path).returncode == 0


def test_concurrent_builds_of_one_folder_all_succeed(tmp_path):
    """The marker checks run under the folder's lock: no writer sees another's half-made state."""
    out = tmp_path / "shared"
    procs = [subprocess.Popen([sys.executable, "-m", "codegen.cli", "build", LENET, "--out", str(out), "--no-verify",
                               "--seed", str(k % 2)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for k in range(6)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), results
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, "CMakeLists.txt", "Makefile", "README.md",
                                                            "codegen_simd.h", "lenet.c", "lenet.h", "lenet_weights.c"])


# ------------------------------------------------------------------ 5. bounded resources

def test_graph_editing_takes_linear_time():
    """connectLayers used to deep-copy the graph with its weights: a 1,000-block residual chain took 19 s."""
    def residual_chain(blocks: int) -> float:
        layers = [imageInputLayer([8, 8, 16], Normalization="none")]
        for b in range(blocks):
            layers += [convolution2dLayer(3, 16, Padding="same", Name=f"c{b}", Weights=np.ones((3, 3, 16, 16)),
                                          Bias=np.zeros((1, 1, 16))),
                       additionLayer(2, Name=f"a{b}")]
        g = layerGraph(layers)
        t0 = time.perf_counter()
        prev = "imageinput_1"
        for b in range(blocks):
            g = connectLayers(g, prev, f"a{b}/in2")
            prev = f"a{b}"
        return time.perf_counter() - t0

    small, large = residual_chain(500), residual_chain(2000)
    assert large < 3.0, f"2,000 connections took {large:.1f} s"
    assert large < 16 * max(small, 0.01) + 0.5, (small, large)       # linear edits: ~4x, not 16x


def test_importing_a_long_residual_chain_takes_linear_time():
    """A 30 KB ONNX residual chain of 1,000 nodes took 19 s to import, 2,000 nodes 117 s."""
    def chain(n):
        nodes, prev = [], "x"
        for i in range(n // 2):
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"], name=f"relu{i}"))
            nodes.append(helper.make_node("Add", [prev, f"r{i}"], [f"a{i}"], name=f"add{i}"))
            prev = f"a{i}"
        return make(nodes[:-1] + [helper.make_node("Add", [nodes[-1].input[0], nodes[-2].output[0]], ["y"],
                                                   name="last")], x_shape=[1, 4, 8, 8]).SerializeToString()

    def seconds(n):
        model = chain(n)
        t0 = time.perf_counter()
        net = import_onnx(model)
        assert len(net.layers) == n + 1
        return time.perf_counter() - t0

    small, large = seconds(1000), seconds(4000)
    assert large < 5.0, f"4,000 nodes took {large:.1f} s"
    assert large < 10 * max(small, 0.02), (small, large)         # linear: ~4x; quadratic would be 16x


def test_weights_file_is_checked_before_decompression(tmp_path, monkeypatch):
    """A small .npz whose arrays inflate past the limit is refused before np.load reads it."""
    path = tmp_path / "w.npz"
    np.savez_compressed(path, **{"fc_1/Weights": np.zeros((10, 300_000), np.float32)})
    assert path.stat().st_size < 20_000
    monkeypatch.setattr(weightfiles, "MAX_BYTES", 1_000_000)
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load ran before the size check"))
    with pytest.raises(CodegenError, match=r"holds 12,000,128 bytes of arrays once decompressed; at most 1,000,000"):
        Network([imageInputLayer([1, 1, 300_000]), fullyConnectedLayer(10)], weights=str(path))


def test_a_truncated_library_in_the_cache_is_rebuilt(tmp_path):
    env = {"CODEGEN_CACHE": str(tmp_path / "cache")}
    code = ("import codegen, numpy as np\nfrom codegen.netfile import load\n"
            f"net = load({LENET!r}); lib = codegen.build(net, write=False)\n"
            "x = np.random.default_rng(0).random((2, 28, 28, 1))\n"
            "assert abs(lib.predict(x) - net.predict(x)).max() < 1e-5\nprint(lib.library, lib.cached)\n")
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert first.returncode == 0, first.stderr
    library, cached = first.stdout.split()
    assert cached == "False"
    os.truncate(library, 1000)
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env})
    assert again.returncode == 0, again.stderr
    assert again.stdout.split() == [library, "False"]                  # rebuilt, not loaded


def test_sigterm_kills_the_compiler_and_removes_its_work_folder(tmp_path):
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "codegen.cli", "build", str(EXAMPLES / "mobilenetv2.py"), "--out",
                             str(tmp_path / "m"), "--no-verify"], cwd=tmp_path, env={**os.environ,
                                                                                     "CODEGEN_CACHE": str(cache)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not any(p.is_dir() and "." in p.name for p in cache.glob("*/*")):
        time.sleep(0.05)
    assert any(p.is_dir() and "." in p.name for p in cache.glob("*/*")), "the compiler never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    time.sleep(0.5)
    leftovers = [p for p in cache.glob("*/*") if "." in p.name]
    assert not leftovers, leftovers
    running = subprocess.run(["pgrep", "-f", str(cache)], capture_output=True, text=True).stdout.split()
    assert not running, f"compiler still running: {running}"


# ------------------------------------------------------------------ 6. symbols

def test_layer_names_equal_to_generated_symbols_compile_and_run():
    names = ["conv", "conv_w", "conv_b", "predict", "predict_ws", "arena", "zeros", "cuda_init", "weights", "conv_tile",
             "message", "fill"]
    layers = [imageInputLayer([5, 5, 2], Normalization="none")]
    layers += [convolution2dLayer(1, 2, Name=n) for n in names]
    net = Network(layers, name="clash")
    x = random_inputs(net, 2)
    ref = net.predict(x.astype(np.float64))
    for options in ({}, dict(target="cuda", emulate=True)):
        lib = codegen.build(net, write=False, extra_flags=["-Werror"] if not options else None, **options)
        assert max(rel_error(a, b) for a, b in zip(lib.predict(x), ref)) < 1e-5


# ------------------------------------------------------------------ 7. our errors, not raw exceptions

@pytest.mark.parametrize("args,fragment", [
    (["--count", "0"], "--count"), (["--count", "-5"], "--count"), (["--seed", "-1"], "--seed"),
    (["--tol", "-1"], "--tol"),
])
def test_bad_numbers_on_the_command_line_are_usage_errors(tmp_path, args, fragment):
    proc = run_cli("verify", LENET, *args, cwd=tmp_path)
    assert proc.returncode == 2 and fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_export_to_a_missing_folder_is_one_line(tmp_path):
    pytest.importorskip("onnx")
    assert_one_line_error(run_cli("export", LENET, tmp_path / "missing" / "x.onnx", cwd=tmp_path), "cannot write")


def test_a_ten_thousand_character_network_name_is_refused(tmp_path):
    path = tmp_path / "net.py"
    path.write_text("layers = [imageInputLayer([4, 4, 1]), reluLayer()]\nname = 'n' * 10_000\n")
    assert_one_line_error(run_cli("build", path, cwd=tmp_path), "network name is 10,000 characters", "at most 63")
    with pytest.raises(CodegenError, match="seed is -1"):
        Network([imageInputLayer([4, 4, 1]), reluLayer()], seed=-1)
