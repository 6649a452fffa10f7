"""The op families, one module each, holding both directions of their ops (ONNX -> layers
through ``@translates``, layers -> ONNX through ``@exports``; evaluation at import through
``@folds``):

===================  ========================================================================
module               ONNX ops <-> layers
===================  ========================================================================
``conv``             Conv <-> convolution2dLayer, groupedConvolution2dLayer
``transposed_conv``  ConvTranspose <-> transposedConv2dLayer
``normalization``    BatchNormalization <-> batchNormalizationLayer; Sub/Add/Mul/Div of
                     constants on the graph input <-> the input layer's normalization
``crossnorm``        LRN (and PyTorch's LocalResponseNorm spelled as several nodes) <->
                     crossChannelNormalizationLayer
``activations``      Relu, LeakyRelu, Clip, Sigmoid, Tanh, Softmax, Elu, Gelu, Softplus,
                     HardSigmoid, HardSwish <-> reluLayer, leakyReluLayer, clippedReluLayer,
                     sigmoidLayer, tanhLayer, softmaxLayer, eluLayer, geluLayer, softplusLayer,
                     hardSigmoidLayer, hardSwishLayer
``spellings``        activations written as several nodes (``@spelling``): x * Sigmoid(x),
                     x * HardSigmoid(x), GELU with Erf or Tanh <-> swishLayer, hardSwishLayer,
                     geluLayer
``pooling``          MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, ReduceMean <->
                     maxPooling2dLayer, averagePooling2dLayer, globalAveragePooling2dLayer,
                     globalMaxPooling2dLayer
``padding``          Pad (with zeros: folded into the Conv/MaxPool/AveragePool reading it; no
                     layer, no export)
``dense``            Gemm, MatMul (+ Add of a constant) <-> fullyConnectedLayer
``combine``          Sum, Concat <-> additionLayer, depthConcatenationLayer,
                     concatenationLayer; multiplicationLayer -> Mul
``arithmetic``       Add, Sub, Mul, Div (of two tensors, or of a tensor and a constant) <->
                     additionLayer, multiplicationLayer, scalingLayer (and the cases above:
                     input normalization, a fully connected layer's bias)
``channels``         Split, Slice on the channels <-> channelSliceLayer; the channel shuffle
                     Reshape -> Transpose -> Reshape (``@spelling``) <-> channelShuffleLayer
``resize``           Resize, Upsample <-> resize2dLayer
``views``            Identity, Dropout, Flatten, Reshape, Squeeze, Unsqueeze (no layer);
                     Transpose + Flatten <-> flattenLayer; classificationLayer,
                     regressionLayer, dropoutLayer -> no node
``shapes``           Constant, and the cheap shape operators evaluated at import on
                     constants (Shape, Gather, Concat, ConstantOfShape, Range ...; no layer)
``quantize``         QuantizeLinear, DequantizeLinear (QDQ int8 models; no layer: the
                     parameters go to ``net.onnx.calibration``, see codegen/onnx/qdq.py)
===================  ========================================================================

``windows`` holds what Conv and the pooling ops share (strides, dilations, pads, auto_pad).

Importing this package imports every family, so that the registries of
:mod:`codegen.onnx.registry` are complete. Adding an op means a translator (and, for a new
layer class, an exporter) in its family's module; a new family, a module imported below.
The import order is the order of :data:`SUPPORTED_OPS` (and of the importer's message that
lists them).
"""

from ..registry import supported_ops

# isort: off
from . import conv  # noqa: F401 - each module registers its translators and exporters
from . import transposed_conv  # noqa: F401
from . import normalization  # noqa: F401
from . import spellings  # noqa: F401
from . import activations  # noqa: F401
from . import pooling  # noqa: F401
from . import padding  # noqa: F401
from . import dense  # noqa: F401
from . import combine  # noqa: F401
from . import arithmetic  # noqa: F401
from . import crossnorm  # noqa: F401
from . import channels  # noqa: F401
from . import resize  # noqa: F401
from . import views  # noqa: F401
from . import shapes  # noqa: F401
from . import quantize  # noqa: F401
# isort: on

SUPPORTED_OPS = supported_ops()
