"""ONNX: importing a model as a :class:`~codegen.Network`, and exporting a Network as a model.

``import_onnx(path_or_model, name=None)`` maps an ONNX graph (default domain, opset 6 and
later; opset 6 only with its inference attributes, e.g. ``is_test=1``) onto our layers:

==========================================  =============================================
ONNX                                        layer
==========================================  =============================================
graph input (N, C, H, W)                    ``imageInputLayer([H W C], Normalization='none')``
graph input (N, K)                          ``featureInputLayer(K)`` (Normalization 'none')
Conv (group 1 / group G)                    ``convolution2dLayer`` / ``groupedConvolution2dLayer``
BatchNormalization (inference)              ``batchNormalizationLayer``
Relu, LeakyRelu, Clip(0, max)               ``reluLayer``, ``leakyReluLayer``, ``clippedReluLayer``
Sigmoid, Tanh, Elu, Softplus                ``sigmoidLayer``, ``tanhLayer``, ``eluLayer``, ``softplusLayer``
Gelu; its Erf and Tanh spellings            ``geluLayer`` (Approximation 'none' / 'tanh')
(x * (1 + Erf(x / sqrt 2)) * 0.5, ...)
x * Sigmoid(x)                              ``swishLayer``
HardSigmoid, HardSwish, x * HardSigmoid(x)  ``hardSigmoidLayer``, ``hardSwishLayer`` (extensions)
MaxPool                                     ``maxPooling2dLayer``
GlobalMaxPool                               ``globalMaxPooling2dLayer``
AveragePool                                 ``averagePooling2dLayer`` (count_include_pad 1 ->
                                            PaddingValue 0, 0 -> ``'mean'``)
GlobalAveragePool, ReduceMean over (H, W)   ``globalAveragePooling2dLayer``
Gemm, MatMul (+ Add of a constant)          ``fullyConnectedLayer``
Softmax over the channels                   ``softmaxLayer``
Add / Sum of tensors, Concat on channels    ``additionLayer``, ``depthConcatenationLayer``
Split, Slice on the channels (step 1)       ``channelSliceLayer`` (extension)
Reshape -> Transpose -> Reshape as          ``channelShuffleLayer`` (extension)
ShuffleNet's channel shuffle
Pad with zeros before Conv, MaxPool (of a   no layer: its pads are added to the reader's
nonnegative input), AveragePool
Sub/Add/Mul/Div of constants on the input   the input layer's ``'zerocenter'``/``'zscore'``
Transpose(perm [0 1 3 2]) + Flatten         ``flattenLayer`` (MATLAB's column-major order)
Flatten, Reshape, Squeeze, Unsqueeze,       no layer: they change how the tensor is seen
Identity, Dropout (inference)
Constant; Shape, Gather, Concat, Slice,     evaluated at import when their inputs are
Unsqueeze, Cast, ConstantOfShape, Range     constants (``Shape`` of a tensor too), sizes
... on constants                            bounded first (:mod:`codegen.onnx.ops.shapes`)
==========================================  =============================================

Layout: ONNX is NCHW, our networks are HWC. The conversion happens once, at import: convolution
weights ``F x C/G x kh x kw`` become ``kh x kw x C x F`` (or ``kh x kw x C/G x F/G x G``),
pads ``[t l b r]`` become ``[t b l r]``, and a fully connected layer behind a Flatten of an
``N x C x H x W`` tensor gets its columns permuted so that MATLAB's column-major flatten of
``h x w x c`` reproduces ONNX's row-major flatten of ``c x h x w``. Weights are copied
bit-exact (float32). ``auto_pad`` SAME_UPPER/SAME_LOWER are resolved with ONNX's rule
(output ceil(in / stride), the dilated kernel, the odd pad after resp. before) into
explicit ``[t b l r]`` padding; pooling's ``ceil_mode`` becomes extra bottom/right padding
where our layers give the same result (max pooling, average pooling that ignores padding).
Weights in float16 or bfloat16 are widened (exact); float64 weights are rounded to float32
with a warning naming the tensor (refused when not finite or beyond float32's range);
integer weights are refused.

An ONNX file is untrusted input. Before giving it any meaning the importer checks: the opset
(6 up to what the installed onnx knows); one producer per tensor; each node's arity and its
attributes' types against the operator's schema; sizes (every dimension, integer attribute
and shape value at most 2^24, every tensor at most 2^28 elements: :mod:`codegen.onnx.limits`)
before any allocation; initializers decoded only when their data matches their type and
shape; external data only for a model given as a path, from files inside its folder
(:mod:`codegen.onnx.external`); evaluation at import only for an allowlist of cheap shape
operators, with the size of the result predicted and bounded first. Names from the model
appear in messages escaped and shortened (:func:`codegen.onnx.errors.quote`).

Anything else is refused with :class:`OnnxImportError`, whose message names the node, its
op and the attribute (or input) that cannot be expressed.

The returned network carries ``net.onnx`` (:class:`OnnxBinding`): the names of the ONNX
input and output and the conversions between ONNX's layout and ours
(``net.onnx.to_input(x_nchw)``, ``net.onnx.from_output(y_nhwc)``).

``export_onnx(net, path=None, opset=17)`` is the inverse, so that our layer semantics can be
checked against independent runtimes (onnxruntime, ``onnx.reference``); see
:mod:`codegen.onnx.exporter`.

Modules: ``registry`` (the ``@translates`` / ``@folds`` / ``@exports`` registries), ``importer``
and ``exporter`` (the two walks), ``ops/`` (one module per op family, both directions),
``model`` (loading) and ``external`` (external data), ``validate`` (structure, schema),
``limits`` (sizes), ``tensors`` (decoding), ``constants`` (evaluation at import), ``binding``
(layouts), ``errors`` (the error, escaping).
"""

from .binding import OnnxBinding
from .errors import OnnxImportError
from .exporter import DEFAULT_OPSET, export_onnx, input_rank, output_rank, to_onnx_input, to_onnx_layout
from .importer import import_onnx
from .ops import SUPPORTED_OPS

__all__ = ["DEFAULT_OPSET", "OnnxBinding", "OnnxImportError", "SUPPORTED_OPS", "export_onnx", "import_onnx",
           "output_rank", "to_onnx_layout"]
