"""One home per kind of planned op: its lowering from layers, its weight packing, its C kernel
choice and its CUDA launch geometry, registered in :mod:`codegen.ops.base` (``LOWERINGS``,
``KINDS``). Importing this package imports every home, which fills the registries.

===================  ==============================================  ===========================
module               layers                                          op kinds
===================  ==============================================  ===========================
``io``               image/featureInputLayer, classificationLayer,   normalize
                     regressionLayer
``conv``             convolution2dLayer, groupedConvolution2dLayer   conv
``transposed_conv``  transposedConv2dLayer                           tconv
``batchnorm``        batchNormalizationLayer                         scale_shift
``activation``       the elementwise activations (relu ... gelu)     act
``pool``             max/average/globalAverage/globalMax-            maxpool, avgpool
                     Pooling2dLayer
``convpool``         (a fusion: convolution + max/average pooling)   convpool
``stream``           (a fusion: convolutions streamed by rows)       stream
``fc``               fullyConnectedLayer                             fc
``softmax``          softmaxLayer                                    softmax
``combine``          additionLayer, (depth)concatenationLayer        add, concat, copy
``multiply``         multiplicationLayer, scalingLayer               mul, scale (and scale_shift)
``crossnorm``        crossChannelNormalizationLayer                  lrn
``resize``           resize2dLayer                                   resize
``utility``          dropoutLayer (nothing), flattenLayer            flatten
``channels``         channelShuffleLayer, channelSliceLayer          permute_channels,
                     (extensions)                                    slice_channels
===================  ==============================================  ===========================
"""

from . import (activation, batchnorm, channels, combine, conv, convpool, crossnorm, fc, io,  # noqa: F401 - registries
               multiply, patches, pool, resize, softmax, stream, transposed_conv, utility)
from .base import KINDS, LOWERINGS, CudaLaunch, OpKind, lower_layer

__all__ = ["KINDS", "LOWERINGS", "CudaLaunch", "OpKind", "lower_layer"]
