"""resize2dLayer end to end, against oracles no one here wrote.

Which oracle checks which configuration of the reference (``forward``):

==========================  =====================================================================
layer configuration         oracle
==========================  =====================================================================
asymmetric + floor          PyTorch ``interpolate(mode='nearest')``; onnxruntime Resize
                            (asymmetric, nearest_mode floor)
asymmetric + onnx-10        PyTorch 'nearest' where both scales are >= 1 (fix = floor there);
                            onnxruntime Resize of opset 10 (its own nearest rule), 'Scale' only
half-pixel + round          PyTorch ``mode='nearest-exact'``; onnxruntime (half_pixel,
                            round_prefer_ceil)
half-pixel + floor          onnxruntime (half_pixel, floor)
half-pixel + onnx-10        onnxruntime (half_pixel; per axis ceil where the scale is < 1, else
                            floor: one Resize node per axis)
asymmetric + round          onnxruntime (asymmetric, round_prefer_ceil)
bilinear, half-pixel        PyTorch ``mode='bilinear', align_corners=False``; onnxruntime linear
bilinear, asymmetric        onnxruntime (asymmetric, linear)
==========================  =====================================================================

The oracle models are written here with ``onnx.helper``, not by our exporter. Random shapes
(1 to 11), 'Scale' from a list of integer and fractional factors up and down (1/3, 0.3, 2.2 ...)
and random 'OutputSize'. Nearest results must be identical (a gather), bilinear ones within
1e-12 (float64) of PyTorch and 1e-5 of onnxruntime (float32).

Where the oracles take shortcuts the formulas do not have, the configuration is skipped and
counted: PyTorch and onnxruntime copy an axis whose output size equals its input size whatever
the scale (and PyTorch's nearest modes take index/2 where the output is twice the input); a
'Scale' like 1.25 on 4 rows gives 5 rows, not such a case, but 1.25 on 3 rows gives 3.
onnxruntime computes the coordinates in float32: where its scale is not exactly the layer's
(a float32 1/7 from 'OutputSize'), a coordinate that is exactly on a rounding boundary (an
integer for floor, a half for round) may land one ulp to the other side; only there may it
pick the neighbouring pixel, and those positions are counted.

Generated code: C (``-Werror``), CUDA in the CPU execution mode and a Cortex-M4 under QEMU
against the reference on random networks with resizes between convolutions and a YOLO-style
head; one network under ASan/UBSan. ONNX: export against onnxruntime and import back; PyTorch's
nn.Upsample (nearest, bilinear) exported by torch.onnx, imported and compiled.
"""

from __future__ import annotations

import io
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import codegen
from codegen import (LayerError, Network, batchNormalizationLayer, convolution2dLayer, depthConcatenationLayer,
                     imageInputLayer, layerGraph, maxPooling2dLayer, reluLayer, resize2dLayer, tanhLayer)
from codegen.emit import render_files
from codegen.harness import SANITIZE, run_harness
from codegen.plan import make_plan
from codegen.verify import random_inputs, rel_error
from checks import TOL, check_against_reference
from conftest import require_tool

SCALES = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 0.3, 0.6, 1.7, 2.2, 1 / 3, 2 / 3]
NEAREST = [(t, r) for t in ("half-pixel", "asymmetric") for r in ("round", "floor", "onnx-10")]


# =========================================================================== helpers

def resized(x, **options):
    """The reference output of resize2dLayer(**options) on x (N, H, W, C), and the resolved layer."""
    net = Network([imageInputLayer(list(x.shape[1:]), Normalization="none"), resize2dLayer(**options)])
    return net.predict(x), net.layers[1]


def random_size(rng, h, w) -> dict | None:
    """'Scale' (half the time) or 'OutputSize' options giving an output of at least 1x1."""
    if rng.random() < 0.5:
        return {"OutputSize": [int(v) for v in rng.integers(1, 20, 2)]}
    scale = [float(rng.choice(SCALES)), float(rng.choice(SCALES))]
    if math.floor(h * scale[0] + 1e-9) < 1 or math.floor(w * scale[1] + 1e-9) < 1:
        return None
    return {"Scale": scale}


def shortcut(layer, nearest: bool, torch_too: bool) -> bool:
    """Whether an oracle would take a shortcut on this geometry (see the module docstring)."""
    (h, w), outs, scales = layer.geometry
    for n, out, s in zip((h, w), outs, scales):
        if s != Fraction(out, n) and (out == n or (torch_too and nearest and out == 2 * n)):
            return True
    return False


def nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def nhwc(y):
    return np.ascontiguousarray(np.asarray(y).transpose(0, 2, 3, 1))


