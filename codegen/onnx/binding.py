"""Layouts: how ONNX sees our tensors (NCHW) and our networks' HWC tensors.

:class:`OnnxBinding` is what an imported network carries as ``net.onnx``; :class:`OnnxTensor`
is the importer's record of one ONNX tensor the network computes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class OnnxBinding:
    """How the ONNX model's input and outputs map onto the network's HWC tensors.

    An output kind is ``'nchw'`` (ONNX N x C x H x W), ``'nc'`` (ONNX N x K; ours 1 x 1 x K) or
    ``'flat_chw'`` (ONNX N x C*H*W, row-major over C, H, W; ours H x W x C). The outputs are in
    the ONNX graph's order, which is also the network's ``output_names`` order.
    """
    input_name: str
    input_rank: int                 # 4 (N, C, H, W) or 2 (N, K)
    output_names: list[str]
    output_kinds: list[str]
    opset: int
    node_layers: dict = field(default_factory=dict)   # ONNX node name -> our layer name (where one was made)
    calibration: object = None      # an int8 (QDQ) model's parameters: codegen.build(net, calibration=...)
    int8_problem: str | None = None     # why a QDQ model's parameters do not make an int8 network

    @property
    def output_name(self) -> str:
        """The ONNX output of a model with one."""
        return self.output_names[0] if len(self.output_names) == 1 else _several(self.output_names)

    @property
    def output_kind(self) -> str:
        return self.output_kinds[0] if len(self.output_kinds) == 1 else _several(self.output_names)

    def to_input(self, x) -> np.ndarray:
        """An ONNX input (N, C, H, W) or (N, K) as our (N, H, W, C) float32 array."""
        x = np.asarray(x, np.float32)
        if self.input_rank == 2:
            return x.reshape(x.shape[0], 1, 1, x.shape[1])
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1))

    def from_output(self, y):
        """Our output (N, H, W, C) in the ONNX model's layout; for several outputs, the tuple of them."""
        if isinstance(y, tuple):
            return tuple(_to_onnx(a, kind) for a, kind in zip(y, self.output_kinds))
        return _to_onnx(y, self.output_kind)


def _several(names):
    raise ValueError(f"the model has {len(names)} outputs ({', '.join(names)}): use output_names / output_kinds")


def _to_onnx(y, kind: str) -> np.ndarray:
    y = np.asarray(y)
    if kind == "nchw":
        return np.ascontiguousarray(y.transpose(0, 3, 1, 2))
    if kind == "nc":
        return y.reshape(y.shape[0], -1)
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2)).reshape(y.shape[0], -1)


@dataclass
class OnnxTensor:
    """An ONNX tensor computed by the network: the layer holding it and how ONNX sees it.

    ``pad`` [t b l r] marks the result of a zero ``Pad`` node (:mod:`codegen.onnx.ops.padding`):
    ``shape`` is the padded one, ``layer`` holds the values before padding, and the one Conv or
    pooling node reading it adds ``pad`` to its own padding."""
    layer: str
    shape: tuple            # our (H, W, C)
    kind: str               # 'nchw', 'nc' (ONNX N x K, ours 1 x 1 x K) or 'flat_chw' (ONNX N x C*H*W)
    pad: tuple = ()         # zero padding [t b l r] not yet applied (a Pad node's result)

    def onnx_shape(self) -> tuple:
        h, w, c = self.shape
        if self.kind == "nchw":
            return (1, c, h, w)
        return (1, h * w * c)
