"""ONNX's own backend test cases through import -> C -> compile -> run.

Sources (nothing here is written by us):

- ``node``: the single-node cases ``onnx.backend.test.case.node.collect_testcases()`` generates
  (onnx >= 1.23 wheels no longer ship them as files); np.random is seeded first so the inputs
  are the same on every run;
- ``pytorch-converted`` and ``pytorch-operator``: the model folders every onnx wheel ships
  (grouped, depthwise, dilated and strided convolutions, PyTorch's BatchNorm/pooling/Linear ...).

Selected: every case whose nodes all use operators the importer maps (``SUPPORTED_OPS``, plus
``Transpose``, which it evaluates when its input is a constant). Each selected case is one test:

- inputs after the first (weights such as Conv's W, Gemm's B and C, BatchNormalization's
  statistics) become initializers with the values of the test data;
- a case whose shape cannot be our input or output (rank 1/3/5 tensors, several outputs,
  integer tensors, no input) is skipped as *out of scope* with the reason; cases made only of
  elementwise nodes (Relu, LeakyRelu, Clip, Sigmoid, Tanh, Elu, Gelu, Softplus, HardSigmoid,
  HardSwish, Identity, Dropout) run with their rank-1/3 input seen
  as 4-D (elementwise results do not depend on the shape), and say so; cases of binary arithmetic
  (Add, Sub, Mul, Div: their second input becomes a constant) run with leading unit dimensions
  added to the input (N x C x H x W with N = 1), which keeps ONNX's broadcasting of the constant
  against it unchanged, and say so;
- a case the importer refuses must be listed in ``EXPECTED_REFUSALS`` with (part of) the
  message, so that no refusal goes unnoticed; the skip reason is the importer's message;
- everything else is imported, compiled to C and run on every image of the batch; the output
  must match ONNX's expected output: relative error ||y - ref|| / ||ref|| <= 1e-5 and
  elementwise within the case's rtol/atol.

``python tests/test_onnx_conformance.py [--write docs/onnx-conformance.md]`` runs the same
cases outside pytest and prints (or writes) the table.
"""

from __future__ import annotations

import copy
import glob
import os
import re
import sys
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest

onnx = pytest.importorskip("onnx") if __name__ != "__main__" else __import__("onnx")
from onnx import numpy_helper  # noqa: E402

import codegen  # noqa: E402
from codegen.onnx import SUPPORTED_OPS, OnnxImportError  # noqa: E402
from codegen.verify import rel_error  # noqa: E402

TOL = 1e-5
SELECTED_OPS = set(SUPPORTED_OPS) | {"Transpose"}
ELEMENTWISE_OPS = {"Relu", "LeakyRelu", "Clip", "Sigmoid", "Tanh", "Elu", "Gelu", "Softplus", "HardSigmoid", "HardSwish",
                   "Identity", "Dropout"}
ARITHMETIC_OPS = {"Add", "Sub", "Mul", "Div"}
DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")