def boundary_positions(layer) -> tuple[set, set]:
    """Output rows and columns whose exact source coordinate is on a rounding boundary of the
    layer's nearest rule (an integer for floor/ceil, a half for round), inside the input."""
    (h, w), outs, scales = layer.geometry
    sets = []
    for n, out, s in zip((h, w), outs, scales):
        found = set()
        for x in range(out):
            u = (x + Fraction(1, 2)) / s - Fraction(1, 2) if layer.GeometricTransformMode == "half-pixel" else x / s
            frac = u - math.floor(u)
            on_edge = frac == (Fraction(1, 2) if layer.NearestRoundingMode == "round" else 0)
            if on_edge and 0 < u < n - 1:
                found.add(x)
        sets.append(found)
    return sets[0], sets[1]


# =========================================================================== the reference against PyTorch

def test_reference_matches_pytorch():
    """nearest (asymmetric + floor, and onnx-10 where it is floor), nearest-exact (half-pixel +
    round) and bilinear (half-pixel) on 400 random configurations each."""
    rng = np.random.default_rng(11)
    cases = [("nearest", {"GeometricTransformMode": "asymmetric", "NearestRoundingMode": "floor"}, {"mode": "nearest"}),
             ("onnx-10", {"GeometricTransformMode": "asymmetric", "NearestRoundingMode": "onnx-10"},
              {"mode": "nearest"}),
             ("nearest-exact", {}, {"mode": "nearest-exact"}),
             ("bilinear", {"Method": "bilinear"}, {"mode": "bilinear", "align_corners": False})]
    checked, skipped = dict.fromkeys([c[0] for c in cases], 0), 0
    while min(checked.values()) < 400:
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        size = random_size(rng, h, w)
        if size is None:
            continue
        x = rng.standard_normal((2, h, w, int(rng.integers(1, 4))))
        for name, ours, theirs in cases:
            y, layer = resized(x, **size, **ours)
            if name == "onnx-10" and min(layer.scales) < 1:
                continue                                   # ceil there: no PyTorch mode
            if shortcut(layer, name != "bilinear", torch_too=True):
                skipped += 1
                continue
            how = ({"size": tuple(size["OutputSize"])} if "OutputSize" in size
                   else {"scale_factor": tuple(size["Scale"])})
            ref = nhwc(F.interpolate(torch.from_numpy(nchw(x)), **how, **theirs).numpy())
            assert y.shape == ref.shape, (name, h, w, size)
            if name == "bilinear":
                assert np.max(np.abs(y - ref)) <= 1e-12 * max(1.0, np.max(np.abs(ref))), (name, h, w, size)
            else:
                assert np.array_equal(y, ref), (name, h, w, size, layer.samples())
            checked[name] += 1
    print(f"PyTorch: {checked} configurations, {skipped} skipped (shortcut)")
    assert skipped < sum(checked.values()) // 5, (skipped, checked)


# =========================================================================== the reference against onnxruntime

def ort_model(h: int, w: int, nodes: list[dict], opset: int = 19):
    """An N x 1 x h x w float model of one or more Resize nodes (``nodes``: attributes plus
    'scales' or 'sizes' for the axes given in 'axes', or for all four at opset 10)."""
    from onnx import TensorProto, helper, numpy_helper
    inits, made, prev = [], [], "x"
    for k, spec in enumerate(nodes):
        spec = dict(spec)
        out = "y" if k == len(nodes) - 1 else f"t{k}"
        if "scales" in spec:
            inits.append(numpy_helper.from_array(np.array(spec.pop("scales"), np.float32), f"s{k}"))
            inputs = [prev, f"s{k}"] if opset == 10 else [prev, "", f"s{k}"]
        else:
            inits.append(numpy_helper.from_array(np.array(spec.pop("sizes"), np.int64), f"s{k}"))
            inputs = [prev, "", "", f"s{k}"]
        made.append(helper.make_node("Resize", inputs, [out], **spec))
        prev = out
    graph = helper.make_graph(made, "r", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, h, w])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


def run_ort(model, x):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    n, h, w, c = x.shape                      # channels as batch: the models have one channel
    xs = np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(n * c, 1, h, w), np.float32)
    y = sess.run(None, {"x": xs})[0]
    return y.reshape(n, c, *y.shape[2:]).transpose(0, 2, 3, 1)


