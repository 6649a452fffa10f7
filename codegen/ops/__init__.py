"""One home per kind of planned op: its lowering from layers, its weight packing, its C kernel
choice and its CUDA launch geometry, registered in :mod:`codegen.ops.base` (``LOWERINGS``,
``KINDS``). Importing this package imports every home, which fills the registries.

===================  ==============================================  ===========================
module               layers                                          op kinds
===================  ==============================================  ===========================
``io``               imageInputLayer, classificationLayer,           normalize
                     regressionLayer
``conv``             convolution2dLayer, groupedConvolution2dLayer   conv
``transposed_conv``  transposedConv2dLayer                           tconv
``batchnorm``        batchNormalizationLayer                         scale_shift
``activation``       the elementwise activations (relu ... gelu)     act
``pool``             max/average/globalAveragePooling2dLayer         maxpool, avgpool
``fc``               fullyConnectedLayer                             fc
``softmax``          softmaxLayer                                    softmax
``combine``          additionLayer, (depth)concatenationLayer        add, concat, copy
``resize``           resize2dLayer                                   resize
``channels``         channelShuffleLayer, channelSliceLayer          permute_channels,
                     (extensions)                                    slice_channels
===================  ==============================================  ===========================
"""

from . import (activation, batchnorm, channels, combine, conv, fc, io, pool, resize,  # noqa: F401 - registries
               softmax, transposed_conv)
from .base import KINDS, LOWERINGS, CudaLaunch, OpKind, lower_layer

__all__ = ["KINDS", "LOWERINGS", "CudaLaunch", "OpKind", "lower_layer"]