# Cases the importer refuses, with the part of its message that says why. A refusal not listed
# here, or a listed case that imports, fails the test: the list is the reviewed scope.
EXPECTED_REFUSALS = {
    # pooling with dilation: our pooling layers have none
    "test_averagepool_2d_dilations": "'dilations'",
    "test_maxpool_2d_dilations": "'dilations'",
    "test_MaxPool2d_stride_padding_dilation": "'dilations'",
    # Clip other than Clip(0, max > 0), which is a (clipped) ReLU
    "test_clip": "only Clip(min=0",
    "test_clip_example": "only Clip(min=0",
    "test_clip_inbounds": "only Clip(min=0",
    "test_clip_outbounds": "only Clip(min=0",
    "test_clip_splitbounds": "only Clip(min=0",
    "test_clip_min_greater_than_max": "only Clip(min=0",
    "test_clip_default_max": "only Clip(min=0",
    "test_clip_default_inbounds": "only Clip(min=0",
    "test_operator_clip": "only Clip(min=0",
    # training mode
    "test_training_dropout": "training_mode",
    "test_training_dropout_default": "training_mode",
    "test_training_dropout_zero_ratio": "training_mode",
    # Flatten / Squeeze / Unsqueeze / Reshape / ReduceMean that are not a flatten (or a mean over
    # H and W) keeping the batch dimension
    "test_flatten_axis0": "'axis' is 0",
    "test_flatten_axis2": "'axis' is 2",
    "test_flatten_axis3": "'axis' is 3",
    "test_flatten_negative_axis4": "'axis' is -4",
    "test_flatten_negative_axis2": "'axis' is -2",
    "test_flatten_negative_axis1": "'axis' is -1",
    "test_squeeze": "other than the batch",
    "test_squeeze_negative_axes": "only flattening",
    "test_unsqueeze_negative_axes": "only flattening",
    "test_PixelShuffle": "only flattening",
    "test_operator_reduced_mean": "only a mean over H and W",
    "test_operator_reduced_mean_keepdim": "only a mean over H and W",
    # Gemm: transposed input, a bias that differs per row of the batch, a bias computed at run time
    "test_gemm_transposeA": "'transA'",
    "test_gemm_all_attributes": "'transA'",
    "test_gemm_default_matrix_bias": "input 2 (C)",
    "test_operator_addmm": "computed at run time",
    # MatMul with a B that is not a constant matrix (batched products)
    "test_matmul_4d": "only a constant matrix B",
    "test_matmul_bcast": "only a constant matrix B",
    "test_matmul_4d_1d": "only a constant matrix B",
    # Concat with a constant (the second data input of these cases becomes an initializer)
    "test_concat_2d_axis_0": "'a constant'",
    "test_concat_2d_axis_1": "'a constant'",
    "test_concat_2d_axis_negative_2": "'a constant'",
    "test_concat_2d_axis_negative_1": "'a constant'",
    "test_operator_concat2": "'a constant'",
    # Softmax over an axis other than the channels
    "test_softmax_functional_dim3": "'axis' is 3",
    # ConvTranspose with dilation or groups: MATLAB's transposedConv2dLayer has neither
    "test_convtranspose_dilations": "'dilations'",
    "test_convtranspose_group_2": "'group'",
    "test_convtranspose_group_2_image_3": "'group'",
    # Resize that resize2dLayer cannot express: cubic interpolation, antialiasing, cropping; sampling
    # grids no GeometricTransformMode reproduces (align_corners, half_pixel_symmetric where the
    # scaled size is not an integer, pytorch_half_pixel to one column); a keep_aspect_ratio_policy
    # size that rounds where MATLAB takes the floor
    **{f"test_resize_{case}": "'mode' is 'cubic'" for case in (
        "upsample_scales_cubic", "upsample_scales_cubic_align_corners", "downsample_scales_cubic",
        "downsample_scales_cubic_align_corners", "upsample_sizes_cubic", "downsample_sizes_cubic",
        "upsample_scales_cubic_A_n0p5_exclude_outside", "downsample_scales_cubic_A_n0p5_exclude_outside",
        "upsample_scales_cubic_asymmetric", "downsample_scales_cubic_antialias", "downsample_sizes_cubic_antialias")},
    "test_resize_downsample_scales_linear_antialias": "'antialias' is 1",
    "test_resize_downsample_sizes_linear_antialias": "'antialias' is 1",
    **{f"test_resize_tf_crop_and_resize{case}": "'tf_crop_and_resize'; cropping" for case in (
        "", "_extrapolation_value", "_axes_2_3", "_axes_3_2")},
    "test_resize_upsample_scales_linear_align_corners": "'align_corners'; for a 2x2 input resized to 4x4, no",
    "test_resize_downsample_scales_linear_align_corners": "'align_corners'; for a 2x4 input resized to 1x2, no",
    "test_resize_downsample_scales_linear_half_pixel_symmetric": "'half_pixel_symmetric'; for a 1x4 input",
    "test_resize_upsample_scales_linear_half_pixel_symmetric": "'half_pixel_symmetric'; for a 2x2 input",
    "test_resize_downsample_sizes_linear_pytorch_half_pixel": "'pytorch_half_pixel'; for a 4x4 input resized to 3x1",
    "test_resize_downsample_sizes_nearest_not_smaller": "resize2dLayer takes the floor",
    # Pad: only zeros, folded into the Conv or pooling that reads it (these pad the graph output, and
    # with other values or modes)
    "test_constant_pad": "constant_value, 'value') is 1.2; it cannot be folded",
    "test_constant_pad_axes": "constant_value, 'value') is 1.2; it cannot be folded",
    "test_constant_pad_negative_axes": "constant_value, 'value') is 1.2; it cannot be folded",
    "test_ConstantPad2d": "attribute 'value' is 2; it cannot be folded",
    "test_ReflectionPad2d": "attribute 'mode' is 'reflect'",
    "test_ReplicationPad2d": "attribute 'mode' is 'edge'",
    "test_operator_pad": "attribute 'mode' is 'reflect'",
    "test_ZeroPad2d": "'a graph output'; a Pad is supported only folded into",
    # the Slice (now imported) feeds an indexing that drops the batch dimension
    "test_operator_index": "only unit dimensions other than the batch can go",
}