def ort_nodes(layer, size: dict) -> tuple[list[dict], int] | None:
    """The onnxruntime model of ``layer``'s configuration (see the table above), or None."""
    transform = layer.GeometricTransformMode.replace("-", "_")
    if "Scale" in size:
        given = [{"scales": [size["Scale"][k]]} for k in (0, 1)]
    else:
        given = [{"sizes": [size["OutputSize"][k]]} for k in (0, 1)]
    if layer.Method == "bilinear":
        modes = [{"mode": "linear"}] * 2
    elif layer.NearestRoundingMode == "onnx-10":
        if layer.GeometricTransformMode == "asymmetric":
            if "Scale" not in size:
                return None
            return [{"mode": "nearest", "scales": [1.0, 1.0, *size["Scale"]]}], 10
        modes = [{"mode": "nearest", "nearest_mode": "ceil" if s < 1 else "floor"} for s in layer.scales]
    else:
        rule = {"round": "round_prefer_ceil", "floor": "floor"}[layer.NearestRoundingMode]
        modes = [{"mode": "nearest", "nearest_mode": rule}] * 2
    nodes = [dict(coordinate_transformation_mode=transform, axes=[2 + k], **modes[k], **given[k]) for k in (0, 1)]
    return nodes, 19


def test_reference_matches_onnxruntime():
    """Every Method / GeometricTransformMode / NearestRoundingMode on 150 random configurations."""
    pytest.importorskip("onnx")
    rng = np.random.default_rng(12)
    configs = [{"Method": "bilinear", "GeometricTransformMode": t} for t in ("half-pixel", "asymmetric")]
    configs += [{"GeometricTransformMode": t, "NearestRoundingMode": r} for t, r in NEAREST]
    checked, skipped, ulp_flips = [0] * len(configs), 0, 0
    while min(checked) < 150:
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        size = random_size(rng, h, w)
        if size is None:
            continue
        x = rng.standard_normal((2, h, w, 2)).astype(np.float32).astype(np.float64)
        for k, options in enumerate(configs):
            y, layer = resized(x, **size, **options)
            spec = ort_nodes(layer, size)
            if spec is None or shortcut(layer, "Method" not in options, torch_too=False):
                skipped += spec is not None
                continue
            ref = run_ort(ort_model(h, w, spec[0], opset=spec[1]), x)
            assert y.shape == ref.shape, (options, h, w, size)
            if layer.Method == "bilinear":
                assert rel_error(ref, y) < 1e-5, (options, h, w, size)
            else:
                differ = np.any(ref != y, axis=(0, 3))
                if differ.any():
                    exact = all(float(np.float32(float(s))) == s for s in layer.scales) and "Scale" in size
                    rows, cols = boundary_positions(layer)
                    where = np.argwhere(differ)
                    assert not exact and all(r in rows or c in cols for r, c in where), \
                        (options, h, w, size, where, layer.samples())
                    ulp_flips += 1
            checked[k] += 1
    print(f"onnxruntime: {sum(checked)} configurations, {skipped} skipped (shortcut), {ulp_flips} with a float32 "
          "ulp flip at a rounding boundary")
    assert skipped < sum(checked) // 5, (skipped, checked)
    assert ulp_flips < sum(checked) // 50, ulp_flips


def test_ties_round_half_up_and_borders_clamp():
    """The documented rules on hand-checked cases: 'round' takes the upper pixel at an exact half
    (downsampling by 2 with half-pixel samples at 2x + 0.5), 'floor' the lower, 'onnx-10' ceil on
    downsampling; half-pixel upsampling repeats the border pixels."""
    x = np.arange(8.0).reshape(1, 1, 8, 1)
    assert resized(x, Scale=[1, 0.5])[0].ravel().tolist() == [1, 3, 5, 7]
    assert resized(x, Scale=[1, 0.5], NearestRoundingMode="floor")[0].ravel().tolist() == [0, 2, 4, 6]
    assert resized(x, Scale=[1, 1 / 3], GeometricTransformMode="asymmetric",
                   NearestRoundingMode="onnx-10")[0].ravel().tolist() == [0, 3]
    assert resized(x, Scale=[1, 0.3], GeometricTransformMode="asymmetric",
                   NearestRoundingMode="onnx-10")[0].ravel().tolist() == [0, 4]   # ceil(10/3): 3/10 exactly
    x = np.array([0.0, 4.0]).reshape(1, 1, 2, 1)
    assert resized(x, Scale=[1, 2], Method="bilinear")[0].ravel().tolist() == [0, 1, 3, 4]
    assert resized(x, Scale=[1, 2], Method="bilinear",
                   GeometricTransformMode="asymmetric")[0].ravel().tolist() == [0, 2, 4, 4]
    x = np.arange(11.0).reshape(1, 1, 11, 1)
    # 2.2 is 11/5: output 5 of 11 / 2.2 = 5 exactly (not 4.999..., the binary value's quotient)
    y = resized(x, Scale=[1, 2.2], GeometricTransformMode="asymmetric", NearestRoundingMode="floor")[0]
    assert y.shape == (1, 1, 24, 1) and y.ravel()[11] == 5


