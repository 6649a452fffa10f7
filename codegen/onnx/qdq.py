"""int8 models in ONNX's QDQ form (QuantizeLinear -> DequantizeLinear around float operators, as
onnxruntime's ``quantize_static`` writes them): what the importer learns from them.

The network imports as the float network the QDQ pairs surround (a pair is a rounding, which
the float network leaves out); :class:`QdqRecord` keeps what the pairs and the quantized
initializers say:

- each activation's scale and zero point, from the QuantizeLinear of the tensor a layer makes;
- each convolution's and fully connected layer's weight scales per output channel, from the
  DequantizeLinear of its int8 weights (the float weights are those int8 values times them).

:meth:`QdqRecord.calibration` turns them into a :class:`~codegen.quant.calibrate.Calibration`
(``net.onnx.calibration``), so ``codegen.build(net, calibration=net.onnx.calibration)``
generates int8 code with the model's own parameters. A layer whose output the model does not
quantize takes its input's parameters where that is exact (max pooling, ReLU, dropout, the
output layers); any other is named in ``net.onnx.int8_problem`` and the int8 build refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..quant.calibrate import QMAX, QMIN, Calibration, QParams
from .errors import OnnxImportError

# layers whose int8 output can share their input's scale and zero point exactly
SAME_SCALE = {"maxPooling2dLayer", "globalMaxPooling2dLayer", "reluLayer", "dropoutLayer", "flattenLayer",
              "classificationLayer", "regressionLayer"}


@dataclass
class QdqRecord:
    activations: dict[str, QParams] = field(default_factory=dict)     # layer -> its output's parameters
    where: dict[str, str] = field(default_factory=dict)               # layer -> the QuantizeLinear that set them
    dequantized: dict[str, np.ndarray] = field(default_factory=dict)  # constant -> the int8 weights' scales
    weight_scales: dict[str, np.ndarray] = field(default_factory=dict)
    clamps: dict[str, object] = field(default_factory=dict)           # tensor -> the clippedReluLayer added on it

    def activation(self, imp, node, layer: str, params: QParams):
        """``node`` (a QuantizeLinear) quantizes the output of ``layer`` with ``params``."""
        known = self.activations.get(layer)
        if known is not None and known != params:
            raise OnnxImportError(f"{imp.where(node)}: quantizes the output of layer '{layer}' with "
                                  f"{params.describe()}, but {self.where[layer]} quantizes it with {known.describe()}; "
                                  "one tensor has one scale and zero point in int8 code")
        self.activations[layer] = params
        self.where[layer] = imp.where(node)

    def layer_made(self, node, layer: str):
        """``node`` became ``layer``: its weights (input 1), if the model dequantizes them from int8,
        fix the layer's weight scales."""
        if len(node.input) > 1 and node.input[1] in self.dequantized:
            self.weight_scales[layer] = self.dequantized[node.input[1]]

    @property
    def used(self) -> bool:
        return bool(self.activations)

    def calibration(self, net, input_layer: str) -> tuple[Calibration | None, str | None]:
        """(the model's int8 parameters as a calibration, or None; what keeps it from int8, or None)."""
        if not self.used:
            return None, None
        if input_layer not in self.activations:
            return None, "the graph input has no QuantizeLinear: the model does not say how to quantize it"
        params, ranges, notes = {}, {}, {}
        clamp_of = {net.inputs[t.layer][0]: t.layer for t in self.clamps.values()}
        for layer in net.layers:
            name = layer.Name
            if name in self.activations:
                params[name] = self.activations[name]
            elif name in clamp_of and clamp_of[name] in self.activations:
                params[name] = self.activations[clamp_of[name]]
                notes[name] = "the parameters of the QuantizeLinear after it (a clamp at 0: its ReLU)"
            elif layer.FUNCTION in SAME_SCALE and net.inputs[name]:
                params[name] = params[net.inputs[name][0]]
                notes[name] = "no QuantizeLinear in the model: its input's parameters"
            else:
                return None, (f"the model does not quantize the output of layer '{name}' ({layer.FUNCTION}): "
                              "no QuantizeLinear on it, so its int8 scale is unknown; quantize every operator, or "
                              "calibrate the network with codegen.quantize(net, images)")
            q = params[name]
            ranges[name] = ((QMIN - q.zero_point) * q.scale, (QMAX - q.zero_point) * q.scale)
        q = params[input_layer]
        if getattr(net.layers[0], "Normalization", "none") != "none":
            return None, ("the graph input is normalized (Sub/Div folded into the input layer) before its "
                          "QuantizeLinear; int8 import needs the QuantizeLinear on the raw input")
        return Calibration("onnx-qdq", ranges, params, 0, ranges[input_layer], q, notes,
                           dict(self.weight_scales), given=True), None
