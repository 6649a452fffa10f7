"""Network: a validated layer graph with every shape inferred and every learnable set.

``Network(layers_or_lgraph, seed=0, weights=None, name="net")`` copies the layers, names
unnamed ones, checks the connections (one input layer, no dangling inputs, no cycles, one
output), orders them topologically, resolves ``'auto'`` values and ``'same'`` padding,
loads given weights and initializes the rest from a seeded generator (same seed, same
weights). ``net.predict(x)`` is the NumPy reference, the oracle for every generated file.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .batch import feature_batch, present
from .errors import LayerError, NetworkError
from .graph import LayerGraph
from .layers import Layer, LayerArray
from .weightfiles import load_weights_file


def _shape_text(shape) -> str:
    return "x".join(map(str, shape))


NAME_MAX = 63          # MATLAB's namelengthmax; the name prefixes every C symbol and file name


def _check_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise NetworkError(f"the network name is {name!r}; expected a non-empty string")
    if len(name) > NAME_MAX:
        raise NetworkError(f"the network name is {len(name):,} characters long ({name[:20]!r}...); at most "
                           f"{NAME_MAX} are allowed (it prefixes every generated symbol and file name)")
    return name


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise NetworkError(f"the seed is {seed!r}; expected an integer from 0 to 2^63 - 1")
    return int(seed)


class Network:
    def __init__(self, layers, seed: int = 0, weights=None, name: str = "net", outputs=None):
        graph = layers if isinstance(layers, LayerGraph) else LayerGraph(layers)
        graph = graph.private_copy()         # resolved and initialized here: the user's objects stay untouched
        self.name = _check_name(name)
        self.seed = _check_seed(seed)
        self.graph = graph
        self._order, sinks = self._topological_order(graph)
        self.output_names: list[str] = self._output_order(sinks, outputs)
        self.layers: list[Layer] = [graph.layer(n) for n in self._order]
        self.inputs: dict[str, list[str]] = {n: graph.sources(n) for n in self._order}
        self.consumers: dict[str, list[str]] = {n: [] for n in self._order}
        for n in self._order:
            for src in self.inputs[n]:
                self.consumers[src].append(n)
        self.shapes: dict[str, tuple] = {}
        for layer in self.layers:
            in_shapes = [self.shapes[s] for s in self.inputs[layer.Name]]
            self.shapes[layer.Name] = tuple(int(v) for v in layer.resolve(in_shapes))
        if weights is not None:
            self._apply_weights(weights)
        rng = np.random.default_rng(self.seed)
        for layer in self.layers:
            layer.initialize(rng)

    # ------------------------------------------------------------------ structure
    @staticmethod
    def _topological_order(graph: LayerGraph) -> list[str]:
        names = graph.names()
        if not names:
            raise NetworkError("the network has no layers; start it with imageInputLayer([h w c])")
        inputs = [lay for lay in graph._layers if lay.NUM_INPUTS == 0]    # input layers take none
        if not inputs:
            raise NetworkError("the network has no input layer; start it with imageInputLayer([h w c])")
        if len(inputs) > 1:
            raise NetworkError("the network has several input layers ("
                               + ", ".join(f"'{x.Name}'" for x in inputs) + "); exactly one is supported")
        for lay in graph._layers:
            for port, src in zip(lay.input_names, graph.sources(lay.Name)):
                if src is None:
                    where = lay.Name if len(lay.input_names) == 1 else f"{lay.Name}/{port}"
                    raise NetworkError(f"input '{where}' of {lay.label} is not connected")
        pending = {n: sum(1 for _ in graph.sources(n)) for n in names}
        users: dict[str, list[str]] = {n: [] for n in names}
        for n in names:
            for src in graph.sources(n):
                users[src].append(n)
        order, ready = [], [n for n in names if pending[n] == 0]
        position = {n: i for i, n in enumerate(names)}
        while ready:
            ready.sort(key=position.get)
            n = ready.pop(0)
            order.append(n)
            for u in users[n]:
                pending[u] -= 1
                if pending[u] == 0:
                    ready.append(u)
        if len(order) != len(names):
            stuck = [n for n in names if n not in order]
            raise NetworkError("the graph has a cycle (or a layer fed only by one) through: "
                               + ", ".join(f"'{n}'" for n in stuck))
        if graph.layer(order[0]).NUM_INPUTS != 0:
            raise NetworkError(f"'{order[0]}' has no inputs connected")
        return order, [n for n in names if not users[n]]

    @staticmethod
    def _output_order(sinks: list[str], outputs) -> list[str]:
        """The network's outputs: its unconnected layers (as in MATLAB's dlnetwork), in layer order or in
        the order ``outputs`` names them."""
        if outputs is None:
            return list(sinks)
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        if sorted(outputs) != sorted(sinks) or len(set(outputs)) != len(outputs):
            raise NetworkError(f"outputs {outputs} must name each unconnected layer once: "
                               + ", ".join(f"'{n}'" for n in sinks))
        return outputs

    @property
    def Layers(self) -> LayerArray:  # noqa: N802 - MATLAB name
        return LayerArray(self.layers)

    @property
    def input_layer(self) -> Layer:
        """The input layer (imageInputLayer or featureInputLayer)."""
        return self.layers[0]

    @property
    def observation_shape(self) -> tuple:
        """The shape of one observation as predict takes it: (H, W, C) for images, (numFeatures,) for
        a featureInputLayer (see :mod:`codegen.batch`)."""
        return tuple(self.input_layer.observation_shape)

    def _single_output(self) -> str:
        if len(self.output_names) != 1:
            raise NetworkError(f"'{self.name}' has {len(self.output_names)} outputs ("
                               + ", ".join(f"'{n}'" for n in self.output_names) + "); use output_names / output_shapes")
        return self.output_names[0]

    @property
    def output_name(self) -> str:
        """The output layer of a network with one output."""
        return self._single_output()

    @property
    def input_shape(self) -> tuple:
        return self.shapes[self._order[0]]

    @property
    def output_shape(self) -> tuple:
        """The output shape of a network with one output."""
        return self.shapes[self._single_output()]

    @property
    def output_shapes(self) -> list[tuple]:
        return [self.shapes[n] for n in self.output_names]

    def layer(self, name: str) -> Layer:
        return self.graph.layer(name)

    def is_chain(self) -> bool:
        return all(len(v) <= 1 for v in self.consumers.values()) and all(len(v) <= 1 for v in self.inputs.values())

    # ------------------------------------------------------------------ weights
    def _apply_weights(self, weights):
        for (layer_name, prop), value in _normalize_weights(weights).items():
            try:
                layer = self.graph.layer(layer_name)
            except NetworkError:
                raise NetworkError(f"weights given for '{layer_name}', but the network has no layer of that name; "
                                   f"layers: {', '.join(self._order)}") from None
            if prop not in layer.SETTABLE or prop == "Name":
                loadable = sorted(p for p in layer.SETTABLE if p != "Name" and "Factor" not in p
                                  and "Initializer" not in p)
                raise LayerError(layer.label, prop, None if value is None else np.asarray(value),
                                 "this property cannot be loaded; " + (f"loadable: {', '.join(loadable)}" if loadable
                                                                       else "this layer has nothing to load"))
            layer._set(prop, value)

    # ------------------------------------------------------------------ reference
    def predict(self, x, return_all: bool = False):
        """NumPy reference in float64. ``x`` is (H, W, C) or (N, H, W, C); returns the same rank, or a
        tuple of such arrays (in ``output_names`` order) for a network with several outputs. A
        feature-input network also takes (numFeatures,) or (N, numFeatures) and then returns its
        1 x 1 x K outputs as (K,) or (N, K) (:mod:`codegen.batch`).

        With ``return_all``, returns {layer name: (N, H, W, C) output} for every layer (in the
        input's form likewise).
        """
        x = np.asarray(x)
        try:
            given = feature_batch(x, self.input_shape, self.observation_shape)
        except ValueError as exc:
            raise NetworkError(str(exc)) from None
        features = given is not None
        x, single = given if features else (x, x.ndim == 3)
        if single and not features:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise NetworkError(f"input has shape {tuple(x.shape)}; expected (H, W, C) or (N, H, W, C) with "
                               f"H x W x C = {_shape_text(self.input_shape)}")
        values: dict[str, np.ndarray] = {}
        remaining = {n: len(c) for n, c in self.consumers.items()}
        for layer in self.layers:
            name = layer.Name
            xs = [values[s] for s in self.inputs[name]] or [x.astype(np.float64)]
            values[name] = layer.forward(xs)
            if not return_all:
                for s in self.inputs[name]:
                    remaining[s] -= 1
                    if remaining[s] == 0:
                        del values[s]
        if return_all:
            return {k: present(v, single, features) for k, v in values.items()}
        ys = [values[n] for n in self.output_names]
        return present(ys[0] if len(ys) == 1 else tuple(ys), single, features)

    # ------------------------------------------------------------------ reports
    def learnable_count(self, layer: Layer) -> int:
        return sum(math.prod(shape) for prop, (shape, *_rest) in layer.learnables().items()
                   if not prop.startswith("Trained"))

    def summary(self) -> str:
        """An analyzeNetwork-style table: name, type, activations, learnables, MACs, bytes."""
        head = ("Name", "Type", "Activations", "Learnables", "MACs", "Weight bytes", "Activation bytes")
        rows, tot = [], [0, 0, 0, 0]
        for layer in self.layers:
            name = layer.Name
            shape = self.shapes[name]
            in_shapes = [self.shapes[s] for s in self.inputs[name]]
            learn = self.learnable_count(layer)
            macs = layer.macs(in_shapes, shape)
            act = math.prod(shape) * 4
            rows.append((name, layer.TYPE, _shape_text(shape), f"{learn:,}", f"{macs:,}", f"{learn * 4:,}", f"{act:,}"))
            tot = [tot[0] + learn, tot[1] + macs, tot[2] + learn * 4, tot[3] + act]
        rows.append(("Total", "", "", f"{tot[0]:,}", f"{tot[1]:,}", f"{tot[2]:,}", f"{tot[3]:,}"))
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
        fmt = lambda r: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
        sep = "  ".join("-" * w for w in widths)
        outs = ", ".join(_shape_text(s) for s in self.output_shapes)
        return "\n".join([f"Network '{self.name}': {len(self.layers)} layers, input "
                          f"{_shape_text(self.input_shape)}, output{'s' if len(self.output_names) > 1 else ''} {outs}",
                          fmt(head), sep, *map(fmt, rows[:-1]), sep, fmt(rows[-1])]) + "\n"

    def __repr__(self) -> str:
        return repr(self.Layers)


def _normalize_weights(weights) -> dict:
    """Weights as {(layer, Property): array} from a dict, nested dict, .npz or .mat file."""
    if isinstance(weights, (str, os.PathLike)):
        weights = load_weights_file(weights)
    if not isinstance(weights, dict):
        raise NetworkError(f"weights must be a dict or a .npz/.mat file path, got {type(weights).__name__}")
    out = {}
    for key, value in weights.items():
        if isinstance(value, dict):
            for prop, arr in value.items():
                out[(str(key), str(prop))] = arr
            continue
        key = str(key)
        for sep in ("/", ".", "__"):
            if sep in key:
                layer, prop = key.rsplit(sep, 1)
                out[(layer, prop)] = value
                break
        else:
            raise NetworkError(f"weights key '{key}' must name a layer and a property, e.g. 'conv_1/Weights'")
    return out