# =========================================================================== options, display, errors

def test_options_display_and_errors():
    layer = resize2dLayer("Scale", 2, "Name", "up")
    assert (layer.Name, layer.CLASS, layer.Scale, layer.OutputSize, layer.Method) == ("up", "Resize2DLayer", [2.0, 2.0],
                                                                                      None, "nearest")
    assert (layer.GeometricTransformMode, layer.NearestRoundingMode, layer.EnableReferenceInput) == (
        "half-pixel", "round", False)
    text = repr(layer)
    assert "Resize2DLayer with properties" in text and "Scale: [2 2]" in text and "OutputSize: []" in text
    bil = resize2dLayer(OutputSize=[5, 7], method="BILINEAR", geometricTransformMode="asymmetric")
    assert (bil.Method, bil.GeometricTransformMode, bil.OutputSize) == ("bilinear", "asymmetric", [5, 7])
    ref = resize2dLayer(EnableReferenceInput=True)
    assert (ref.NumInputs, ref.InputNames) == (2, ["in", "ref"])
    net = Network([imageInputLayer([3, 4, 2]), resize2dLayer(Scale=[2, 1.5]),
                   resize2dLayer(OutputSize=[4, math.nan], Method="bilinear")], name="auto")
    assert [lay.Name for lay in net.layers[1:]] == ["resize_1", "resize_2"]
    assert net.output_shape == (4, 4, 2)                 # 6x6 -> [4 NaN]: the scale 4/6 on both
    shown = repr(codegen.LayerArray(net.layers))
    assert "Resize by scale [2  1.5], nearest (round), half-pixel" in shown
    assert "Resize to output size [4  NaN], bilinear, half-pixel" in shown
    bad = [({"Scale": 0}, "resize2dLayer.*'Scale'.*positive"), ({"Scale": [1, 2, 3]}, "'Scale'"),
           ({"Scale": math.inf}, "'Scale'"), ({"OutputSize": [2.5, 3]}, "'OutputSize'.*positive integers"),
           ({"OutputSize": [math.nan, math.nan]}, "'OutputSize'"), ({"OutputSize": 4}, "'OutputSize'"),
           ({"Scale": 2, "Method": "cubic"}, "'Method'.*'nearest', 'bilinear'"),
           ({"Scale": 2, "GeometricTransformMode": "align-corners"}, "'GeometricTransformMode'"),
           ({"Scale": 2, "NearestRoundingMode": "ceil"}, "'NearestRoundingMode'.*'onnx-10'"),
           ({"Scale": 2, "EnableReferenceInput": 2}, "'EnableReferenceInput'"),
           ({"Scale": 2, "OutputSize": [2, 2]}, "exactly one of.*'Scale', 'OutputSize'"),
           ({"Scale": 2, "EnableReferenceInput": True}, "exactly one"), ({}, "exactly one.*got none"),
           ({"Scale": 2, "Sacle": 3}, "did you mean 'Scale'")]
    for options, match in bad:
        with pytest.raises(LayerError, match=match):
            resize2dLayer(**options)
    with pytest.raises(LayerError, match="'Scale'.*output of a 3x3 input would be 0x0"):
        Network([imageInputLayer([3, 3, 1]), resize2dLayer(Scale=0.25)])
    with pytest.raises(codegen.CodegenError, match="ref"):
        Network([imageInputLayer([3, 3, 1]), resize2dLayer(EnableReferenceInput=True)])


# =========================================================================== generated code

def random_resize(rng, h: int, w: int):
    """A resize2dLayer of random options whose output of an h x w input is 1x1 to 24x24."""
    method = str(rng.choice(["nearest", "nearest", "bilinear"]))
    transform, rounding = NEAREST[int(rng.integers(len(NEAREST)))]
    while True:
        size = random_size(rng, h, w)
        if size is None:
            continue
        if "Scale" in size:
            s = [Fraction(v).limit_denominator(100) for v in size["Scale"]]
            if max(math.floor(n * f) for n, f in zip((h, w), s)) > 24:
                continue
        return resize2dLayer(**size, Method=method, GeometricTransformMode=transform, NearestRoundingMode=rounding)


