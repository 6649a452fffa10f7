"""The layer set, MATLAB names and semantics. One module per layer family:

=============================  ==========================================
module                         layers
=============================  ==========================================
``input``                      imageInputLayer, featureInputLayer
``conv``                       convolution2dLayer, groupedConvolution2dLayer
``transposed_conv``            transposedConv2dLayer
``batchnorm``                  batchNormalizationLayer
``crossnorm``                  crossChannelNormalizationLayer
``scaling``                    scalingLayer
``activations``                reluLayer, leakyReluLayer, clippedReluLayer, sigmoidLayer, tanhLayer,
                               swishLayer, eluLayer, geluLayer, softplusLayer; extensions (not
                               MATLAB layers): hardSigmoidLayer, hardSwishLayer
``pooling``                    maxPooling2dLayer, averagePooling2dLayer, globalAveragePooling2dLayer,
                               globalMaxPooling2dLayer
``fc``                         fullyConnectedLayer
``output``                     softmaxLayer, classificationLayer, regressionLayer
``combine``                    additionLayer, multiplicationLayer, depthConcatenationLayer,
                               concatenationLayer
``resize``                     resize2dLayer
``utility``                    dropoutLayer, flattenLayer
``channels``                   extensions (not MATLAB layers): channelShuffleLayer, channelSliceLayer
=============================  ==========================================

A family module registers its constructors with ``@constructor`` and its classes by subclassing
:class:`Layer`; importing the module here is all it takes to publish them (in ``codegen``'s
namespace and a net.py file's).
"""

from __future__ import annotations

from . import (activations, batchnorm, channels, combine, conv, crossnorm, fc, input, output,  # noqa: F401 - registration
               pooling, resize, scaling, transposed_conv, utility)
from .base import CONSTRUCTORS, LAYER_CLASSES, Layer

globals().update(CONSTRUCTORS)
globals().update(LAYER_CLASSES)


class LayerArray(list):
    """A list of layers that prints like MATLAB's layer array display."""

    def __repr__(self) -> str:
        rows = [(str(i + 1), f"'{layer.Name}'", layer.TYPE, layer.describe()) for i, layer in enumerate(self)]
        lines = [f"  {len(self)}x1 Layer array with layers:", ""]
        if rows:
            wi = max(len(r[0]) for r in rows)
            wn = max(len(r[1]) for r in rows)
            wt = max(len(r[2]) for r in rows)
            for idx, nm, typ, desc in rows:
                lines.append(f"    {idx:>{wi + 1}}   {nm:<{wn}}   {typ:<{wt}}   {desc}")
        return "\n".join(lines) + "\n"

    __str__ = __repr__


__all__ = ["Layer", "LayerArray", "CONSTRUCTORS", "LAYER_CLASSES", *CONSTRUCTORS, *LAYER_CLASSES]