# =========================================================================== the cases

@dataclass
class Case:
    source: str
    name: str
    model: object
    data_sets: list                 # [(inputs, outputs)]
    rtol: float = 1e-3
    atol: float = 1e-7
    ops: list = field(default_factory=list)


def _node_cases() -> list[Case]:
    from onnx.backend.test.case.node import collect_testcases
    state = np.random.get_state()
    np.random.seed(0)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            raw = collect_testcases()
    finally:
        np.random.set_state(state)
    out = []
    for c in raw:
        ops = [n.op_type for n in c.model.graph.node]
        if ops and set(ops) <= SELECTED_OPS:
            out.append(Case("node", c.name, c.model, list(c.data_sets or []), c.rtol, c.atol, ops))
    return out


def _number(path: str) -> int:
    return int(re.findall(r"(\d+)\.pb$", path)[0])


def _folder_cases(sub: str) -> list[Case]:
    out = []
    for d in sorted(glob.glob(os.path.join(DATA, sub, "test_*"))):
        model = onnx.load(os.path.join(d, "model.onnx"))
        ops = [n.op_type for n in model.graph.node]
        if not ops or not set(ops) <= SELECTED_OPS:
            continue
        sets = []
        for ds in sorted(glob.glob(os.path.join(d, "test_data_set_*"))):
            load = lambda pattern: [numpy_helper.to_array(onnx.load_tensor(p))  # noqa: E731
                                    for p in sorted(glob.glob(os.path.join(ds, pattern)), key=_number)]
            sets.append((load("input_*.pb"), load("output_*.pb")))
        out.append(Case(sub, os.path.basename(d), model, sets, ops=ops))
    return out


def all_cases() -> list[Case]:
    return _node_cases() + _folder_cases("pytorch-converted") + _folder_cases("pytorch-operator")


# =========================================================================== one case

class OutOfScope(Exception):
    pass


def _graph_inputs(model):
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _elem_name(t) -> str:
    return onnx.TensorProto.DataType.Name(t)