def random_chain(rng, index: int) -> Network:
    """A chain of convolutions, batch norm, max pooling, activations and 1-3 resizes."""
    h, w, c = int(rng.integers(1, 10)), int(rng.integers(1, 10)), int(rng.integers(1, 5))
    layers, shape, resizes = [imageInputLayer([h, w, c])], (h, w), 0
    for _ in range(int(rng.integers(3, 7))):
        kind = rng.choice(["conv", "bn", "maxpool", "relu", "tanh", "resize", "resize"])
        if kind == "resize" or (resizes == 0 and rng.random() < 0.3):
            layers.append(random_resize(rng, *shape))
            resizes += 1
        elif kind == "conv":
            layers.append(convolution2dLayer(int(rng.integers(1, 4)), int(rng.integers(1, 9)), Padding="same"))
        elif kind == "bn":
            layers.append(batchNormalizationLayer())
        elif kind == "maxpool" and min(shape) >= 2:
            layers.append(maxPooling2dLayer(2, Stride=2))
        else:
            layers.append(reluLayer() if kind != "tanh" else tanhLayer())
        shape = Network(layers, name="probe").output_shape[:2]
    if resizes == 0:
        layers.append(random_resize(rng, *shape))
    return Network(layers, seed=index, name=f"rz{index}")


def yolo_head(rng, index: int) -> Network:
    """conv -> stride-2 conv -> conv -> resize x2 nearest (or to the size of the earlier map, with
    the reference input) -> depth concatenation with the earlier map -> conv: the resize writes
    its channel slice of the concatenation in place (out pixel pitch > channels)."""
    h, w = int(rng.integers(2, 12)), int(rng.integers(2, 12))
    even = h % 2 == 0 and w % 2 == 0
    up = resize2dLayer(Scale=2, Name="up") if even else resize2dLayer(EnableReferenceInput=True, Name="up")
    lgraph = layerGraph([imageInputLayer([h, w, int(rng.integers(1, 4))], Name="in"),
                         convolution2dLayer(3, int(rng.integers(2, 6)), Padding="same", Name="c1"),
                         reluLayer(Name="r1"),
                         convolution2dLayer(3, int(rng.integers(2, 6)), Stride=2, Padding="same", Name="c2"),
                         reluLayer(Name="r2"), convolution2dLayer(1, int(rng.integers(1, 5)), Name="c3"), up,
                         depthConcatenationLayer(2, Name="cat"),
                         convolution2dLayer(3, int(rng.integers(1, 6)), Padding="same", Name="c4")])
    lgraph = lgraph.connectLayers("r1", "cat/in2")
    if not even:
        lgraph = lgraph.connectLayers("r1", "up/ref")
    return Network(lgraph, seed=index, name=f"yolo{index}")


def nets(count: int, seed: int) -> list[Network]:
    rng = np.random.default_rng(seed)
    return [(yolo_head if i % 4 == 3 else random_chain)(rng, seed * 1000 + i) for i in range(count)]


def covered(batch) -> set:
    """What the random networks exercised: method/mode, fused activations, pitched outputs."""
    seen = set()
    for net in batch:
        for op in make_plan(net).ops:
            if op.kind == "resize":
                seen.add(op.attrs.method if op.attrs.method == "bilinear" else op.attrs.mode)
                seen.update(["fused"] if op.act else [])
                seen.update(["pitched"] if op.output.pitch != op.output.shape[2] else [])
                seen.update(["reference input"] if len(net.inputs[op.name]) == 2 else [])
    return seen


def test_random_networks_cover_every_mode():
    seen = covered(nets(40, 1))
    want = {"bilinear", "fused", "pitched", "reference input"} | {f"{t}, {r}" for t, r in NEAREST}
    assert want <= seen, want - seen


def test_c_matches_reference_on_random_networks():
    batch = nets(40, 1)
    libs = codegen.build_many(batch, extra_flags=["-Werror"])
    check_against_reference(batch, libs)
    assert all(any(op.kind == "resize" for op in lib.plan.ops) for lib in libs)


def test_cuda_emulated_matches_reference_on_random_networks():
    batch = nets(40, 1)
    check_against_reference(batch, codegen.build_many(batch, target="cuda", emulate=True, opt_flags=["-O1"]))


def fixed_nets() -> list[Network]:
    """A YOLO head (8 x 6 image: the x2 upsampling has rows and columns to get wrong) and a chain of
    a bilinear downsampling/upsampling, a nearest resize to a given size and a fused ReLU."""
    rng = np.random.default_rng(5)
    head = next(net for net in (yolo_head(rng, k) for k in range(100)) if min(net.input_shape[:2]) >= 6)
    chain = Network([imageInputLayer([5, 3, 2]), resize2dLayer(Scale=[0.6, 2.5], Method="bilinear"),
                     convolution2dLayer(3, 3, Padding="same"), resize2dLayer(OutputSize=[7, 2]), reluLayer()],
                    seed=1, name="chain")
    return [head, chain]


