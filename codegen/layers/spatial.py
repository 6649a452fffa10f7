"""Padding, output size and sliding windows shared by convolution and pooling layers.

MATLAB's rules:

- output size = floor((in - ((f - 1) * d + 1) + pad_total) / stride) + 1
- ``'same'`` padding: the output is ceil(in / stride); the total padding is
  max((out - 1) * stride + (f - 1) * d + 1 - in, 0), split evenly, with the extra row
  (column) at the bottom (right).
- ``PaddingValue``: a scalar pads with a constant; ``'replicate'`` repeats the edge,
  ``'symmetric-include-edge'`` mirrors including the edge, ``'symmetric-exclude-edge'``
  mirrors excluding it (NumPy's 'edge', 'symmetric' and 'reflect').
"""

from __future__ import annotations

import numpy as np

from ..errors import LayerError

PADDING_VALUE_MODES = ["symmetric-include-edge", "symmetric-exclude-edge", "replicate"]
_NUMPY_MODE = {"replicate": "edge", "symmetric-include-edge": "symmetric", "symmetric-exclude-edge": "reflect"}


def same_padding(in_size: int, f: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) padding of one dimension for 'same' mode."""
    effective = (f - 1) * dilation + 1
    out = -(-in_size // stride)
    total = max((out - 1) * stride + effective - in_size, 0)
    return total // 2, total - total // 2


def output_size(layer_label: str, prop: str, in_hw, f, stride, dilation, pads) -> tuple[int, int]:
    """Output (H, W); a filter larger than the padded input is an error naming the layer."""
    out = []
    for dim, n in enumerate(in_hw):
        effective = (f[dim] - 1) * dilation[dim] + 1
        padded = n + pads[2 * dim] + pads[2 * dim + 1]
        if effective > padded:
            which = "height" if dim == 0 else "width"
            window = "pool" if prop == "PoolSize" else "(dilated) filter"
            raise LayerError(
                layer_label, prop, list(f),
                f"the {window} {which} {effective} is larger than the padded input {which} {padded} "
                f"(input {n} + padding {pads[2 * dim]}+{pads[2 * dim + 1]}); reduce it or add padding")
        out.append((padded - effective) // stride[dim] + 1)
    return out[0], out[1]


def pad_input(x: np.ndarray, pads, value) -> np.ndarray:
    """Pad (N, H, W, C) by [t b l r] with a scalar or a PaddingValue mode."""
    t, b, l, r = pads
    widths = ((0, 0), (t, b), (l, r), (0, 0))
    if isinstance(value, str):
        return np.pad(x, widths, mode=_NUMPY_MODE[value])
    return np.pad(x, widths, mode="constant", constant_values=value)


def windows(xp: np.ndarray, f, stride, dilation, out_hw):
    """Yield (ky, kx, view) where view[n, oy, ox, c] = xp[n, oy*sh + ky*dh, ox*sw + kx*dw, c]."""
    oh, ow = out_hw
    for ky in range(f[0]):
        y0 = ky * dilation[0]
        for kx in range(f[1]):
            x0 = kx * dilation[1]
            yield ky, kx, xp[:, y0: y0 + (oh - 1) * stride[0] + 1: stride[0],
                             x0: x0 + (ow - 1) * stride[1] + 1: stride[1], :]