def prepare(case: Case):
    """(model to import, [(x, expected y)], note): the first input is the image; the other
    inputs become initializers. Raises OutOfScope with the reason."""
    model = copy.deepcopy(case.model)
    inputs = _graph_inputs(model)
    if not inputs:
        raise OutOfScope("the model has no input: nothing to compute at run time")
    if not case.data_sets:
        raise OutOfScope("no test data")
    first = inputs[0]
    if not first.type.HasField("tensor_type"):
        raise OutOfScope("the input is a sequence/optional, not a tensor")
    if len(model.graph.output) != 1:
        raise OutOfScope(f"{len(model.graph.output)} outputs ({', '.join(o.name for o in model.graph.output)}): "
                         "our networks have one output (inference)")
    x0 = np.asarray(case.data_sets[0][0][0])
    if x0.dtype != np.float32:
        raise OutOfScope(f"input of type {x0.dtype}: the generated code computes in float32")
    y0 = np.asarray(case.data_sets[0][1][0])
    if y0.dtype != np.float32:
        raise OutOfScope(f"output of type {y0.dtype}: the generated code computes in float32")
    for gi, value in zip(inputs[1:], case.data_sets[0][0][1:]):
        model.graph.initializer.append(numpy_helper.from_array(np.asarray(value), gi.name))
        model.graph.input.remove(gi)
    note = ""
    rank = x0.ndim
    view = None
    if rank not in (2, 4):
        if set(case.ops) <= ELEMENTWISE_OPS and rank in (1, 3):
            view = (1, x0.shape[0], 1, 1) if rank == 1 else (*x0.shape, 1)
            note = f"elementwise: input {list(x0.shape)} seen as {list(view)}"
        elif set(case.ops) <= ELEMENTWISE_OPS | ARITHMETIC_OPS and rank in (1, 3):
            view = (1,) * (4 - rank) + x0.shape
            note = f"arithmetic: input {list(x0.shape)} seen as {list(view)} (leading unit dimensions)"
        else:
            raise OutOfScope(f"input of rank {rank} {list(x0.shape)}: our networks take one N x C x H x W image "
                             "(or an N x K vector)")
        dims = first.type.tensor_type.shape
        del dims.dim[:]
        for d in view:
            dims.dim.add().dim_value = d
    pairs = []
    for ins, outs in case.data_sets:
        x = np.asarray(ins[0])
        y = np.asarray(outs[0])
        if view is not None:
            x = x.reshape(view if rank == 3 or "arithmetic" in note else (1, x.size, 1, 1))
        pairs.append((x, y))
    return model, pairs, note


def run_case(case: Case) -> tuple[str, str]:
    """('pass', detail) or ('out', reason); raises AssertionError on a wrong result."""
    try:
        model, pairs, note = prepare(case)
    except OutOfScope as exc:
        return "out", str(exc)
    try:
        net = codegen.import_onnx(model, name=re.sub(r"\W", "_", case.name))
    except OnnxImportError as exc:
        expected = EXPECTED_REFUSALS.get(case.name)
        assert expected is not None, f"{case.name}: unexpected refusal: {exc}"
        assert expected in str(exc), f"{case.name}: refused for another reason than {expected!r}: {exc}"
        return "out", f"importer refuses: {exc}"
    assert case.name not in EXPECTED_REFUSALS, f"{case.name} imports now; remove it from EXPECTED_REFUSALS"
    lib = codegen.build(net, target="c", write=False)
    from onnx.reference import ReferenceEvaluator
    evaluator = ReferenceEvaluator(model)
    input_name = _graph_inputs(model)[0].name
    worst_expected = worst_reference = 0.0
    for x, expected in pairs:
        y = net.onnx.from_output(lib.predict(net.onnx.to_input(x)))
        expected = expected.reshape(y.shape) if note else expected
        assert y.shape == expected.shape, f"{case.name}: output shape {y.shape}, expected {expected.shape}"
        # ONNX's criterion against the case's expected output ...
        np.testing.assert_allclose(y, expected, rtol=case.rtol, atol=case.atol, err_msg=case.name)
        worst_expected = max(worst_expected, rel_error(y, expected))
        # ... and ours (relative error <= 1e-5) against ONNX's reference evaluator on the same input
        # (a few expected outputs are hand-rounded to 4 digits, e.g. averagepool_2d_ceil_last_window_starts_on_pad)
        reference = np.asarray(evaluator.run(None, {input_name: x})[0]).reshape(y.shape)
        err = rel_error(y, reference)
        worst_reference = max(worst_reference, err)
        assert err <= TOL, f"{case.name}: relative error {err:.2e} > {TOL:.0e} against onnx.reference"
        ours = net.onnx.from_output(net.predict(net.onnx.to_input(x).astype(np.float64)))
        assert rel_error(ours, reference) <= TOL, f"{case.name}: the NumPy reference (net.predict) differs"
    n = sum(p[0].shape[0] for p in pairs)
    detail = (f"{n} image(s); relative error {worst_reference:.1e} (onnx.reference), {worst_expected:.1e} "
              "(expected output)" + (f"; {note}" if note else ""))
    return "pass", detail