def test_clean_under_sanitizers():
    """Heap buffers of exactly the documented sizes, NaN-filled workspace, ASan + UBSan."""
    for net in fixed_nets():
        plan = make_plan(net)
        x = random_inputs(net, 2, seed=5)
        y = run_harness(render_files(net, plan), net.name, x, plan.output.size, cflags=["-O1", *SANITIZE])
        ref = net.predict(x.astype(np.float64)).reshape(2, -1)
        assert max(rel_error(y[i], ref[i]) for i in range(2)) < TOL


def test_nvcc_builds_the_tables_without_warnings_or_spills():
    """The kernels' static const tables with the real compiler (sm_80, sm_90, PTX); on a machine with
    a GPU, the results against the reference too."""
    require_tool("nvcc")
    batch = fixed_nets()
    libs = codegen.build_many(batch, target="cuda")
    assert not [line for line in libs[0].build.log.splitlines() if "warning" in line.lower()]
    for lib in libs:
        assert {f"{lib.plan.name}_up" if lib.plan.name.startswith("yolo") else "chain_resize_1"} <= \
            {k.kernel for k in lib.kernels}
        assert not lib.spill_warnings(), lib.spill_warnings()
    if libs[0].device_count()[0]:
        check_against_reference(batch, libs)


def test_cortex_m4_matches_reference():
    require_tool("arm-none-eabi-gcc", "qemu-system-arm")
    for net in fixed_nets():
        dev = codegen.build(net, device="cortex-m4", write=False)
        assert dev.checks_passed, dev.checks_report()
        x = random_inputs(net, 2, seed=3)
        y, ref = dev.predict(x), net.predict(x.astype(np.float64))
        assert max(rel_error(y[i], ref[i]) for i in range(2)) < TOL, net.name


# =========================================================================== ONNX in and out

def test_export_matches_onnxruntime_and_imports_back():
    """Random networks exported at opsets 13, 17 (sizes from Shape), 18 and 19 (axes): onnxruntime
    (where it takes no shortcut) and the re-imported network give the reference's output."""
    onnx = pytest.importorskip("onnx")
    from codegen.onnx import export_onnx, output_rank, to_onnx_layout
    rng = np.random.default_rng(4)
    batch, checked, split = nets(24, 4), 0, 0
    for k, net in enumerate(batch):
        model = export_onnx(net, opset=(13, 17, 18, 19)[k % 4])
        onnx.checker.check_model(model, full_check=True)
        resizes = [n for n in model.graph.node if n.op_type == "Resize"]
        layers = [lay for lay in net.layers if lay.FUNCTION == "resize2dLayer"]
        assert len(resizes) >= len(layers)
        split += len(resizes) > len(layers)
        x = random_inputs(net, 2, seed=k)
        ref = to_onnx_layout(net.predict(x.astype(np.float64)), output_rank(model))
        if not any(shortcut(lay, True, torch_too=False) for lay in layers):
            y = run_ort_model(model, x)
            assert rel_error(y, ref) < 1e-5, (net.name, [lay.describe() for lay in layers])
            checked += 1
        back = codegen.import_onnx(model)
        kinds = lambda layers: [type(a).__name__ for a in layers if a.FUNCTION != "resize2dLayer"]  # noqa: E731
        assert kinds(back.layers) == kinds(net.layers)          # a split resize imports as two
        assert sum(a.FUNCTION == "resize2dLayer" for a in back.layers) == len(resizes)
        y_back = back.onnx.from_output(back.predict(x.astype(np.float64)))
        assert rel_error(y_back, ref) < 1e-6, net.name
    assert checked >= 18 and split, (checked, split)


def run_ort_model(model, x):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {model.graph.input[0].name: nchw(x)})[0]


def test_export_splits_onnx10_that_goes_up_and_down():
    """'onnx-10' upsampling the rows (floor) and downsampling the columns (ceil) has no single
    nearest_mode: two Resize nodes, one per axis, that onnxruntime runs to the same result."""
    pytest.importorskip("onnx")
    from codegen.onnx import export_onnx
    net = Network([imageInputLayer([4, 9, 2], Normalization="none"),
                   resize2dLayer(Scale=[1.5, 0.5], GeometricTransformMode="half-pixel",
                                 NearestRoundingMode="onnx-10")], name="split")
    model = export_onnx(net, opset=19)
    modes = [[a.s for a in n.attribute if a.name == "nearest_mode"] for n in model.graph.node if n.op_type == "Resize"]
    assert modes == [[b"floor"], [b"ceil"]]
    x = random_inputs(net, 2, seed=1)
    assert np.array_equal(run_ort_model(model, x), nchw(net.predict(x.astype(np.float64))).astype(np.float32))


