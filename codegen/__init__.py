"""codegen: MATLAB-style CNN layer definitions to verified, library-free C and CUDA.

The pipeline, one module (or package) per stage:

    layers/    options, validation, shape rules and NumPy reference of each layer
    graph      layerGraph: layers and connections (a series network is a chain)
    network    Network: validated graph, inferred shapes, learnables, ``predict`` (the oracle)
    ir         the plan's data: tensors, buffers, ops with typed attributes
    ops/       one home per op kind: lowering, weight packing, C kernel, CUDA launch
    plan       fusions and the static memory plan
    emit/      rendering C or CUDA from templates/ (the two differ as data)
    pipeline   plan -> render -> write -> compile -> load, for every target: ``codegen.build``
    targets/   host C, CUDA (nvcc or emulated), devices (cross-compiled, run under QEMU)
    onnx/      ONNX import and export, one translator per op
    verify     comparing compiled code with the reference
"""

from .errors import (BuildError, CodegenError, InputError, LayerError, LayerTypeError, NetworkError,
                     UnsupportedError)
from .graph import LayerGraph, addLayers, connectLayers, disconnectLayers, layerGraph, removeLayers
from .layers import *  # noqa: F401,F403 - the MATLAB layer constructors
from .layers import LayerArray
from .network import Network
from .onnx import import_onnx
from .pipeline import build, build_many
from .quant.calibrate import quantize
from .version import __version__
