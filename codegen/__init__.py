"""codegen: MATLAB-style CNN layer definitions to verified, library-free C and CUDA.

The pipeline, one module per stage:

    layers/   options, validation, shape rules and NumPy reference of each layer
    graph     layerGraph: layers and connections (a series network is a chain)
    network   Network: validated graph, inferred shapes, learnables, ``predict`` (the oracle)
    plan      lowering: fusions and the static memory plan
    emit/     rendering C or CUDA from templates/ (the two differ as data)
    build     compiling with cc, nvcc or a cross compiler; the build cache
    load      loading the library with cffi: ``lib.predict(x)``
    verify    comparing compiled code with the reference
"""

from .errors import (BuildError, CodegenError, InputError, LayerError, LayerTypeError, NetworkError,
                     UnsupportedError)
from .graph import LayerGraph, addLayers, connectLayers, disconnectLayers, layerGraph, removeLayers
from .layers import *  # noqa: F401,F403 - the MATLAB layer constructors
from .layers import LayerArray
from .network import Network

__version__ = "0.1.0"


def build(net, target: str = "c", out_dir=None, **options):
    """Generate, compile and load ``net``; returns a library object with ``predict(x)``.

    See :func:`codegen.load.build` for the options.
    """
    from .load import build as _build
    return _build(net, target=target, out_dir=out_dir, **options)


def import_onnx(path, **kwargs):
    """Import an ONNX model as a :class:`Network` (see :mod:`codegen.onnx`)."""
    from .onnx import import_onnx as _import
    return _import(path, **kwargs)