def test_export_of_a_kept_aspect_ratio():
    """OutputSize [h NaN] exports as sizes where the other side's scale is the same fraction; where
    neither sizes (another scale) nor float32 scales (7/3 x 3 = 6.9999998: another size) can say
    it, export refuses, naming the layer."""
    pytest.importorskip("onnx")
    from codegen.onnx import export_onnx
    net = Network([imageInputLayer([4, 6, 1], Normalization="none"), resize2dLayer(OutputSize=[8, math.nan],
                                                                                   Method="bilinear")], name="ar")
    x = random_inputs(net, 2, seed=2)
    assert rel_error(run_ort_model(export_onnx(net), x), nchw(net.predict(x.astype(np.float64)))) < 1e-6
    bad = Network([imageInputLayer([3, 7, 1]), resize2dLayer(OutputSize=[7, math.nan], Name="odd")], name="odd")
    with pytest.raises(codegen.UnsupportedError, match="resize2dLayer 'odd': no ONNX Resize samples the same"):
        export_onnx(bad)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_pytorch_upsample_imports_and_runs(mode):
    """nn.Upsample(scale_factor=2) exported by torch.onnx (legacy exporter): imported as a
    resize2dLayer and compiled, the C output equals PyTorch's."""
    pytest.importorskip("onnx")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Upsample(scale_factor=2, mode=mode),
                                torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3),
                                torch.nn.Upsample(size=(9, 7), mode=mode)).eval()
    x = torch.randn(3, 3, 5, 6)
    buf = io.BytesIO()
    torch.onnx.export(model, (x[:1],), buf, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    net = codegen.import_onnx(buf.getvalue(), name=f"torch_{mode}")
    resizes = [lay for lay in net.layers if lay.FUNCTION == "resize2dLayer"]
    assert len(resizes) == 2 and {lay.Method for lay in resizes} == {mode}
    lib = codegen.build(net, write=False)
    assert any(op.kind == "resize" and op.act for op in lib.plan.ops)          # the ReLU fused into the resize
    y = net.onnx.from_output(lib.predict(net.onnx.to_input(x.numpy())))
    with torch.no_grad():
        ref = model(x).numpy()
    assert y.shape == ref.shape and rel_error(y, ref) < 1e-5


def resize_model(op: str, opset: int, inputs: dict, attrs: dict, shape=(1, 2, 4, 5), computed_scales=False):
    """A model x -> Relu -> ``op`` (Resize or Upsample) with constant ``inputs`` ({index: array}; the
    empty names in between are absent optional inputs); ``computed_scales``: the scales are the
    Relu's output instead."""
    from onnx import TensorProto, helper, numpy_helper
    names = ["r"] + [""] * max(inputs, default=0)
    inits, nodes = [], [helper.make_node("Relu", ["x"], ["r"])]
    for k, value in inputs.items():
        names[k] = f"in{k}"
        inits.append(numpy_helper.from_array(np.asarray(value), f"in{k}"))
    if computed_scales:
        names[2] = "r"
    nodes.append(helper.make_node(op, names, ["y"], name="rs", **attrs))
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *shape[1:]])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model


F32 = lambda *v: np.array(v, np.float32)  # noqa: E731
I64 = lambda *v: np.array(v, np.int64)  # noqa: E731


@pytest.mark.parametrize("op, opset, inputs, attrs, want", [
    ("Resize", 10, {1: F32(1, 1, 2, 0.6)}, {"mode": "nearest"}, ("nearest", "asymmetric", "onnx-10")),
    ("Resize", 10, {1: F32(1, 1, 0.5, 1.5)}, {"mode": "linear"}, ("bilinear", "asymmetric", None)),
    ("Upsample", 9, {1: F32(1, 1, 2, 3)}, {"mode": "nearest"}, ("nearest", "asymmetric", "onnx-10")),
    ("Upsample", 9, {1: F32(1, 1, 1.5, 2)}, {"mode": "linear"}, ("bilinear", "asymmetric", None)),
    ("Upsample", 7, {}, {"mode": "nearest", "scales": [1.0, 1.0, 3.0, 2.0]}, ("nearest", "asymmetric", "onnx-10")),
    # half_pixel + round_prefer_floor (the defaults): ties here, so another configuration samples alike
    ("Resize", 13, {2: F32(1, 1, 1.5, 0.5)}, {"mode": "nearest"}, ("nearest", None, None)),
    ("Resize", 19, {2: F32(2, 0.75)}, {"mode": "nearest", "axes": [-2, -1], "nearest_mode": "round_prefer_ceil",
                                       "coordinate_transformation_mode": "asymmetric"},
     ("nearest", "asymmetric", "round")),
    ("Resize", 11, {1: F32(), 2: F32(), 3: I64(1, 2, 7, 3)}, {"mode": "linear",
                                                              "coordinate_transformation_mode": "pytorch_half_pixel"},
     ("bilinear", "half-pixel", None)),
    ("Resize", 18, {3: I64(9, 9)}, {"axes": [2, 3], "keep_aspect_ratio_policy": "not_larger"}, ("nearest", None, None)),
    # half_pixel_symmetric is half_pixel where scale x size is an integer (5 x 1.6 = 8)
    ("Resize", 19, {2: F32(1, 1, 2, 1.6)}, {"coordinate_transformation_mode": "half_pixel_symmetric", "mode": "linear"},
     ("bilinear", "half-pixel", None)),
])
def test_import_maps_onto_the_layer_and_matches_onnxruntime(op, opset, inputs, attrs, want):
    """Resize of opsets 10 to 19 and Upsample 7 / 9 imported, compiled, against onnxruntime."""
    pytest.importorskip("onnx")
    model = resize_model(op, opset, inputs, attrs)
    net = codegen.import_onnx(model, name="imp")
    layer = [lay for lay in net.layers if lay.FUNCTION == "resize2dLayer"]
    assert len(layer) == 1
    method, transform, rounding = want
    assert layer[0].Method == method
    assert transform is None or layer[0].GeometricTransformMode == transform
    assert rounding is None or layer[0].NearestRoundingMode == rounding
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 5)).astype(np.float32)   # sizes' N is 1
    ort = pytest.importorskip("onnxruntime")
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    lib = codegen.build(net, write=False)
    y = net.onnx.from_output(lib.predict(net.onnx.to_input(x)))
    assert y.shape == ref.shape and rel_error(y, ref) < 1e-6


