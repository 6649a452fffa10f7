"""Resizing: ONNX ``Resize`` (opsets 10 to 19) and ``Upsample`` (7 to 9) <-> ``resize2dLayer``.

ONNX's semantics are written out below in exact arithmetic (:func:`onnx_samples`: the
spec's coordinate transformations and nearest modes, clamped to the input as onnxruntime and
ONNX's reference do). A node maps onto the layer when some configuration of the layer
(``GeometricTransformMode`` and ``NearestRoundingMode``, natural choice first) samples exactly
the same input pixels with the same weights for this input size; otherwise it is refused,
naming the attribute. So ``half_pixel`` / ``asymmetric`` with ``round_prefer_ceil`` (MATLAB's
``'round'``), ``floor``, and linear always map; ``pytorch_half_pixel``, ``half_pixel_symmetric``,
``align_corners``, ``round_prefer_floor`` and ``ceil`` map where they pick the same pixels
(``ceil`` on downsampling is ``'onnx-10'``); opset 10's Resize and Upsample are
``asymmetric`` with ``'onnx-10'``. Refused: ``cubic``, ``antialias`` != 0,
``tf_crop_and_resize``, resizing N or C, and sizes the layer cannot produce (a
``keep_aspect_ratio_policy`` whose rounded size is not the floor MATLAB takes).

``scales`` become ``'Scale'`` (float32 values, taken as the simplest fractions within float32
precision, see :func:`codegen.layers.resize.exact_scale`), ``sizes`` ``'OutputSize'``.

Export: one ``Resize`` (opset >= 13): ``coordinate_transformation_mode`` from
``GeometricTransformMode``, ``scales`` for a ``'Scale'`` layer and ``sizes`` otherwise (with
``axes`` [2, 3] from opset 18, else the batch and channels from ``Shape``); the
``nearest_mode`` that picks the same pixels (``round_prefer_ceil`` for ``'round'``), or two
nodes, one per axis, where no one mode does (``'onnx-10'`` up one axis and down the other).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ...errors import UnsupportedError
from ...layers import Resize2DLayer, resize2dLayer
from ...layers.resize import Samples, axis_samples, coordinates, exact_scale, grid, positions
from ..errors import quote
from ..limits import element_count
from ..registry import exports, translates

NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
TRANSFORMS = ("half_pixel", "asymmetric", "pytorch_half_pixel", "half_pixel_symmetric", "align_corners",
              "tf_half_pixel_for_nn")
NATURAL_TRANSFORM = {"half_pixel": "half-pixel", "asymmetric": "asymmetric", "pytorch_half_pixel": "half-pixel",
                     "half_pixel_symmetric": "half-pixel"}
NATURAL_ROUNDING = {"round_prefer_ceil": "round", "round_prefer_floor": "round", "floor": "floor", "ceil": "onnx-10",
                    "simple": "onnx-10"}
ATTRIBUTES = {"mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a", "exclude_outside",
              "extrapolation_value", "antialias", "axes", "keep_aspect_ratio_policy"}


# =========================================================================== ONNX's semantics, exactly

def onnx_coordinates(n_in: int, n_out: int, scale: Fraction, transform: str) -> tuple[np.ndarray, int]:
    """The input coordinate each output element samples (ONNX Resize's coordinate_transformation_mode),
    before clamping, as numerators over one denominator (exact; :func:`codegen.layers.resize.coordinates`)."""
    if transform in ("half_pixel", "asymmetric") or (transform == "pytorch_half_pixel" and n_out > 1):
        return coordinates(n_out, scale, "half-pixel" if transform != "asymmetric" else "asymmetric")
    p, q = scale.numerator, scale.denominator
    x = positions(n_out, (2 * n_out + 1) * q + (n_in + 1) * p + n_out * q)
    if transform == "align_corners" and n_out > 1:
        return x * (n_in - 1), n_out - 1
    if transform == "tf_half_pixel_for_nn":
        return (2 * x + 1) * q, 2 * p
    if transform == "half_pixel_symmetric":            # offset n/2 (1 - m / (s n)) = (n p - m q) / 2p
        return (2 * x + 1) * q - p + n_in * p - n_out * q, 2 * p
    return 0 * x, 1                                    # align_corners, pytorch_half_pixel to one element


def onnx_samples(n_in: int, n_out: int, scale: Fraction, transform: str, method: str, nearest: str) -> Samples:
    """ONNX's sampling of one dimension (as :func:`codegen.layers.resize.axis_samples`) for ``mode``
    'nearest' or 'linear' and ``nearest_mode`` (or 'simple': opset 10's and Upsample's ceil on
    downsampling, else floor), clamped to the input as onnxruntime and ONNX's reference do."""
    num, den = onnx_coordinates(n_in, n_out, scale, transform)
    if method == "linear":
        return grid(num, den, n_in, "bilinear", "")
    if nearest == "simple":
        nearest = "ceil" if scale < 1 else "floor"
    rule = {"round_prefer_ceil": "half_up", "round_prefer_floor": "half_down"}.get(nearest, nearest)
    return grid(num, den, n_in, "nearest", rule)


# =========================================================================== import

def _text(value) -> str:
    return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else str(value)


def _scales(imp, node, k: int):
    """Input ``k`` (scales) as float32 values, or None where absent or empty."""
    if k >= len(node.input) or not node.input[k]:
        return None
    value = imp.weight(node, k, "scales")
    if value.size == 0:
        return None
    values = [float(v) for v in value.ravel()]
    if not all(math.isfinite(v) and v > 0 for v in values):
        imp.refuse(node, f"input {k} (scales)", values, "scales must be positive finite numbers")
    return values


def _sizes(imp, node, k: int):
    if k >= len(node.input) or not node.input[k]:
        return None
    sizes = imp.ints(node, k, "sizes", low=0)
    return sizes or None


def _per_axis(imp, node, values, axes, what: str, fill):
    """``values`` given for ``axes`` (all four when None) as [N, C, H, W]."""
    if axes is None:
        axes = [0, 1, 2, 3]
    if len(values) != len(axes):
        imp.refuse(node, what, values, f"expected {len(axes)} values (one per axis of {axes})")
    full = list(fill)
    for a, v in zip(axes, values):
        full[a] = v
    return full


def _axes(imp, node, attrs):
    if "axes" not in attrs:
        return None
    axes = [int(a) for a in attrs["axes"]]
    if not all(-4 <= a < 4 for a in axes):
        imp.refuse(node, "attribute 'axes'", axes, "expected axes of an N x C x H x W tensor (-4 to 3)")
    norm = [a % 4 for a in axes]
    if len(set(norm)) != len(norm):
        imp.refuse(node, "attribute 'axes'", axes, "an axis is repeated")
    return norm


def _geometry(imp, node, x, attrs, scales, sizes):
    """(layer options for the size, [(scale, out) for H and W]) of a Resize or Upsample node."""
    h, w, c = x.shape
    axes = _axes(imp, node, attrs)
    policy = _text(attrs.get("keep_aspect_ratio_policy", b"stretch"))
    if (scales is None) == (sizes is None):
        imp.refuse(node, "inputs 'scales' and 'sizes'", "'both given'" if scales else "'both absent'",
                   "exactly one of them must be given")
    if scales is not None:
        full = _per_axis(imp, node, scales, axes, "input 'scales'", [1.0] * 4)
        if full[0] != 1 or full[1] != 1:
            imp.refuse(node, "input 'scales'", full, "only the height and width can be resized (the scales of N "
                       "and C must be 1)")
        geom = []
        for n, s in zip((h, w), full[2:]):
            exact = exact_scale(s)
            out = math.floor(n * exact)
            if out != math.floor(n * s):
                imp.refuse(node, "input 'scales'", full, f"{n} x {s!r} is within float32 rounding of "
                           f"{out}: the runtimes disagree on the output size")
            geom.append((exact, out))
        return {"Scale": full[2:]}, geom
    full = _per_axis(imp, node, sizes, axes, "input 'sizes'", [imp.batch or 1, c, h, w])
    if full[1] != c or full[0] not in (1, imp.batch):
        imp.refuse(node, "input 'sizes'", full, f"only the height and width can be resized (N x {c} x ... "
                   "expected)")
    if min(full[2:]) < 1:
        imp.refuse(node, "input 'sizes'", full, "the output needs at least one row and one column")
    if policy == "stretch":
        return {"OutputSize": full[2:]}, [(Fraction(m, n), m) for m, n in zip(full[2:], (h, w))]
    if policy not in ("not_larger", "not_smaller"):
        imp.refuse(node, "attribute 'keep_aspect_ratio_policy'", quote(policy),
                   "expected stretch, not_larger or not_smaller")
    inside = [full[0], c, h, w]
    ratios = [Fraction(full[a], inside[a]) for a in (axes or range(4))]
    s = min(ratios) if policy == "not_larger" else max(ratios)
    if s != 1 and set(axes or range(4)) & {0, 1}:
        imp.refuse(node, "attribute 'keep_aspect_ratio_policy'", quote(policy),
                   f"with N or C among the axes the common scale {s} would resize them")
    geom = [(s, math.floor(s * n + Fraction(1, 2))) if a in (axes or range(4)) else (Fraction(1), n)
            for a, n in ((2, h), (3, w))]
    for k, (n, (sk, out)) in enumerate(zip((h, w), geom)):
        other = geom[1 - k]
        if sk == other[0] and Fraction(out, n) == sk and math.floor(sk * (h, w)[1 - k]) == other[1]:
            return {"OutputSize": [out, math.nan] if k == 0 else [math.nan, out]}, geom
    imp.refuse(node, "attribute 'keep_aspect_ratio_policy'", quote(policy),
               f"the sizes {[o for _, o in geom]} round scale {s} x {h}x{w} to the nearest integer; "
               "resize2dLayer takes the floor")


def _add(imp, node, x, method: str, transform: str, nearest: str, size_options: dict, geom):
    """The layer of the first configuration that samples as ONNX does; else refuse."""
    h, w, c = x.shape
    element_count([geom[0][1], geom[1][1], c], f"{imp.where(node)}: its output")     # before any table
    want = [onnx_samples(n, out, s, transform, method, nearest) for n, (s, out) in zip((h, w), geom)]
    layer_method = "bilinear" if method == "linear" else "nearest"
    first_t = NATURAL_TRANSFORM.get(transform, "half-pixel")
    transforms = [first_t] + [t for t in ("half-pixel", "asymmetric") if t != first_t]
    first_r = NATURAL_ROUNDING[nearest] if method == "nearest" else "round"
    roundings = [first_r] + [r for r in ("round", "floor", "onnx-10") if r != first_r and method == "nearest"]
    for t in transforms:
        for r in roundings:
            got = [axis_samples(n, out, s, layer_method, t, r) for n, (s, out) in zip((h, w), geom)]
            if all(a.same(b) for a, b in zip(got, want)):
                layer = resize2dLayer(**size_options, Method=layer_method, GeometricTransformMode=t,
                                      NearestRoundingMode=r, Name=imp.layer_name(node, "resize"))
                return imp.new(node, layer, [x], "nchw")
    sizes = "x".join(str(o) for _, o in geom)
    why = (f"for a {h}x{w} input resized to {sizes}, no resize2dLayer configuration (GeometricTransformMode "
           f"half-pixel or asymmetric{', NearestRoundingMode round, floor or onnx-10' if method == 'nearest' else ''}) "
           "samples the same input pixels")
    if method == "nearest" and transform in NATURAL_TRANSFORM and nearest != "simple":
        imp.refuse(node, "attribute 'nearest_mode'", quote(nearest), why)
    imp.refuse(node, "attribute 'coordinate_transformation_mode'", quote(transform), why)


def _check_input(imp, node, x):
    if x.kind != "nchw":
        imp.refuse(node, "input 0", f"'of shape {list(x.onnx_shape())}'", f"{node.op_type} needs an N x C x H x W "
                   "input (only the height and width are resized)")


def _method(imp, node, attrs) -> str:
    mode = _text(attrs.get("mode", b"nearest"))
    if mode == "bilinear" and node.op_type == "Upsample":
        mode = "linear"
    if mode not in ("nearest", "linear"):
        imp.refuse(node, "attribute 'mode'", quote(mode), "only nearest and linear resizing are supported "
                   "(resize2dLayer's Method nearest and bilinear)")
    return mode


@translates("Resize")
def _resize(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, ATTRIBUTES)
    x = imp.tensor(node, 0)
    _check_input(imp, node, x)
    method = _method(imp, node, attrs)
    if attrs.get("antialias", 0):
        imp.refuse(node, "attribute 'antialias'", attrs["antialias"], "antialiasing filters are not supported")
    if imp.opset < 11:
        transform, nearest = "asymmetric", "simple"
        scales, sizes = _scales(imp, node, 1), None
    else:
        transform = _text(attrs.get("coordinate_transformation_mode", b"half_pixel"))
        nearest = _text(attrs.get("nearest_mode", b"round_prefer_floor"))
        if transform == "tf_crop_and_resize":
            imp.refuse(node, "attribute 'coordinate_transformation_mode'", quote(transform),
                       "cropping (roi, extrapolation_value) is not supported")
        if transform not in TRANSFORMS:
            imp.refuse(node, "attribute 'coordinate_transformation_mode'", quote(transform),
                       f"expected one of {', '.join(TRANSFORMS)}")
        if method == "nearest" and nearest not in NEAREST_MODES:
            imp.refuse(node, "attribute 'nearest_mode'", quote(nearest), f"expected one of {', '.join(NEAREST_MODES)}")
        scales, sizes = _scales(imp, node, 2), _sizes(imp, node, 3)
    size_options, geom = _geometry(imp, node, x, attrs, scales, sizes)
    _add(imp, node, x, method, transform, nearest, size_options, geom)


@translates("Upsample")
def _upsample(imp, node):
    attrs = imp.attrs(node)
    imp.check_attrs(node, attrs, {"mode", "scales"})
    x = imp.tensor(node, 0)
    _check_input(imp, node, x)
    method = _method(imp, node, attrs)
    if "scales" in attrs:
        scales = [float(s) for s in attrs["scales"]]
        if not all(math.isfinite(s) and s > 0 for s in scales):
            imp.refuse(node, "attribute 'scales'", scales, "scales must be positive finite numbers")
    else:
        scales = _scales(imp, node, 1)
        if scales is None:
            imp.refuse(node, "input 1 (scales)", "'empty'", "Upsample needs its scales")
    size_options, geom = _geometry(imp, node, x, {}, scales, None)
    _add(imp, node, x, method, "asymmetric", "simple", size_options, geom)


# =========================================================================== export

def _nearest_modes(n_in: int, n_out: int, scale: Fraction, transform: str, samples, first: str) -> list[str]:
    """The ONNX nearest modes that pick ``samples`` (the layer's), ``first`` first."""
    order = [first] + [m for m in NEAREST_MODES if m != first]
    return [m for m in order if onnx_samples(n_in, n_out, scale, transform, "nearest", m).same(samples)]


def _plan(layer, encoding: str):
    """[(axes, nearest_mode)] for one ``encoding`` ('scales' or 'sizes'), or None where ONNX would
    sample other pixels with it."""
    (h, w), outs, scales = layer.geometry
    transform = layer.GeometricTransformMode.replace("-", "_")
    bilinear = layer.Method == "bilinear"
    modes = []
    for k, (n, out, s, samples) in enumerate(zip((h, w), outs, scales, layer.samples())):
        if encoding == "scales":
            s32 = np.float32(float(s))
            if exact_scale(float(s32)) != s or math.floor(n * float(s32)) != out or \
                    math.floor(np.float32(n) * s32) != out:
                return None
        else:
            s = Fraction(out, n)
        if bilinear:
            if not onnx_samples(n, out, s, transform, "linear", "").same(samples):
                return None
            modes.append([None])
            continue
        first = {"round": "round_prefer_ceil", "floor": "floor"}.get(layer.NearestRoundingMode,
                                                                     "ceil" if s < 1 else "floor")
        found = _nearest_modes(n, out, s, transform, samples, first)
        if not found:
            return None
        modes.append(found)
    common = [m for m in modes[0] if m in modes[1]]
    return [((0, 1), common[0])] if common else [((0,), modes[0][0]), ((1,), modes[1][0])]


def _resize_node(exp, x: str, layer, axes, nearest, encoding: str, hw: list[int]) -> str:
    """One Resize node resizing the spatial ``axes`` (0: H, 1: W) of ``x`` (now ``hw``) to the
    layer's sizes; returns its output."""
    (_, _), outs, _ = layer.geometry
    attrs = dict(mode="linear" if nearest is None else "nearest",
                 coordinate_transformation_mode=layer.GeometricTransformMode.replace("-", "_"))
    if nearest is not None:
        attrs["nearest_mode"] = nearest
    target = [outs[k] if k in axes else hw[k] for k in (0, 1)]
    base = layer.Name if len(axes) == 2 else f"{layer.Name}_{'hw'[axes[0]]}"
    if exp.opset >= 18:
        attrs["axes"] = [2 + k for k in axes]
        if encoding == "scales":
            scales = exp.const(f"{base}_scales", [float(layer.scales[k]) for k in axes])
            return exp.node("Resize", [x, "", scales], base, **attrs)
        sizes = exp.const(f"{base}_sizes", [target[k] for k in axes], np.int64)
        return exp.node("Resize", [x, "", "", sizes], base, **attrs)
    if encoding == "scales":
        scales = exp.const(f"{base}_scales", [1.0, 1.0] + [float(layer.scales[k]) if k in axes else 1.0
                                                           for k in (0, 1)])
        return exp.node("Resize", [x, "", scales], base, **attrs)
    shape = exp.node("Shape", [x], f"{base}_shape")
    nc = exp.node("Slice", [shape, exp.const(f"{base}_start", [0], np.int64), exp.const(f"{base}_end", [2], np.int64)],
                  f"{base}_nc")
    sizes = exp.node("Concat", [nc, exp.const(f"{base}_hw", target, np.int64)], f"{base}_sizes", axis=0)
    return exp.node("Resize", [x, "", "", sizes], base, **attrs)


@exports(Resize2DLayer)
def _resize2d_layer(exp, layer):
    x = exp.input(layer, 0, rank=4)
    (h, w), outs, _ = layer.geometry
    for encoding in (("scales", "sizes") if layer.Scale is not None else ("sizes", "scales")):
        plan = _plan(layer, encoding)
        if plan is None:
            continue
        hw = [h, w]
        for axes, nearest in plan:
            x = _resize_node(exp, x, layer, axes, nearest, encoding, hw)
            hw = [outs[k] if k in axes else hw[k] for k in (0, 1)]
        return x, 4
    raise UnsupportedError(f"{layer.label}: no ONNX Resize samples the same pixels (its scales are float32, its "
                           "sizes imply the scale output / input)")