# =========================================================================== pytest

if __name__ != "__main__":
    _CASES = all_cases()

    @pytest.mark.parametrize("case", _CASES, ids=[f"{c.source}:{c.name}" for c in _CASES])
    def test_onnx_backend_case(case):
        status, detail = run_case(case)
        if status == "out":
            pytest.skip(f"{case.source}:{case.name}: out of scope: {detail}")

    def test_selection_is_not_empty():
        sources = {c.source for c in _CASES}
        assert sources == {"node", "pytorch-converted", "pytorch-operator"}
        assert len(_CASES) > 100


# =========================================================================== table

def table(results) -> str:
    run = [r for r in results if r[2] == "pass"]
    out = [r for r in results if r[2] == "out"]
    lines = ["# ONNX backend conformance",
             "",
             "Generated by `python tests/test_onnx_conformance.py --write docs/onnx-conformance.md` "
             f"(onnx {onnx.__version__}). Every case runs import -> C -> compile -> run against ONNX's "
             "expected output (the case's rtol/atol) and against `onnx.reference` on the same input "
             "(relative error <= 1e-5).",
             "",
             f"Selected {len(results)} cases: **{len(run)} run and passed**, {len(out)} out of scope.",
             "",
             "Out of scope, by reason:", ""]
    reasons: dict[str, int] = {}
    for r in out:
        key = _reason_class(r[3])
        reasons[key] = reasons.get(key, 0) + 1
    lines += [f"- {k}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
    lines += ["", "| source | case | result | detail |", "|---|---|---|---|"]
    for source, name, status, detail in results:
        text = detail.replace("|", "/").replace("\n", " ")
        shown = {"pass": "passed", "out": "out of scope"}.get(status, "**FAILED**")
        lines.append(f"| {source} | {name} | {shown} | {text} |")
    return "\n".join(lines) + "\n"


def _reason_class(reason: str) -> str:
    m = re.match(r"input of rank (\d+)", reason)
    if m:
        return f"input of rank {m.group(1)} (not an N x C x H x W image or N x K vector)"
    if reason.startswith(("input of type", "output of type")):
        return "not float32 (integer or float64 tensors)"
    if re.match(r"\d+ outputs", reason):
        return "several outputs (training statistics, argmax indices, dropout masks)"
    m = re.search(r"\((\w+)\): (.+?) is ", reason)
    if reason.startswith("importer refuses") and m:
        what = re.sub(r" \(.*?\)|attribute |the |'", "", m.group(2))
        return f"importer refuses {m.group(1)} ({what})"
    return reason.split(":")[0]


def main(argv):
    import tempfile
    os.environ.setdefault("CODEGEN_CACHE", tempfile.mkdtemp(prefix="codegen-conformance-"))
    results = []
    for case in all_cases():
        try:
            status, detail = run_case(case)
        except AssertionError as exc:
            status, detail = "FAIL", str(exc)
        results.append((case.source, case.name, status, detail))
    text = table(results)
    if "--write" in argv:
        path = argv[argv.index("--write") + 1]
        with open(path, "w") as fh:
            fh.write(text)
        print(f"wrote {path}")
    print(text)
    return 1 if any(r[2] == "FAIL" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