@pytest.mark.parametrize("op, opset, inputs, attrs, match", [
    ("Resize", 19, {2: F32(1, 1, 2, 2)}, {"mode": "cubic"}, "attribute 'mode' is 'cubic'"),
    ("Resize", 19, {2: F32(1, 1, 0.5, 0.5)}, {"mode": "linear", "antialias": 1}, "attribute 'antialias' is 1"),
    ("Resize", 19, {1: F32(0, 0, 0, 0, 1, 1, 1, 1), 2: F32(1, 1, 2, 2)},
     {"coordinate_transformation_mode": "tf_crop_and_resize"},
     "'coordinate_transformation_mode' is 'tf_crop_and_resize'"),
    ("Resize", 19, {2: F32(1, 2, 2, 2)}, {}, "input 'scales' is .*only the height and width"),
    ("Resize", 19, {3: I64(1, 3, 8, 10)}, {}, "input 'sizes' is .*only the height and width"),
    ("Resize", 19, {2: F32(1, 1, 2, 2), 3: I64(1, 2, 8, 10)}, {}, "exactly one of them"),
    ("Resize", 19, {2: F32(1, 1, 2, -1)}, {}, "scales must be positive"),
    ("Resize", 19, {3: I64(1, 2, 16, 20)}, {"coordinate_transformation_mode": "asymmetric"},
     "'nearest_mode' is 'round_prefer_floor'; for a 4x5 input resized to 16x20, no resize2dLayer configuration"),
    ("Resize", 19, {3: I64(1, 2, 7, 9)}, {"coordinate_transformation_mode": "align_corners", "mode": "linear"},
     "'coordinate_transformation_mode' is 'align_corners'"),
    ("Resize", 19, {2: F32(1, 1, 2, 1.5)}, {"coordinate_transformation_mode": "half_pixel_symmetric",
                                           "mode": "linear"}, "'half_pixel_symmetric'; for a 4x5 input resized to 8x7"),
    ("Resize", 19, {2: F32(2, 2)}, {"axes": [2, 2]}, "'axes' is \\[2, 2\\]; an axis is repeated"),
    ("Resize", 19, {2: F32(1, 1, 1e7, 1e30)}, {}, "its output: dimension 0 is 40000000 .*the limit is 16777216"),
    ("Resize", 19, {2: F32(2, 2, 2)}, {"axes": [1, 2]}, "expected 2 values"),
])
def test_import_refusals_name_node_attribute_and_value(op, opset, inputs, attrs, match):
    pytest.importorskip("onnx")
    from codegen.onnx import OnnxImportError
    with pytest.raises(OnnxImportError, match="ONNX node 'rs' \\(Resize\\): .*" + match):
        codegen.import_onnx(resize_model(op, opset, inputs, attrs))


def test_import_refuses_scales_computed_at_run_time():
    pytest.importorskip("onnx")
    from codegen.onnx import OnnxImportError
    with pytest.raises(OnnxImportError,
                       match="'rs'.*input 2 \\(scales, 'r'\\) is 'computed at run time'; it must be a constant"):
        codegen.import_onnx(resize_model("Resize", 19, {2: F32(1, 1, 2, 2)}, {}, computed_scales=True))
