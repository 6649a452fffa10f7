"""The layer set, MATLAB names and semantics. One module per layer family:

=============================  ==========================================
module                         layers
=============================  ==========================================
``input``                      imageInputLayer
``conv``                       convolution2dLayer, groupedConvolution2dLayer
``batchnorm``                  batchNormalizationLayer
``activations``                reluLayer, leakyReluLayer, clippedReluLayer
``pooling``                    maxPooling2dLayer, averagePooling2dLayer, globalAveragePooling2dLayer
``fc``                         fullyConnectedLayer
``output``                     softmaxLayer, classificationLayer
``combine``                    additionLayer, depthConcatenationLayer, concatenationLayer
=============================  ==========================================
"""

from __future__ import annotations

from .activations import ClippedReLULayer, LeakyReLULayer, ReLULayer, clippedReluLayer, leakyReluLayer, reluLayer
from .base import Layer
from .batchnorm import BatchNormalizationLayer, batchNormalizationLayer
from .combine import (AdditionLayer, ConcatenationLayer, DepthConcatenationLayer, additionLayer,
                      concatenationLayer, depthConcatenationLayer)
from .conv import Convolution2DLayer, GroupedConvolution2DLayer, convolution2dLayer, groupedConvolution2dLayer
from .fc import FullyConnectedLayer, fullyConnectedLayer
from .input import ImageInputLayer, imageInputLayer
from .output import ClassificationOutputLayer, SoftmaxLayer, classificationLayer, softmaxLayer
from .pooling import (AveragePooling2DLayer, GlobalAveragePooling2DLayer, MaxPooling2DLayer, averagePooling2dLayer,
                      globalAveragePooling2dLayer, maxPooling2dLayer)

CONSTRUCTORS = {
    "imageInputLayer": imageInputLayer,
    "convolution2dLayer": convolution2dLayer,
    "groupedConvolution2dLayer": groupedConvolution2dLayer,
    "batchNormalizationLayer": batchNormalizationLayer,
    "reluLayer": reluLayer,
    "leakyReluLayer": leakyReluLayer,
    "clippedReluLayer": clippedReluLayer,
    "maxPooling2dLayer": maxPooling2dLayer,
    "averagePooling2dLayer": averagePooling2dLayer,
    "globalAveragePooling2dLayer": globalAveragePooling2dLayer,
    "fullyConnectedLayer": fullyConnectedLayer,
    "softmaxLayer": softmaxLayer,
    "classificationLayer": classificationLayer,
    "additionLayer": additionLayer,
    "depthConcatenationLayer": depthConcatenationLayer,
    "concatenationLayer": concatenationLayer,
}


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


__all__ = ["Layer", "LayerArray", "CONSTRUCTORS", *CONSTRUCTORS,
           "ImageInputLayer", "Convolution2DLayer", "GroupedConvolution2DLayer", "BatchNormalizationLayer",
           "ReLULayer", "LeakyReLULayer", "ClippedReLULayer", "MaxPooling2DLayer", "AveragePooling2DLayer",
           "GlobalAveragePooling2DLayer", "FullyConnectedLayer", "SoftmaxLayer", "ClassificationOutputLayer",
           "AdditionLayer", "DepthConcatenationLayer", "ConcatenationLayer"]
